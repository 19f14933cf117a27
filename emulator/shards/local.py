"""A run on local processes: one worker per shard, then one merged log (issue 19).

Owns: splitting the fleet (``split.shard_of``), starting a worker process per shard
(``python -m emulator.shards.worker``) in its own process group, relaying their progress
lines, and stopping every one of them however the run ends: on success, when one dies (the
others are stopped and the run fails naming the shard and its devices), and on Ctrl-C or
SIGTERM (each stops with what it has; the merged result is marked incomplete). Against the
built-in server shards need no coordination until the end: each has its own reference
server for its devices.
Must not: judge (the caller does, on the merged log) or know how a world is built.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from emulator.clock import wall_seconds
from emulator.runner import RunOptions, RunResult
from emulator.scenario.model import Scenario
from emulator.shards.split import merge, read_events, shard_of
from emulator.shards.worker import EVENTS, META

STOP_GRACE_S = 10.0  # after SIGTERM, before SIGKILL


class ShardFailed(Exception):
    """A worker died: which shard, which devices, and the end of what it said."""


async def run_sharded(
    scenario: Scenario,
    options: RunOptions,
    workers: int,
    *,
    err: TextIO | None = None,
    log_level: str = "warning",
    sink: Callable[[dict[str, Any]], None] | None = None,
) -> RunResult:
    """Run ``scenario`` on ``workers`` local processes and merge their logs: into the
    result's events, or, with ``sink``, one event at a time into it (the result's events
    then empty: a big fleet's log is never held)."""
    err = err or sys.stderr
    started = wall_seconds()
    devices = [d for g in scenario.groups for d in g.device_ids()]
    with tempfile.TemporaryDirectory(prefix="dmemu-shards-") as tmp:
        dirs = [Path(tmp) / f"shard-{i}" for i in range(workers)]
        procs: list[asyncio.subprocess.Process] = []
        tails: list[list[str]] = [[] for _ in range(workers)]
        complete = True
        try:
            for i, where in enumerate(dirs):
                where.mkdir()
                job = _job(scenario, options, i, workers, where, log_level)
                (where / "job.json").write_text(json.dumps(job), encoding="utf-8")
                procs.append(
                    await asyncio.create_subprocess_exec(
                        sys.executable,
                        "-m",
                        "emulator.shards.worker",
                        str(where / "job.json"),
                        stdout=asyncio.subprocess.DEVNULL,
                        stderr=asyncio.subprocess.PIPE,
                        start_new_session=True,  # Ctrl-C reaches us; we stop them
                    )
                )
            relays = [
                asyncio.create_task(_relay(p, i, workers, err, tails[i]))
                for i, p in enumerate(procs)
            ]
            waits = {asyncio.create_task(p.wait()): i for i, p in enumerate(procs)}
            pending = set(waits)
            while pending:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for finished in done:
                    index = waits[finished]
                    code = finished.result()
                    if code not in (0, 130):
                        await _stop(procs)
                        await asyncio.gather(*relays, return_exceptions=True)
                        mine = [d for d in devices if shard_of(d, workers) == index]
                        raise ShardFailed(_failure(index, workers, code, mine, tails[index]))
                    complete = complete and code == 0
            await asyncio.gather(*relays, return_exceptions=True)
        except asyncio.CancelledError:
            task = asyncio.current_task()
            await _stop(procs)
            if task is None or task.uncancel() > 0:
                raise
            complete = False
        finally:
            await _stop(procs)
        metas = [
            json.loads((d / META).read_text(encoding="utf-8")) for d in dirs if (d / META).exists()
        ]
        if len(metas) < workers:
            complete = False
        merged = merge(read_events(d / EVENTS) for d in dirs if (d / EVENTS).exists())
        events: list[dict[str, Any]] = []
        if sink is None:
            events = list(merged)
        else:
            for event in merged:
                sink(event)
    group_of: dict[str, str] = {}
    notes: list[str] = []
    for index, meta in enumerate(metas):
        if options.progress is not False:
            print(
                f"dmemu: shard {index + 1}/{workers}: {meta['wall_s']:.1f} s, "
                f"peak memory {meta['peak_mb']:.0f} MB",
                file=err,
                flush=True,
            )
        group_of.update(meta["group_of"])
        notes += [n for n in meta["notes"] if n not in notes]
    end = min((m["end_ms"] for m in metas), default=scenario.start_ms)
    seed = scenario.seed if options.seed is None else options.seed
    return RunResult(
        scenario=scenario,
        seed=seed,
        server="reference",
        start_ms=scenario.start_ms,
        end_ms=end,
        events=events,
        devices={},  # each lived in its worker
        group_of=group_of,
        wall_s=wall_seconds() - started,
        notes=notes,
        complete=complete and all(m["complete"] for m in metas),
    )


def _job(
    scenario: Scenario, options: RunOptions, index: int, count: int, where: Path, level: str
) -> dict[str, Any]:
    return {
        "scenario": str(Path(scenario.path).resolve()),
        "index": index,
        "count": count,
        "dir": str(where),
        "seed": options.seed,
        "resolution_ms": options.resolution_ms,
        "concurrency": options.concurrency,
        "transport": options.transport,
        "enroll": dataclasses.asdict(options.enroll) if options.enroll else None,
        "tls_dir": str(options.tls_dir.resolve()),
        "quiet": options.progress is False,
        "progress_every_s": options.progress_every_s,
        "log_level": level,
    }


async def _relay(
    proc: asyncio.subprocess.Process, index: int, count: int, err: TextIO, tail: list[str]
) -> None:
    """A worker's stderr, each line said as the shard's, its last lines kept."""
    assert proc.stderr is not None
    async for raw in proc.stderr:
        line = raw.decode("utf-8", "replace").rstrip()
        tail.append(line)
        del tail[:-20]
        text = line.removeprefix("dmemu: ")
        print(f"dmemu: shard {index + 1}/{count}: {text}", file=err, flush=True)


async def _stop(procs: list[asyncio.subprocess.Process]) -> None:
    """SIGTERM to every worker still running, SIGKILL to those that outlive the grace."""
    running = [p for p in procs if p.returncode is None]
    for proc in running:
        proc.terminate()
    for proc in running:
        try:
            await asyncio.wait_for(proc.wait(), STOP_GRACE_S)
        except TimeoutError:
            proc.kill()
            await proc.wait()


def _failure(index: int, count: int, code: int, devices: list[str], tail: list[str]) -> str:
    how = f"was killed by signal {-code}" if code < 0 else f"exited with {code}"
    shown = ", ".join(devices[:5]) + (f" and {len(devices) - 5} more" if len(devices) > 5 else "")
    said = ("; its last words: " + " | ".join(tail[-3:])) if tail else ""
    return (
        f"shard {index + 1}/{count} {how}; its {len(devices)} devices ({shown}) have no "
        f"results; the other shards were stopped{said}"
    )
