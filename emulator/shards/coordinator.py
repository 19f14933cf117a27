"""A run on shards: start them, advance them, collect one merged log (issue 19).

Owns: splitting the fleet (``split.shard_of``), hosting a shard per worker (local processes,
or Ray actors with ``--cluster``), deciding how they advance, and stopping every one however
the run ends: on success, when one dies (the others are stopped and the run fails naming the
shard and its devices), and on Ctrl-C or SIGTERM (each stops where it is and finishes with
what it has; the merged result is marked incomplete).

How shards advance:
* against the built-in server, each shard has its own reference server for its devices, so
  they need no coordination until the end: each is told to advance to the end at once;
* against an external server, the shards keep in lockstep: each is advanced to T, then all
  to the next T, one window at a time (``--resolution``, at least a second), so no shard's
  clock runs more than a window ahead of another's; a stretch where no shard has anything
  due is skipped in one step (each answers the next instant it has something due).

Must not: judge (the caller does, on the merged log) or know how a world is built.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import tempfile
from collections.abc import Callable
from operator import methodcaller
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO
from urllib.parse import urlsplit

from emulator.clock import SECOND, wall_seconds, wall_sleep
from emulator.progress import shown_figures
from emulator.runner import RunOptions, RunResult
from emulator.scenario.model import Scenario
from emulator.shards.hosts import ProcessHost, ShardDied, ShardFailed, ShardHost
from emulator.shards.runtime import job_for
from emulator.shards.split import merge, read_events, shard_of

if TYPE_CHECKING:
    from emulator.shards.ray_host import RayHost

MIN_LOCKSTEP_MS = SECOND  # the narrowest lockstep window against an external server


def _jobs(
    scenario: Scenario, options: RunOptions, workers: int, log_level: str
) -> list[dict[str, Any]]:
    return [
        {**job_for(options, Path(scenario.path), i, workers), "log_level": log_level}
        for i in range(workers)
    ]


async def run_sharded(
    scenario: Scenario,
    options: RunOptions,
    workers: int | None,
    *,
    cluster: str | None = None,
    err: TextIO | None = None,
    log_level: str = "warning",
    sink: Callable[[dict[str, Any]], None] | None = None,
) -> RunResult:
    """Run ``scenario`` on ``workers`` shards and merge their logs: into the result's
    events, or, with ``sink``, one event at a time into it (the result's events then empty:
    a big fleet's log is never held). ``workers`` None: one per CPU of the ``cluster``.
    Raises :class:`ShardFailed` when a shard dies."""
    err = err or sys.stderr
    started = wall_seconds()
    with tempfile.TemporaryDirectory(prefix="dmemu-shards-") as tmp, contextlib.ExitStack() as up:
        hosts: list[ShardHost]
        if cluster is None:
            assert workers is not None
            jobs = _jobs(scenario, options, workers, log_level)
            hosts = [
                ProcessHost(i, workers, j, Path(tmp) / f"shard-{i}", err)
                for i, j in enumerate(jobs)
            ]
        else:
            from emulator.shards.ray_host import RayCluster  # the optional extra, when asked

            ray_cluster = RayCluster(cluster, workers)
            up.callback(ray_cluster.shutdown)
            workers = workers or ray_cluster.cpus()
            actors = ray_cluster.hosts(_jobs(scenario, options, workers, log_level))
            hosts = list(actors)
            if options.progress is not False:  # actors have no stderr of ours to relay
                reporter = asyncio.create_task(_report(actors, options.progress_every_s, err))
                up.callback(reporter.cancel)
        complete = True
        metas: list[dict[str, Any]] = []
        logs: list[Path] = []
        try:
            try:
                starts = await _all(hosts, methodcaller("start"))
                if options.announce is not None and starts[0]["settings"]:
                    options.announce(_settings(starts))
                end = min(s["end_ms"] for s in starts)
                if options.server_url is None:
                    await _all(hosts, methodcaller("advance", end))
                else:
                    window = max(options.resolution_ms, MIN_LOCKSTEP_MS)
                    await _lockstep(hosts, scenario.start_ms, end, window)
                metas = await _all(hosts, methodcaller("finish"))
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if task is None or task.uncancel() > 0:
                    raise
                complete = False
                metas = await _finish_interrupted(hosts)
            logs = [await h.events(Path(tmp)) for h in hosts]
        except ShardDied as died:
            await asyncio.gather(*(h.kill() for h in hosts), return_exceptions=True)
            raise ShardFailed(_failure(scenario, died, workers)) from None
        finally:
            await asyncio.gather(*(h.close() for h in hosts), return_exceptions=True)
        merged = merge(read_events(path) for path in logs if path.exists())
        result = _result(scenario, options, metas, workers, complete, err)
        if sink is None:
            result.events = list(merged)
        else:
            for event in merged:
                sink(event)
    result.wall_s = wall_seconds() - started
    return result


async def _all(hosts: list[ShardHost], call: Callable[[ShardHost], Any]) -> list[dict[str, Any]]:
    """``call`` on every shard at once; the first that dies cancels the others' calls."""
    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(call(h)) for h in hosts]
    except* ShardDied as dead:
        raise dead.exceptions[0] from None
    return [t.result() for t in tasks]


async def _report(hosts: list[RayHost], every_s: float, err: TextIO) -> None:
    """A line per Ray actor every ``every_s`` wall seconds (a local worker's own lines come
    on its stderr, relayed as they come)."""
    count = len(hosts)
    while True:
        await wall_sleep(every_s)
        for host in hosts:
            with contextlib.suppress(ShardDied):
                figures = await host.figures()
                if figures:
                    day, days = figures.pop("day"), figures.pop("days")
                    shown = shown_figures(figures)
                    print(
                        f"dmemu: shard {host.index + 1}/{count}: day {day}/{days}: {shown}",
                        file=err,
                        flush=True,
                    )


async def _lockstep(hosts: list[ShardHost], start: int, end: int, window: int) -> None:
    """Every shard to T, then to the next T: T moves a window past the earliest instant any
    shard has something due, so quiet stretches pass in one step."""
    until = start
    while until < end:
        answers = await _all(hosts, methodcaller("advance", until))
        due = [a["next"] for a in answers if a["next"] is not None]
        if not all(a["complete"] for a in answers):
            return
        until = end if not due else min(end, max(min(due), until) + window - 1)
    await _all(hosts, methodcaller("advance", end))


async def _finish_interrupted(hosts: list[ShardHost]) -> list[dict[str, Any]]:
    """Ctrl-C or SIGTERM: each shard stops where it is and finishes with what it has; one
    that cannot is stopped and the run does without its figures."""
    for host in hosts:
        host.interrupt()
    metas = []
    for host in hosts:
        with contextlib.suppress(ShardDied, TimeoutError):
            metas.append(await asyncio.wait_for(host.finish(), 30))
    return metas


def _settings(starts: list[dict[str, Any]]) -> list[str]:
    """The first shard's settings for the server under test, and every shard's WNS host
    (the server sends each device's pushes to the ChannelURI that device gave it)."""
    lines = list(starts[0]["settings"])
    hosts = []
    for start in starts:
        for line in start["settings"]:
            if line.strip().startswith("WNS host to trust"):
                hosts.append(line.split()[4])
    if len(hosts) > 1:
        netlocs = sorted({urlsplit(f"//{h}").hostname or h for h in hosts})
        lines.append(
            f"  the shards' WNS     {', '.join(hosts)}  (trust {', '.join(netlocs)}; any "
            "shard's token is good on every shard)"
        )
    return lines


def _result(
    scenario: Scenario,
    options: RunOptions,
    metas: list[dict[str, Any]],
    workers: int,
    complete: bool,
    err: TextIO,
) -> RunResult:
    notes: list[str] = []
    for index, meta in enumerate(metas):
        if options.progress is not False:
            print(
                f"dmemu: shard {index + 1}/{workers}: {meta['wall_s']:.1f} s, "
                f"peak memory {meta['peak_mb']:.0f} MB",
                file=err,
                flush=True,
            )
        notes += [n for n in meta["notes"] if n not in notes]
    end = min((m["end_ms"] for m in metas), default=scenario.start_ms)
    seed = scenario.seed if options.seed is None else options.seed
    return RunResult(
        scenario=scenario,
        seed=seed,
        server=options.server_url or "reference",
        start_ms=scenario.start_ms,
        end_ms=end,
        events=[],
        devices={},  # each lived in its shard
        group_of={d: g.name for g in scenario.groups for d in g.device_ids()},
        notes=notes,
        complete=complete and len(metas) == workers and all(m["complete"] for m in metas),
    )


def _failure(scenario: Scenario, died: ShardDied, count: int) -> str:
    devices = [
        d for g in scenario.groups for d in g.device_ids() if shard_of(d, count) == died.index
    ]
    shown = ", ".join(devices[:5]) + (f" and {len(devices) - 5} more" if len(devices) > 5 else "")
    said = ("; its last words: " + " | ".join(died.tail[-3:])) if died.tail else ""
    return (
        f"shard {died.index + 1}/{count} {died.how}; its {len(devices)} devices ({shown}) have "
        f"no results; the other shards were stopped{said}"
    )
