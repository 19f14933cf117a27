"""Writing a run's files into ``--out DIR``: ``events.jsonl``, ``summary.json``,
``junit.xml`` (one test case per expectation, failures carrying their evidence).

Owns: file formats and stable bytes (sorted keys, ISO time added beside ``t_ms``).
Must not: compute figures (``summary.py``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from junitparser import Failure, JUnitXml, TestCase, TestSuite

from emulator.clock import iso


def event_lines(events: list[dict[str, Any]]) -> str:
    """One JSON object per line, keys sorted: identical runs give identical bytes."""
    return "".join(
        json.dumps({"t": iso(e["t_ms"]), **e}, sort_keys=True, separators=(",", ":")) + "\n"
        for e in events
    )


def junit(summary: dict[str, Any], suite_name: str) -> str:
    suite = TestSuite(suite_name)
    for verdict in summary["expectations"]:
        case = TestCase(verdict["name"], classname=f"dmemu.{suite_name}")
        if not verdict["passed"]:
            failure = Failure(verdict["detail"])
            failure.text = "\n".join(verdict["evidence"])
            case.result = [failure]
        suite.add_testcase(case)
    xml = JUnitXml()
    xml.add_testsuite(suite)
    raw: bytes = xml.tostring()  # type: ignore[no-untyped-call]
    return raw.decode("utf-8")


def write_run(out: Path, events: list[dict[str, Any]], summary: dict[str, Any]) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "events.jsonl", out / "summary.json", out / "junit.xml"]
    paths[0].write_text(event_lines(events), encoding="utf-8")
    paths[1].write_text(json.dumps(summary, sort_keys=True, indent=1) + "\n", encoding="utf-8")
    paths[2].write_text(junit(summary, summary["scenario"]["name"]), encoding="utf-8")
    return paths
