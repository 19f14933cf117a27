"""``dmemu conformance``: run the provoking scenario against a server, judge every check.

Owns: running ``scenarios/conformance/suite.yaml`` (with every SyncML exchange recorded)
against the reference server or ``--server`` with its hooks, turning each check into a
verdict (``skipped (no hook: NAME)`` when the server cannot be asked to act, never passed),
the exit code (0 when every MUST passes, and every SHOULD under ``--strict``; 1 otherwise),
the table, ``conformance.json`` and ``junit.xml``.
Must not: judge (the check modules do) or build the world (``runner.py``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import structlog

from emulator.clock import wall_seconds
from emulator.conformance.evidence import Evidence
from emulator.conformance.registry import Check, Verdict, ordered
from emulator.reports.html import write_conformance_report
from emulator.reports.write import Case, event_line, junit_xml
from emulator.runner import RunOptions, RunResult, run_scenario
from emulator.scenario.loader import load_scenario

SUITE = Path(__file__).resolve().parents[2] / "scenarios" / "conformance" / "suite.yaml"
WAITS_SUITE = SUITE.with_name("waits.yaml")  # D1-D4 paced, for --server-cmd
SCHEMA = "dmemu.conformance/1"
_log = structlog.get_logger("dmemu.conformance")


@dataclass
class Report:
    server: str
    rows: list[tuple[Check, Verdict]]
    strict: bool
    result: RunResult
    notes: list[str] = field(default_factory=list)

    def passed(self) -> bool:
        """Every MUST passed (every SHOULD too when strict), on a run that went to its end."""
        bad = {"failed", "warning"} if self.strict else {"failed"}
        return self.result.complete and not any(v.status in bad for _, v in self.rows)

    def as_json(self) -> dict[str, Any]:
        counts: dict[str, int] = {}
        for _, v in self.rows:
            counts[v.status] = counts.get(v.status, 0) + 1
        return {
            "schema": SCHEMA,
            "server": self.server,
            "strict": self.strict,
            "complete": self.result.complete,  # False: stopped by Ctrl-C or SIGTERM
            "passed": self.passed(),
            "counts": dict(sorted(counts.items())),
            "checks": [
                {
                    "id": c.id,
                    "slug": c.slug,
                    "level": c.level,
                    "title": c.title,
                    "sources": list(c.sources),
                    "provoked_by": c.provoked_by,
                    "verdict": v.status,
                    "reason": v.reason,
                    "evidence": v.evidence,
                }
                for c, v in self.rows
            ],
            "notes": self.notes,
            "wall_seconds": round(self.result.wall_s, 3),
        }


def select(only: str | None) -> list[Check]:
    """The checks to run: all, or those ``--only`` names (ids or slugs, comma-separated)."""
    checks = ordered()
    if not only:
        return checks
    wanted = {w.strip().upper() for w in only.split(",") if w.strip()}
    chosen = [c for c in checks if c.id in wanted or c.slug.upper() in wanted]
    known = {c.id for c in chosen} | {c.slug.upper() for c in chosen}
    unknown = sorted(wanted - known)
    if unknown:
        ids = ", ".join(c.id for c in checks)
        raise ValueError(f"unknown check {', '.join(unknown)} (known: {ids})")
    return chosen


async def run_conformance(
    options: RunOptions, checks: list[Check], *, strict: bool = False, push_limit: int = 12
) -> Report:
    scenario = load_scenario(SUITE)
    result = await run_scenario(scenario, replace(options, record_exchanges=True))
    evidence = Evidence(result, push_limit=push_limit)
    missing = set()
    if options.server_url is not None:
        hooks = options.hooks
        missing = {
            h for h in ("push", "queue_command") if hooks is None or getattr(hooks, h) is None
        }
    # a server in another process waits on its own clock while virtual time leaps: a wait it
    # makes (Retry-After, back-off, a rate window) cannot be told from days of virtual time
    unjudged = _unjudged(options)
    waits = await _waits_evidence(options, checks, push_limit)
    rows = []
    for c in checks:
        started = wall_seconds()
        paced = waits if c.server_clock == "waits" else None
        verdict = _judge(c, paced or evidence, missing)
        why = None if paced else unjudged.get(c.server_clock or "")
        if why is not None and verdict.status in ("passed", "warning"):
            verdict = Verdict("skipped", f"{why} (it would say: {verdict.reason})")
        rows.append((c, replace(verdict, seconds=wall_seconds() - started)))
    return Report(result.server, rows, strict, result, result.notes)


OWN_CLOCK = (
    "not judged: the server runs on its own clock while virtual time leaps; start it on "
    "dmemu's with --server-cmd, or run with --rate 1 (real time)"
)
#: emulated seconds per real second of the waits run (two emulated hours in 12 s)
WAITS_RATE = 600.0


async def _waits_evidence(
    options: RunOptions, checks: list[Check], push_limit: int
) -> Evidence | None:
    """For a server dmemu started on virtual time (--server-cmd), the waits checks (D1-D4)
    are judged on a second, short run in real time at ``WAITS_RATE`` (the server's clock
    and sleeps at that rate too, through libfaketime): there its waits are measured right.
    None when that run is not needed."""
    waits = [c for c in checks if c.server_clock == "waits"]
    if not waits or options.server_cmd is None or options.rate is not None:
        return None
    paced = replace(options, record_exchanges=True, rate=WAITS_RATE, announce=None)
    result = await run_scenario(load_scenario(WAITS_SUITE), paced)
    return Evidence(result, push_limit=push_limit)


def _unjudged(options: RunOptions) -> dict[str, str]:
    """Which server-clock checks cannot be judged in this run, and why."""
    if options.server_url is None or options.rate == 1.0:
        return {}  # the reference server in process, or real time: its clock is the run's
    if options.server_cmd is not None:
        # started on the run's clock: its reads follow it, and its waits are judged at a
        # rate (the whole run's --rate R, or the paced waits run: _waits_evidence)
        return {}
    return {"reads": OWN_CLOCK, "waits": OWN_CLOCK}


def _judge(c: Check, evidence: Evidence, missing: set[str]) -> Verdict:
    lacking = [h for h in c.needs if h in missing]
    if lacking:
        return Verdict("skipped", f"no hook: {', '.join(lacking)}")
    try:
        return c.run(evidence)
    except Exception as exc:  # a bug of ours must not hide the other verdicts
        _log.exception("conformance.judge_failed", check=c.id)
        return Verdict("failed", f"the check itself failed ({type(exc).__name__}: {exc})")


def render(report: Report) -> str:
    lines = [f"conformance of {report.server}", ""]
    lines.append(f"{'check':24} {'level':6} {'verdict':8} reason")
    for c, v in report.rows:
        lines.append(f"{c.name:24} {c.level:6} {v.status:8} {v.reason}")
        for item in v.evidence[:3]:
            lines.append("    " + _one_line(item))
        if len(v.evidence) > 3:
            lines.append(f"    ... {len(v.evidence) - 3} more in conformance.json")
    for note in report.notes:
        lines.append(f"note: {note}")
    counts = report.as_json()["counts"]
    lines.append("")
    lines.append(
        ("PASSED" if report.passed() else "FAILED")
        + ": "
        + ", ".join(f"{n} {k}" for k, n in counts.items())
        + (" (strict: warnings fail)" if report.strict else "")
        + f"; {report.result.wall_s:.1f} s wall"
    )
    return "\n".join(lines)


def _one_line(item: dict[str, Any]) -> str:
    keys = ("t", "device", "request", "status", "session_id", "msg_id", "rule")
    return " ".join(f"{k}={item[k]}" for k in keys if item.get(k) not in (None, ""))


def junit(report: Report) -> str:
    """One test case per check; a SHOULD's warning fails only under ``--strict``."""
    cases = []
    for c, v in report.rows:
        failed = v.status == "failed" or (v.status == "warning" and report.strict)
        outcome = "failed" if failed else "skipped" if v.status == "skipped" else "passed"
        if failed:
            details = "\n".join(json.dumps(e, sort_keys=True) for e in v.evidence)
        else:
            details = f"warning (SHOULD): {v.reason}" if v.status == "warning" else ""
        name = f"{c.name}: {c.title}"
        cases.append(Case(name, f"conformance.{c.level}", outcome, v.reason, details, v.seconds))
    return junit_xml("dmemu-conformance", cases, report.result.wall_s)


def write_report(out: Path, report: Report) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "conformance.json", out / "junit.xml", out / "events.jsonl"]
    paths[0].write_text(json.dumps(report.as_json(), sort_keys=True, indent=1) + "\n")
    paths[1].write_text(junit(report))
    with paths[2].open("w", encoding="utf-8") as log:  # the evidence's context, for the page
        log.writelines(map(event_line, report.result.events))
    return [*paths, write_conformance_report(out)]
