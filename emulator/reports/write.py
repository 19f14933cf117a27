"""Writing a run's files into ``--out DIR``: ``events.jsonl``, ``summary.json``,
``junit.xml`` (one test case per expectation, failures carrying their evidence).

Owns: file formats and stable bytes (sorted keys, ISO time added beside ``t_ms``), and the
JUnit writer the conformance report uses too.
Must not: compute figures (``summary.py``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from junitparser import Failure, JUnitXml, Skipped, TestCase, TestSuite

from emulator.clock import iso


def event_line(event: dict[str, Any]) -> str:
    """One event as a JSON line, keys sorted: identical runs give identical bytes."""
    line = {"t": iso(event["t_ms"]), **event}
    return json.dumps(line, sort_keys=True, separators=(",", ":")) + "\n"


@dataclass(frozen=True, slots=True)
class Case:
    """One JUnit test case: an expectation of a run, or a conformance check."""

    name: str
    classname: str
    outcome: str = "passed"  # passed | failed | skipped
    message: str = ""  # the failure's or skip's one line
    details: str = ""  # a failure's evidence, or a passed case's system-out
    seconds: float = 0.0  # wall time judging it took


def junit_xml(suite_name: str, cases: list[Case], seconds: float) -> str:
    """The suite's ``time`` is the run's wall time (what CI waited for); each case's is the
    wall time its judging took."""
    suite = TestSuite(suite_name)
    for c in cases:
        case = TestCase(c.name, classname=c.classname, time=round(c.seconds, 6))
        if c.outcome == "failed":
            failure = Failure(c.message)
            failure.text = c.details
            case.result = [failure]
        elif c.outcome == "skipped":
            case.result = [Skipped(c.message)]
        elif c.details:
            case.system_out = c.details
        suite.add_testcase(case)
    suite.update_statistics()  # type: ignore[no-untyped-call]
    suite.time = round(seconds, 3)
    xml = JUnitXml()
    xml.add_testsuite(suite)
    raw: bytes = xml.tostring()  # type: ignore[no-untyped-call]
    return raw.decode("utf-8")


def junit(summary: dict[str, Any], suite_name: str) -> str:
    """One test case per expectation of a run."""
    return junit_xml(
        suite_name,
        [
            Case(
                v["name"],
                f"dmemu.{suite_name}",
                "passed" if v["passed"] else "failed",
                v["detail"],
                "" if v["passed"] else "\n".join(v["evidence"]),
                v.get("seconds", 0.0),
            )
            for v in summary["expectations"]
        ],
        summary["wall_seconds"],
    )


def write_run(out: Path, events: list[dict[str, Any]], summary: dict[str, Any]) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    log_path = out / "events.jsonl"
    with log_path.open("w", encoding="utf-8") as log:
        log.writelines(map(event_line, events))  # a line at a time: a long run's log is big
    return [log_path, *write_summary(out, summary)]


def write_summary(out: Path, summary: dict[str, Any]) -> list[Path]:
    """``summary.json`` and ``junit.xml`` (a streamed run wrote its events.jsonl already)."""
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "summary.json", out / "junit.xml"]
    paths[0].write_text(json.dumps(summary, sort_keys=True, indent=1) + "\n", encoding="utf-8")
    paths[1].write_text(junit(summary, summary["scenario"]["name"]), encoding="utf-8")
    return paths
