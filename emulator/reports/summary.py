"""The run's summary: counts a reader checks first, latency figures, expectation verdicts.

Owns: ``summary.json``'s content (``schema: dmemu.summary/1``; keys sorted; only virtual
times except the one ``wall_seconds`` field) and the figures the text table shows.
Must not: judge expectations (``scenario/expect.py``) or write files (``write.py``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

from emulator.clock import DAY, iso
from emulator.runner import RunResult
from emulator.scenario.expect import Verdict

SCHEMA = "dmemu.summary/1"


def percentile(values: list[int], q: float) -> int | None:
    """Nearest-rank percentile (``q`` in 0..100) of integer samples; None without samples."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * q // 100))
    return ordered[int(rank) - 1]


class Tally:
    """The summary's figures, counted in one pass over the log, event by event: a sharded
    run's merged stream is counted as it is written, never held."""

    def __init__(self) -> None:
        self.kinds: Counter[str] = Counter()
        self.outcomes: Counter[str] = Counter()  # pushes by WNS outcome
        self.gone_410 = 0
        self.triggers: Counter[str] = Counter()  # sessions started, by trigger
        self.session_outcomes: Counter[str] = Counter()
        self.channel_kinds: Counter[str] = Counter()  # registration | renewal
        self.accepted: dict[str, int] = {}  # Msg-ID -> when WNS accepted it
        self.latencies: list[int] = []  # push to session, virtual ms (one per push)
        self.events = 0

    @classmethod
    def of(cls, events: Iterable[dict[str, Any]]) -> Tally:
        tally = cls()
        for event in events:
            tally.feed(event)
        return tally

    def feed(self, e: dict[str, Any]) -> None:
        self.events += 1
        name = e["event"]
        self.kinds[name] += 1
        if name == "wns.notify":
            self.outcomes[_outcome(e)] += 1
            if e["status"] == 410:
                self.gone_410 += 1
            if e["status"] == 200 and e.get("msg_id"):
                self.accepted[e["msg_id"]] = e["t_ms"]
        elif name == "session.start":
            self.triggers[e["trigger"]] += 1
            accepted = self.accepted.get(e.get("msg_id") or "")
            if accepted is not None:
                self.latencies.append(e["t_ms"] - accepted)
        elif name == "session.end":
            self.session_outcomes[e["outcome"]] += 1
        elif name == "device.channel":
            self.channel_kinds[e.get("kind") or ""] += 1


def _outcome(notify: dict[str, Any]) -> str:
    """``200 received`` / ``200 cached`` for accepted pushes, the bare status otherwise."""
    status = notify["status"]
    return f"{status} {notify['outcome']}" if status == 200 else str(status)


def build_summary(
    result: RunResult, verdicts: list[Verdict], tally: Tally | None = None
) -> dict[str, Any]:
    """``tally``: the log already counted (a streamed run); else ``result.events`` is."""
    t = tally if tally is not None else Tally.of(result.events)
    kinds, latencies = t.kinds, t.latencies
    s = result.scenario
    return {
        "schema": SCHEMA,
        "scenario": {
            "name": s.name,
            "file": s.path,
            "seed": result.seed,
            "devices": s.device_count,
            "groups": {g.name: g.count for g in s.groups},
            "days": s.duration_ms / DAY,
            "start": iso(result.start_ms),
            "end": iso(result.end_ms),
        },
        "server": result.server,
        "pushes": {
            "sent": kinds["wns.notify"],
            "by_wns_outcome": dict(sorted(t.outcomes.items())),
            "gone_410": t.gone_410,
            "token_requests": kinds["wns.token"],
        },
        "sessions": {
            "started": kinds["session.start"],
            "by_trigger": dict(sorted(t.triggers.items())),
            "by_outcome": dict(sorted(t.session_outcomes.items())),
            "server_faults": kinds["session.server_fault"],
        },
        "channels": {
            "registrations": t.channel_kinds["registration"],
            "renewals": t.channel_kinds["renewal"],
            "renewal_failures": kinds["device.renewal_failed"],
            "expiries": kinds["device.channel_expired"],
            "refused": kinds["device.channel_refused"],
        },
        "push_to_session_ms": {
            "count": len(latencies),
            "p50": percentile(latencies, 50),
            "p99": percentile(latencies, 99),
            "max": max(latencies) if latencies else None,
        },
        "expectations": [
            {
                "name": v.name,
                "kind": v.kind,
                "passed": v.passed,
                "detail": v.detail,
                "evidence": v.evidence,
                "line": v.line,
                "seconds": round(v.seconds, 6),
            }
            for v in verdicts
        ],
        # a run stopped early (Ctrl-C, SIGTERM) holds what it had, but never passes
        "complete": result.complete,
        "passed": result.complete and all(v.passed for v in verdicts),
        "notes": result.notes,
        "events": t.events,
        "wall_seconds": round(result.wall_s, 3),
    }
