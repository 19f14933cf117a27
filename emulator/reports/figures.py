"""What the HTML report shows of a run, computed in one pass over its log.

Owns: :class:`RunFigures`, fed the log event by event (it is never held): per group the
devices whose channel is valid, valid but unreachable (WNS connection down) or expired over
virtual time; pushes per day by WNS outcome; sessions per day by trigger; push-to-session
latencies; devices disconnected by reason over time; and per device a compact lane (channel
lifetimes, connection spans, pushes and the sessions they started, linked by Msg-ID and
SessionID). Times in lanes are virtual minutes from the run's start; repeated strings are
interned into one table.
Must not: render anything (``html.py`` does) or judge.
"""

from __future__ import annotations

import heapq
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from emulator.clock import DAY, HOUR, MINUTE

STATES = ("valid", "unreachable", "expired", "none")  # a device's channel, as the report sees it
MAX_POINTS = 360  # samples of the state chart over the run
#: push-to-session latency histogram: upper edges, ms, and their labels
LATENCY_BINS = (
    (1_000, "< 1 s"),
    (10_000, "1-10 s"),
    (60_000, "10-60 s"),
    (5 * 60_000, "1-5 min"),
    (HOUR, "5-60 min"),
    (6 * HOUR, "1-6 h"),
    (DAY, "6-24 h"),
    (7 * DAY, "1-7 d"),
    (None, "> 7 d"),
)


def group_of_id(device_id: str, groups: list[str]) -> str:
    """The group a device id belongs to (``<group>-<n>``), the longest name that fits."""
    best = ""
    for name in groups:
        if device_id.startswith(name + "-") and len(name) > len(best):
            best = name
    return best or "(other)"


@dataclass
class Lane:
    """One device's story, compact: lists of small arrays of numbers and string ids."""

    group: int
    channels: list[list[int]] = field(default_factory=list)  # [start, end, how it ended]
    offline: list[list[int]] = field(default_factory=list)  # [start, end, reason]
    pushes: list[list[int]] = field(default_factory=list)  # [t, status, outcome, msg_id]
    sessions: list[list[int]] = field(default_factory=list)  # [t, trigger, id, msg_id, outcome]
    open_channel: list[int] | None = None
    open_offline: list[int] | None = None


class RunFigures:
    def __init__(self, start_ms: int, end_ms: int, groups: list[str]) -> None:
        self.start, self.end = start_ms, max(end_ms, start_ms + MINUTE)
        self.groups = groups
        span = self.end - self.start
        self.step = max(HOUR, -(-span // MAX_POINTS // HOUR) * HOUR)
        self.days = max(1, -(-span // DAY))
        self.strings: dict[str, int] = {}
        self.lanes: dict[str, Lane] = {}
        # the state chart: current state per device, counts per group, samples over time
        self.state: dict[str, str] = {}
        self.counts: dict[str, Counter[str]] = defaultdict(Counter)
        self.samples: list[tuple[int, dict[str, dict[str, int]]]] = []
        self.next_sample = self.start
        self.channel_until: dict[str, int] = {}
        self.expiring: list[tuple[int, str]] = []  # (until, device): a heap, stale ones skipped
        self.connected: dict[str, bool] = {}
        self.reasons: Counter[str] = Counter()  # devices disconnected now, by reason
        self.reason_of: dict[str, str] = {}
        self.offline_samples: list[dict[str, int]] = []
        self.pushes: dict[str, list[int]] = defaultdict(lambda: [0] * self.days)
        self.sessions: dict[str, list[int]] = defaultdict(lambda: [0] * self.days)
        self.accepted: dict[str, int] = {}
        self.latencies: list[int] = []

    # -- feeding ----------------------------------------------------------------------------
    def feed(self, e: dict[str, Any]) -> None:
        t = e["t_ms"]
        while t >= self.next_sample and self.next_sample <= self.end:
            self._sample()
        name, device = e["event"], e.get("device_id")
        if name == "wns.notify":
            self._notify(e, t, device)
            return
        if device is None:
            return
        lane = self._lane(device)
        minute = self._minute(t)
        if name == "device.channel":
            self._close_channel(lane, minute, "renewed")
            lane.open_channel = [minute, 0, self._id("valid")]
            self.channel_until[device] = e.get("expires_ms") or t
            heapq.heappush(self.expiring, (self.channel_until[device], device))
            self._set(device, t)
        elif name in ("device.channel_expired", "device.pfn_cleared"):
            self._close_channel(lane, minute, "expired" if "expired" in name else "revoked")
            self.channel_until[device] = t
            self._set(device, t)
        elif name == "device.wns_connection":
            up = bool(e.get("connected"))
            self.connected[device] = up
            old = self.reason_of.pop(device, None)
            if old is not None:
                self.reasons[old] -= 1
            if lane.open_offline is not None:
                lane.open_offline[1] = minute
                lane.offline.append(lane.open_offline)
                lane.open_offline = None
            if not up:
                reason = str(e.get("reason") or "offline")
                self.reason_of[device] = reason
                self.reasons[reason] += 1
                lane.open_offline = [minute, 0, self._id(reason)]
            self._set(device, t)
        elif name == "session.start":
            trigger = str(e.get("trigger") or "")
            self.sessions[trigger][self._day(t)] += 1
            msg = e.get("msg_id") or ""
            accepted = self.accepted.get(msg)
            if accepted is not None:
                self.latencies.append(t - accepted)
            lane.sessions.append(
                [minute, self._id(trigger), self._id(e.get("session_id") or ""), self._id(msg), 0]
            )
        elif name == "session.end" and lane.sessions:
            lane.sessions[-1][4] = self._id(str(e.get("outcome") or ""))

    def _notify(self, e: dict[str, Any], t: int, device: str | None) -> None:
        status = e["status"]
        outcome = f"{status} {e['outcome']}" if status == 200 else str(status)
        self.pushes[outcome][self._day(t)] += 1
        msg = e.get("msg_id") or ""
        if status == 200 and msg:
            self.accepted[msg] = t
        if device is not None:
            lane = self._lane(device)
            lane.pushes.append([self._minute(t), status, self._id(e["outcome"]), self._id(msg)])

    def finish(self) -> None:
        while self.next_sample <= self.end:
            self._sample()
        end = self._minute(self.end)
        for lane in self.lanes.values():
            self._close_channel(lane, end, "open")
            if lane.open_offline is not None:
                lane.open_offline[1] = end
                lane.offline.append(lane.open_offline)
                lane.open_offline = None

    # -- state ------------------------------------------------------------------------------
    def _state(self, device: str, now: int) -> str:
        until = self.channel_until.get(device)
        if until is None:
            return "none"
        if now >= until:
            return "expired"
        return "valid" if self.connected.get(device, True) else "unreachable"

    def _set(self, device: str, now: int) -> None:
        new = self._state(device, now)
        if new != self.state.get(device, "none"):
            self._set_to(device, new)

    def _sample(self) -> None:
        at = self.next_sample
        while self.expiring and self.expiring[0][0] <= at:  # expiries without an event
            until, device = heapq.heappop(self.expiring)
            current = self.channel_until.get(device) == until
            if current and self.state.get(device) in ("valid", "unreachable"):
                self._set_to(device, "expired")
        self.samples.append((self._minute(at), {g: dict(self.counts[g]) for g in self.groups}))
        self.offline_samples.append({r: n for r, n in self.reasons.items() if n})
        self.next_sample += self.step

    def _set_to(self, device: str, new: str) -> None:
        group = self.groups[self.lanes[device].group]
        old = self.state.get(device, "none")
        self.counts[group][old] -= 1
        self.counts[group][new] += 1
        self.state[device] = new

    # -- helpers ----------------------------------------------------------------------------
    def _lane(self, device: str) -> Lane:
        lane = self.lanes.get(device)
        if lane is None:
            group = group_of_id(device, self.groups)
            if group not in self.groups:
                self.groups.append(group)
            lane = self.lanes[device] = Lane(self.groups.index(group))
            self.state[device] = "none"
            self.counts[group]["none"] += 1
        return lane

    def _close_channel(self, lane: Lane, minute: int, how: str) -> None:
        if lane.open_channel is not None:
            lane.open_channel[1] = minute
            lane.open_channel[2] = self._id(how)
            lane.channels.append(lane.open_channel)
            lane.open_channel = None

    def _id(self, text: str) -> int:
        index = self.strings.get(text)
        if index is None:
            index = self.strings[text] = len(self.strings)
        return index

    def _minute(self, t: int) -> int:
        return (t - self.start) // MINUTE

    def _day(self, t: int) -> int:
        return min(self.days - 1, max(0, (t - self.start) // DAY))

    # -- what the page embeds -----------------------------------------------------------------
    def aggregates(self) -> dict[str, Any]:
        """The charts' data: small, whatever the fleet's size."""
        return {
            "start_ms": self.start,
            "end_ms": self.end,
            "step_minutes": self.step // MINUTE,
            "groups": self.groups,
            "states": [
                {
                    "minute": minute,
                    **{g: [counts.get(g, {}).get(s, 0) for s in STATES] for g in self.groups},
                }
                for minute, counts in self.samples
            ],
            "offline": self.offline_samples,
            "pushes_per_day": dict(sorted(self.pushes.items())),
            "sessions_per_day": dict(sorted(self.sessions.items())),
            "latency": self._latency(),
        }

    def _latency(self) -> dict[str, Any]:
        """Push-to-session latencies as a histogram and a few percentiles (the pushes of a
        big fleet are many; the page needs their shape, not each one)."""
        ordered = sorted(self.latencies)
        counts = [0] * len(LATENCY_BINS)
        for value in ordered:
            for index, (edge, _) in enumerate(LATENCY_BINS):
                if edge is None or value < edge:
                    counts[index] += 1
                    break

        def at(q: float) -> int | None:
            return ordered[min(len(ordered) - 1, int(len(ordered) * q))] if ordered else None

        return {
            "bins": [label for _, label in LATENCY_BINS],
            "counts": counts,
            "pushes": len(ordered),
            "p50_ms": at(0.5),
            "p90_ms": at(0.9),
            "p99_ms": at(0.99),
            "max_ms": ordered[-1] if ordered else None,
        }

    def lanes_data(self) -> dict[str, Any]:
        """Every device's lane, compact (loaded by the page when lanes are shown)."""
        strings = [""] * len(self.strings)
        for text, index in self.strings.items():
            strings[index] = text
        return {
            "strings": strings,
            "devices": sorted(self.lanes),
            "lanes": [
                [lane.group, lane.channels, lane.offline, lane.pushes, lane.sessions]
                for _, lane in sorted(self.lanes.items())
            ],
        }
