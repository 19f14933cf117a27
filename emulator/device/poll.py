"""The DMClient poll schedule: when a device starts a session on its own [DMC] (protocol.md 1.4).

Owns: turning the six Poll values into a plan of (interval, count) sets with the device's
corrections, and the time of the next poll given when the plan started and how many polls
it has run.
Must not: read the CSP tree or the clock itself.

Rules [DMC]: a set is enabled by a non-zero interval. A count of 0 with a non-zero interval
makes that set infinite; an infinite set disables every later set. Set 2 is used only after a
finite set 1, set 3 only when neither earlier set is infinite. "If there is no infinite
schedule set, then a 24-hour schedule is created" after the finite sets [DMC].
"""

from __future__ import annotations

from dataclasses import dataclass

from emulator.clock import DAY, MINUTE

FALLBACK = DAY  # the 24-hour schedule [DMC]
NAMES = (
    ("IntervalForFirstSetOfRetries", "NumberOfFirstRetries"),
    ("IntervalForSecondSetOfRetries", "NumberOfSecondRetries"),
    ("IntervalForRemainingScheduledRetries", "NumberOfRemainingScheduledRetries"),
)


@dataclass(frozen=True, slots=True)
class PollSet:
    interval: int  # ms
    count: int | None  # None: infinite


def plan(values: dict[str, str]) -> tuple[PollSet, ...]:
    """The corrected plan from the Poll node values (unparseable values count as 0)."""
    sets: list[PollSet] = []
    for interval_name, count_name in NAMES:
        interval, count = _int(values.get(interval_name)), _int(values.get(count_name))
        if interval <= 0:
            continue
        if count <= 0:
            sets.append(PollSet(interval * MINUTE, None))
            return tuple(sets)  # an infinite set ends the plan [DMC]
        sets.append(PollSet(interval * MINUTE, count))
    sets.append(PollSet(FALLBACK, None))  # no infinite set: the 24-hour schedule [DMC]
    return tuple(sets)


def next_poll(sets: tuple[PollSet, ...], anchor: int, done: int) -> int:
    """The time of poll number ``done + 1`` of a plan that started at ``anchor``."""
    at = anchor
    left = done + 1
    for poll_set in sets:
        if poll_set.count is None or left <= poll_set.count:
            return at + left * poll_set.interval
        at += poll_set.count * poll_set.interval
        left -= poll_set.count
    raise AssertionError("a plan always ends with an infinite set")


def _int(text: str | None) -> int:
    try:
        return int(text or "0")
    except ValueError:
        return 0
