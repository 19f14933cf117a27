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
    events: list[dict[str, Any]],
    group_of: dict[str, str],
    end_ms: int,
) -> list[Verdict]:
    """Every expectation's verdict, each with the wall time its judging took."""
    out = []
    for expectation in expectations:
        started = wall_seconds()
        verdict = judge(expectation, events, group_of, end_ms)
        out.append(replace(verdict, seconds=wall_seconds() - started))
    return out


def judge(
    expectation: Expectation,
    events: list[dict[str, Any]],
    group_of: dict[str, str],
    end_ms: int,
) -> Verdict:
    scoped = events
    if expectation.group is not None:
        scoped = [e for e in events if group_of.get(e.get("device_id") or "") == expectation.group]
    if expectation.kind == "push_starts_session":
        return _push_starts_session(expectation, scoped)
    if expectation.kind == "no_push_after_gone":
        return _no_push_after_gone(expectation, scoped)
    if expectation.kind == "newest_channel_reported":
        return _newest_channel_reported(expectation, scoped, end_ms)
    return _count(expectation, scoped)


def _verdict(e: Expectation, bad: list[str], detail: str) -> Verdict:
    shown = bad[:MAX_EVIDENCE]
    if len(bad) > MAX_EVIDENCE:
        shown.append(f"... and {len(bad) - MAX_EVIDENCE} more")
    return Verdict(e.name, e.kind, not bad, detail, shown, e.line)


def _at(event: dict[str, Any]) -> str:
    return f"{iso(event['t_ms'])} {event.get('device_id') or '-'}"


def _push_starts_session(e: Expectation, events: list[dict[str, Any]]) -> Verdict:
    within = e.within_ms or 0
    starts: dict[str, list[int]] = defaultdict(list)
    excused: set[tuple[str, str]] = set()
    for ev in events:
        if ev["event"] == "session.start" and ev.get("trigger") == "push":
            starts[ev["device_id"]].append(ev["t_ms"])
        elif ev["event"] == "device.push_no_session":
            excused.add((ev["device_id"], ev.get("msg_id") or ""))
    pushes = [
        ev
        for ev in events
        if ev["event"] == "device.push_received"
        and (ev["device_id"], ev.get("msg_id") or "") not in excused
    ]
    bad = []
    for push in pushes:
        device, t = push["device_id"], push["t_ms"]
        times = starts.get(device, [])
        i = bisect_left(times, t)
        if i == len(times) or times[i] - t > within:
            bad.append(
                f"{_at(push)}: push {push.get('msg_id')} ({push.get('via')}) started no "
                f"session within {within // 1000}s"
            )
    total = len(pushes)
    asked = [ev for ev in events if ev["event"] == "server.hook" and ev.get("hook") == "push"]
    arrived = any(ev["event"] == "device.push_received" for ev in events)
    if not arrived and asked:  # nothing to judge is not a pass when pushes were asked for
        bad = [f"{_at(ev)}: push asked of the server (HTTP {ev.get('status')})" for ev in asked]
        return _verdict(
            e, bad, f"the server was asked for {plural(len(asked), 'push')}; none arrived"
        )
    return _verdict(e, bad, f"{total - len(bad)} of {plural(total, 'push')} started a session")


def _no_push_after_gone(e: Expectation, events: list[dict[str, Any]]) -> Verdict:
    gone: dict[str, dict[str, Any]] = {}
    bad = []
    sent = 0
    for ev in events:
        if ev["event"] != "wns.notify":
            continue
        sent += 1
        target = ev.get("target") or ""
        if target in gone:
            first = gone[target]
            bad.append(
                f"{_at(ev)}: POST {target[:60]} answered {ev['status']}, after "
                f"{first['status']} at {iso(first['t_ms'])}"
            )
        elif ev["status"] in (404, 410):
            gone[target] = ev
    return _verdict(e, bad, f"{plural(len(gone), 'channel')} gone, {plural(sent, 'push')} seen")


def _newest_channel_reported(e: Expectation, events: list[dict[str, Any]], end_ms: int) -> Verdict:
    newest: dict[str, dict[str, Any]] = {}
    reported: dict[str, set[str]] = defaultdict(set)
    for ev in events:
        if ev["event"] == "device.channel":
            newest[ev["device_id"]] = ev
        elif ev["event"] == "session.channel_reported":
            reported[ev["device_id"]].add(ev["channel_uri"])
    bad = []
    checked = 0
    for device, ev in sorted(newest.items()):
        if ev["t_ms"] > end_ms - HOUR:
            continue
        checked += 1
        if ev["channel_uri"] not in reported[device]:
            bad.append(f"{_at(ev)}: ChannelURI issued ({ev.get('kind')}) never reported")
    return _verdict(e, bad, f"{checked - len(bad)} of {checked} newest channels reported")


def _count(e: Expectation, events: list[dict[str, Any]]) -> Verdict:
    matching = [
        ev
        for ev in events
        if ev["event"] == e.event and all(ev.get(k) == v for k, v in e.where.items())
    ]
    n = len(matching)
    bounds = " ".join(
        part
        for part in (
            f">= {e.min}" if e.min is not None else "",
            f"<= {e.max}" if e.max is not None else "",
        )
        if part
    )
    ok = (e.min is None or n >= e.min) and (e.max is None or n <= e.max)
    bad = [] if ok else [f"{_at(ev)}: {ev['event']}" for ev in matching] or ["none happened"]
    return _verdict(e, bad, f"{n} {e.event} (expected {bounds})")
