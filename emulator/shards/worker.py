"""One shard of a run, as its own process: ``python -m emulator.shards.worker JOB.json``.

Owns: reading the job the parent wrote (scenario file, shard index and count, the run's
options), running the world for this shard's devices only (its own clock, fake WNS and
reference server), and writing ``events.jsonl`` (ordered) and ``shard.json`` (which
devices, how it ended) into the job's directory. Progress lines go to stderr, which the
parent relays. SIGTERM stops it with what it has, marked incomplete (exit 130).
Must not: judge or merge (the parent does).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import resource
import sys
from pathlib import Path
from typing import Any

from emulator.logs import configure_logging
from emulator.reports.write import event_line
from emulator.runner import RunOptions, run_scenario
from emulator.scenario.loader import load_scenario
from emulator.scenario.model import EnrollSpec
from emulator.serving import stop_on_sigterm

EVENTS = "events.jsonl"
META = "shard.json"


def job_options(job: dict[str, Any]) -> RunOptions:
    enroll = job.get("enroll")
    return RunOptions(
        shard=(job["index"], job["count"]),
        seed=job.get("seed"),
        resolution_ms=job.get("resolution_ms", 0),
        concurrency=job.get("concurrency", 64),
        transport=job.get("transport", "http"),
        enroll=EnrollSpec(**{**enroll, "certificate": None}) if enroll else None,
        tls_dir=Path(job["tls_dir"]),
        progress=False if job.get("quiet") else None,
        progress_stream=sys.stderr,
        progress_every_s=job.get("progress_every_s", 10.0),
    )


async def run_job(job: dict[str, Any]) -> int:
    out = Path(job["dir"])
    scenario = load_scenario(Path(job["scenario"]))
    with (out / EVENTS).open("w", encoding="utf-8") as events, stop_on_sigterm():

        def write(event: dict[str, Any]) -> None:
            events.write(event_line(event))

        options = dataclasses.replace(job_options(job), sink=write)  # streamed, never held
        result = await run_scenario(scenario, options)
    meta = {
        "group_of": result.group_of,
        "notes": result.notes,
        "complete": result.complete,
        "end_ms": result.end_ms,
        "seed": result.seed,
        "peak_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "wall_s": round(result.wall_s, 3),
    }
    (out / META).write_text(json.dumps(meta), encoding="utf-8")
    return 0 if result.complete else 130


def main(argv: list[str]) -> int:
    job = json.loads(Path(argv[0]).read_text(encoding="utf-8"))
    configure_logging(job.get("log_level", "warning"))
    return asyncio.run(run_job(job))


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
