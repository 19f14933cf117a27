"""The end-of-run table a person reads: counts, latency, and each expectation's verdict."""

from __future__ import annotations

from typing import Any


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
        f"p50 {la['p50']} ms, p99 {la['p99']} ms over {la['count']} pushes"
        if la["count"]
        else "no push started a session"
    )
    rows = [
        (
            "scenario",
            f"{sc['name']} (seed {sc['seed']}, {sc['devices']} devices, "
            f"{sc['days']:g} days, server: {summary['server']})",
        ),
        (
            "pushes",
            f"{pu['sent']} sent: {_pairs(pu['by_wns_outcome'])}; "
            f"{pu['token_requests']} token requests",
        ),
        ("sessions", f"{se['started']} started: {_pairs(se['by_trigger'])}"),
        ("session ends", f"{_pairs(se['by_outcome'])}; {se['server_faults']} server faults"),
        (
            "channels",
            f"{ch['registrations']} registrations, {ch['renewals']} renewals, "
            f"{ch['expiries']} expiries, {pu['gone_410']} pushes answered 410",
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
    lines.append(
        ("PASSED" if ok else "FAILED") + f" in {summary['wall_seconds']:.1f} s wall, "
        f"{summary['events']} events"
    )
    return "\n".join(lines)
