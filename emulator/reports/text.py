"""The end-of-run table a person reads: counts, latency, and each expectation's verdict."""

from __future__ import annotations

from typing import Any


def human_ms(ms: int | None) -> str:
    """Emulated durations for people: 0 ms, 850 ms, 12.5 s, 7 min, 3 h 20 min, 4 d 23 h."""
    if ms is None:
        return "-"
    if ms < 1000:
        return f"{ms} ms"
    if ms < 60_000:
        return f"{ms / 1000:.1f} s"
    minutes = ms // 60_000
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"


def plural(n: int, noun: str) -> str:
    """``1 push``, ``2 pushes``, ``1 device``, ``22 devices``, ``0 expiries``."""
    if n == 1:
        return f"1 {noun}"
    if noun.endswith("y") and noun[-2:-1] not in "aeiou":
        return f"{n} {noun[:-1]}ies"
    return f"{n} {noun}es" if noun.endswith(("s", "sh", "ch", "x")) else f"{n} {noun}s"


def _pairs(mapping: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in mapping.items()) or "none"


def render(summary: dict[str, Any]) -> str:
    sc, pu, se, ch, la = (
        summary["scenario"],
        summary["pushes"],
        summary["sessions"],
        summary["channels"],
        summary["push_to_session_ms"],
    )
    latency = (
        f"p50 {human_ms(la['p50'])}, p99 {human_ms(la['p99'])}, max {human_ms(la['max'])} "
        f"over {plural(la['count'], 'push')} (emulated time; a cached push waits for its "
        "device)"
        if la["count"]
        else "no push started a session"
    )
    rows = [
        (
            "scenario",
            f"{sc['name']} (seed {sc['seed']}, {plural(sc['devices'], 'device')}, "
            f"{sc['days']:g} days, server: {summary['server']})",
        ),
        (
            "pushes",
            f"{pu['sent']} sent: {_pairs(pu['by_wns_outcome'])}; "
            f"{plural(pu['token_requests'], 'token request')}",
        ),
        ("sessions", f"{se['started']} started: {_pairs(se['by_trigger'])}"),
        (
            "session ends",
            f"{_pairs(se['by_outcome'])}; {plural(se['server_faults'], 'server fault')}",
        ),
        (
            "channels",
            f"{plural(ch['registrations'], 'registration')}, "
            f"{plural(ch['renewals'], 'renewal')}, {plural(ch['expiries'], 'expiry')}, "
            f"{plural(pu['gone_410'], 'push')} answered 410",
        ),
        ("push -> session", latency),
    ]
    width = max(len(k) for k, _ in rows)
    lines = [f"{k.ljust(width)}  {v}" for k, v in rows]
    lines.append("")
    lines.append("expectations")
    for verdict in summary["expectations"]:
        mark = "PASS" if verdict["passed"] else "FAIL"
        lines.append(f"  {mark}  {verdict['name']}: {verdict['detail']}")
        for item in verdict["evidence"]:
            lines.append(f"          {item}")
    if not summary["expectations"]:
        lines.append("  (none)")
    for note in summary["notes"]:
        lines.append(f"note: {note}")
    ok = summary["passed"]
    lines.append("")
    verdict = "PASSED" if ok else "FAILED"
    if not summary.get("complete", True):
        verdict = f"INCOMPLETE (stopped at {summary['scenario']['end']})"
    lines.append(
        f"{verdict} in {summary['wall_seconds']:.1f} s wall, {plural(summary['events'], 'event')}"
    )
    return "\n".join(lines)
