"""Judging a scenario's expectations against the run's merged event log.

Owns: one judge per expectation kind, each returning a :class:`Verdict` with the evidence a
reader needs (the events that broke it, with virtual time and device), capped so a report
stays readable.

* ``push_starts_session``: every push a device received over its WNS connection started a
  session within the bound, unless the device logged why it could not (power, connectivity,
  or an OS build that starts none: Push/Status 7 [DMC], fleetdm/fleet#43773) [PUSH]; and
  if the server was asked to push, at least one push arrived.
* ``no_push_after_gone``: once WNS answered 410 (or 404) for a ChannelURI, nothing more was
  sent to it [WNSOV][WNSHDR].
* ``newest_channel_reported``: each device's newest ChannelURI reached the server in a
  session, unless it was issued within the last hour of the run [PUSH][KI].
* ``count``: how many events of a name (with field filters) happened, within bounds.

Must not: read anything but the events and the scenario.
"""

from __future__ import annotations

import abc
from bisect import bisect_left
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from emulator.clock import HOUR, iso, wall_seconds
from emulator.reports.text import plural
from emulator.scenario.model import Expectation

MAX_EVIDENCE = 10


@dataclass(frozen=True, slots=True)
class Verdict:
    name: str
    kind: str
    passed: bool
    detail: str  # one line: what was measured
    evidence: list[str] = field(default_factory=list)  # the offending events, first ones
    line: int = 0  # the expectation's line in the scenario file
    seconds: float = 0.0  # wall time judging it took (JUnit's case time)


def judge_all(
    expectations: Iterable[Expectation],
    events: Iterable[dict[str, Any]],
    group_of: dict[str, str],
    end_ms: int,
) -> list[Verdict]:
    """Every expectation's verdict, each with the wall time its judging took."""
    judges = Judges(expectations, group_of)
    for event in events:
        judges.feed(event)
    return judges.verdicts(end_ms)


def judge(
    expectation: Expectation,
    events: Iterable[dict[str, Any]],
    group_of: dict[str, str],
    end_ms: int,
) -> Verdict:
    return judge_all([expectation], events, group_of, end_ms)[0]


class Judges:
    """Every expectation judged in one pass over the log, event by event, holding only what
    a verdict needs (pushes, channels, evidence), never the log: a sharded run's merged
    stream is judged as it is written."""

    def __init__(self, expectations: Iterable[Expectation], group_of: dict[str, str]) -> None:
        self.group_of = group_of
        self.judges = [_JUDGES.get(e.kind, _Count)(e) for e in expectations]
        self.seconds = [0.0] * len(self.judges)

    def feed(self, event: dict[str, Any]) -> None:
        group = None
        for i, judge in enumerate(self.judges):
            wanted = judge.expectation.group
            if wanted is not None:
                if group is None:
                    group = self.group_of.get(event.get("device_id") or "", "")
                if group != wanted:
                    continue
            started = wall_seconds()
            judge.feed(event)
            self.seconds[i] += wall_seconds() - started

    def verdicts(self, end_ms: int) -> list[Verdict]:
        out = []
        for judge, spent in zip(self.judges, self.seconds, strict=True):
            started = wall_seconds()
            verdict = judge.verdict(end_ms)
            out.append(replace(verdict, seconds=spent + wall_seconds() - started))
        return out


def _verdict(e: Expectation, bad: list[str], detail: str, total: int | None = None) -> Verdict:
    """``total``: how many were bad when ``bad`` holds only the first of them."""
    count = len(bad) if total is None else total
    shown = bad[:MAX_EVIDENCE]
    if count > MAX_EVIDENCE:
        shown.append(f"... and {count - MAX_EVIDENCE} more")
    return Verdict(e.name, e.kind, count == 0, detail, shown, e.line)


def _at(event: dict[str, Any]) -> str:
    return f"{iso(event['t_ms'])} {event.get('device_id') or '-'}"


class _Judge(abc.ABC):
    """One expectation's judge: fed each event of its scope in order, then asked."""

    def __init__(self, expectation: Expectation) -> None:
        self.expectation = expectation

    @abc.abstractmethod
    def feed(self, ev: dict[str, Any]) -> None: ...

    @abc.abstractmethod
    def verdict(self, end_ms: int) -> Verdict: ...


class _PushStartsSession(_Judge):
    def __init__(self, expectation: Expectation) -> None:
        super().__init__(expectation)
        self.starts: dict[str, list[int]] = defaultdict(list)
        self.excused: set[tuple[str, str]] = set()
        self.pushes: list[dict[str, Any]] = []  # every push received: a few per device
        self.asked: list[str] = []  # pushes asked of the server, as evidence

    def feed(self, ev: dict[str, Any]) -> None:
        name = ev["event"]
        if name == "session.start" and ev.get("trigger") == "push":
            self.starts[ev["device_id"]].append(ev["t_ms"])
        elif name == "device.push_no_session":
            self.excused.add((ev["device_id"], ev.get("msg_id") or ""))
        elif name == "device.push_received":
            self.pushes.append(ev)
        elif name == "server.hook" and ev.get("hook") == "push":
            self.asked.append(f"{_at(ev)}: push asked of the server (HTTP {ev.get('status')})")

    def verdict(self, end_ms: int) -> Verdict:
        e = self.expectation
        within = e.within_ms or 0
        pushes = [
            p for p in self.pushes if (p["device_id"], p.get("msg_id") or "") not in self.excused
        ]
        bad = []
        for push in pushes:
            device, t = push["device_id"], push["t_ms"]
            times = self.starts.get(device, [])
            i = bisect_left(times, t)
            if i == len(times) or times[i] - t > within:
                bad.append(
                    f"{_at(push)}: push {push.get('msg_id')} ({push.get('via')}) started no "
                    f"session within {within // 1000}s"
                )
        total = len(pushes)
        if not self.pushes and self.asked:  # nothing to judge is not a pass when asked for
            return _verdict(
                e,
                self.asked,
                f"the server was asked for {plural(len(self.asked), 'push')}; none arrived",
            )
        return _verdict(e, bad, f"{total - len(bad)} of {plural(total, 'push')} started a session")


class _NoPushAfterGone(_Judge):
    def __init__(self, expectation: Expectation) -> None:
        super().__init__(expectation)
        self.gone: dict[str, dict[str, Any]] = {}
        self.bad: list[str] = []
        self.sent = 0

    def feed(self, ev: dict[str, Any]) -> None:
        if ev["event"] != "wns.notify":
            return
        self.sent += 1
        target = ev.get("target") or ""
        if target in self.gone:
            first = self.gone[target]
            self.bad.append(
                f"{_at(ev)}: POST {target[:60]} answered {ev['status']}, after "
                f"{first['status']} at {iso(first['t_ms'])}"
            )
        elif ev["status"] in (404, 410):
            self.gone[target] = ev

    def verdict(self, end_ms: int) -> Verdict:
        detail = f"{plural(len(self.gone), 'channel')} gone, {plural(self.sent, 'push')} seen"
        return _verdict(self.expectation, self.bad, detail)


class _NewestChannelReported(_Judge):
    def __init__(self, expectation: Expectation) -> None:
        super().__init__(expectation)
        self.newest: dict[str, dict[str, Any]] = {}
        self.reported: dict[str, set[str]] = defaultdict(set)

    def feed(self, ev: dict[str, Any]) -> None:
        if ev["event"] == "device.channel":
            self.newest[ev["device_id"]] = ev
        elif ev["event"] == "session.channel_reported":
            self.reported[ev["device_id"]].add(ev["channel_uri"])

    def verdict(self, end_ms: int) -> Verdict:
        bad = []
        checked = 0
        for device, ev in sorted(self.newest.items()):
            if ev["t_ms"] > end_ms - HOUR:
                continue
            checked += 1
            if ev["channel_uri"] not in self.reported[device]:
                bad.append(f"{_at(ev)}: ChannelURI issued ({ev.get('kind')}) never reported")
        detail = f"{checked - len(bad)} of {checked} newest channels reported"
        return _verdict(self.expectation, bad, detail)


class _Count(_Judge):
    def __init__(self, expectation: Expectation) -> None:
        super().__init__(expectation)
        self.n = 0
        self.first: list[str] = []  # the first matching events, as evidence

    def feed(self, ev: dict[str, Any]) -> None:
        e = self.expectation
        if ev["event"] == e.event and all(ev.get(k) == v for k, v in e.where.items()):
            self.n += 1
            if len(self.first) < MAX_EVIDENCE:
                self.first.append(f"{_at(ev)}: {ev['event']}")

    def verdict(self, end_ms: int) -> Verdict:
        e, n = self.expectation, self.n
        bounds = " ".join(
            part
            for part in (
                f">= {e.min}" if e.min is not None else "",
                f"<= {e.max}" if e.max is not None else "",
            )
            if part
        )
        detail = f"{n} {e.event} (expected {bounds})"
        if (e.min is None or n >= e.min) and (e.max is None or n <= e.max):
            return _verdict(e, [], detail)
        if n == 0:
            return _verdict(e, ["none happened"], detail)
        return _verdict(e, self.first, detail, total=n)


_JUDGES: dict[str, type[_Judge]] = {
    "push_starts_session": _PushStartsSession,
    "no_push_after_gone": _NoPushAfterGone,
    "newest_channel_reported": _NewestChannelReported,
    "count": _Count,
}
