"""The run's summary: counts a reader checks first, latency figures, expectation verdicts.

Owns: ``summary.json``'s content (``schema: dmemu.summary/1``; keys sorted; only virtual
times except the one ``wall_seconds`` field) and the figures the text table shows.
Must not: judge expectations (``scenario/expect.py``) or write files (``write.py``).
"""

from __future__ import annotations

from collections import Counter
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


def push_latencies(events: list[dict[str, Any]]) -> list[int]:
    """Virtual ms from WNS accepting a push to the session it started (matched by Msg-ID)."""
    accepted = {
        e["msg_id"]: e["t_ms"]
        for e in events
        if e["event"] == "wns.notify" and e.get("msg_id") and e["status"] == 200
    }
    return [
        e["t_ms"] - accepted[e["msg_id"]]
        for e in events
        if e["event"] == "session.start" and e.get("msg_id") in accepted
    ]


def _outcome(notify: dict[str, Any]) -> str:
    """``200 received`` / ``200 cached`` for accepted pushes, the bare status otherwise."""
    status = notify["status"]
    return f"{status} {notify['outcome']}" if status == 200 else str(status)


def build_summary(result: RunResult, verdicts: list[Verdict]) -> dict[str, Any]:
    events = result.events
    kinds = Counter(e["event"] for e in events)
    notifies = [e for e in events if e["event"] == "wns.notify"]
    outcomes = Counter(_outcome(e) for e in notifies)
    starts = [e for e in events if e["event"] == "session.start"]
    ends = [e for e in events if e["event"] == "session.end"]
    channels = [e for e in events if e["event"] == "device.channel"]
    latencies = push_latencies(events)
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
            "sent": len(notifies),
            "by_wns_outcome": dict(sorted(outcomes.items())),
            "gone_410": sum(1 for e in notifies if e["status"] == 410),
            "token_requests": kinds["wns.token"],
        },
        "sessions": {
            "started": len(starts),
            "by_trigger": dict(sorted(Counter(e["trigger"] for e in starts).items())),
            "by_outcome": dict(sorted(Counter(e["outcome"] for e in ends).items())),
            "server_faults": kinds["session.server_fault"],
        },
        "channels": {
            "registrations": sum(1 for e in channels if e.get("kind") == "registration"),
            "renewals": sum(1 for e in channels if e.get("kind") == "renewal"),
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
        "events": len(events),
        "wall_seconds": round(result.wall_s, 3),
    }
