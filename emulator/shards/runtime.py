"""One shard's world, driven step by step: the far end of the shard protocol (issue 19).

Owns: the job a coordinator sends (the scenario, this shard's index and the count, the run's
options, as JSON), building the shard's :class:`~emulator.runner.ScenarioRun` from it, and the
protocol's operations:

* ``start``: build the world (its own clock, fake WNS, reference server or devices of an
  external one) and say what an external server must be configured with;
* ``advance(T)``: run up to T; answer where it is and the next instant something is due, so
  a coordinator keeping shards in lockstep can skip stretches where none has anything to do;
* ``finish``: stop the world; its figures (devices' groups, notes, how it ended, peak memory);
* ``chunk(offset)``: its ``events.jsonl`` (ordered, streamed as it ran), piece by piece;
* ``interrupt``: stop where it is (Ctrl-C, SIGTERM); ``finish`` then gives what it has.

A local worker process (``worker.py``) and a Ray actor (``ray_host.py``) host it; neither
changes what it does, so a scenario's log is the same however its shards are hosted.
Must not: judge or merge (the coordinator does), or know how it is hosted.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import resource
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any, TextIO

from emulator.device.driver import ServerAuth
from emulator.hooks import HooksFile
from emulator.reports.write import event_line
from emulator.runner import RunOptions, ScenarioRun
from emulator.scenario.loader import load_scenario
from emulator.scenario.model import EnrollSpec

EVENTS = "events.jsonl"
CHUNK_BYTES = 4 << 20  # a piece of the log handed over at a time (Ray's object store)


def job_for(options: RunOptions, scenario_path: Path, index: int, count: int) -> dict[str, Any]:
    """The JSON job for shard ``index`` of ``count``: the scenario (its path, and its text for
    a host on another machine) and the run's options a shard needs."""
    auth = options.device_auth
    return {
        "scenario": str(scenario_path.resolve()),
        "scenario_text": scenario_path.read_text(encoding="utf-8"),
        "index": index,
        "count": count,
        "seed": options.seed,
        "resolution_ms": options.resolution_ms,
        "concurrency": options.concurrency,
        "transport": options.transport,
        "enroll": dataclasses.asdict(options.enroll) if options.enroll else None,
        "tls_dir": str(options.tls_dir.resolve()),
        "server_url": options.server_url,
        "hooks": options.hooks.model_dump(mode="json") if options.hooks else None,
        "device_auth": dataclasses.asdict(auth),
        "idle_ms": options.idle_ms,
        # each shard's fake WNS on its own port: the first on the one asked for
        "wns_port": options.wns_port + index if options.wns_port else 0,
        "wns_tls_dir": str(options.wns_tls_dir.resolve()) if options.wns_tls_dir else None,
        "provider_id": options.provider_id,
        "quiet": options.progress is False,
        "progress_every_s": options.progress_every_s,
    }


def job_options(job: dict[str, Any], progress: TextIO) -> RunOptions:
    enroll = job.get("enroll")
    if enroll is not None:
        cert = enroll.get("certificate")
        enroll = EnrollSpec(**{**enroll, "certificate": tuple(cert) if cert else None})
    hooks = job.get("hooks")
    wns_tls = job.get("wns_tls_dir")
    return RunOptions(
        shard=(job["index"], job["count"]),
        seed=job.get("seed"),
        resolution_ms=job.get("resolution_ms", 0),
        concurrency=job.get("concurrency", 64),
        transport=job.get("transport", "http"),
        enroll=enroll,
        tls_dir=Path(job["tls_dir"]),
        server_url=job.get("server_url"),
        hooks=HooksFile.model_validate(hooks) if hooks else None,
        device_auth=ServerAuth(**job.get("device_auth", {})),
        idle_ms=job.get("idle_ms", 50),
        wns_port=job.get("wns_port", 0),
        wns_tls_dir=Path(wns_tls) if wns_tls else None,
        provider_id=job.get("provider_id", "dmemu"),
        progress=False if job.get("quiet") else None,
        progress_stream=progress,
        progress_every_s=job.get("progress_every_s", 10.0),
    )


class ShardRuntime:
    """One shard, in this process, for whoever hosts it."""

    def __init__(self, job: dict[str, Any], directory: Path | None = None) -> None:
        self.job = job
        self.owns_dir = directory is None  # a Ray actor's own: removed by close()
        self.dir = directory or Path(tempfile.mkdtemp(prefix="dmemu-shard-"))
        self.run: ScenarioRun | None = None
        self.settings: list[str] = []  # what an external server must be configured with
        self._log: TextIO | None = None
        self._advancing: asyncio.Task[Any] | None = None
        self._stopped = False

    def _scenario_path(self) -> Path:
        """The scenario file where the coordinator has it, or (a host on another machine)
        its text written here under the same name."""
        path = Path(self.job["scenario"])
        if path.is_file():
            return path
        copy = self.dir / path.name
        copy.write_text(self.job["scenario_text"], encoding="utf-8")
        return copy

    async def start(self) -> dict[str, Any]:
        scenario = load_scenario(self._scenario_path())
        self._log = (self.dir / EVENTS).open("w", encoding="utf-8")
        log = self._log

        def write(event: dict[str, Any]) -> None:
            log.write(event_line(event))

        options = dataclasses.replace(
            job_options(self.job, sys.stderr), sink=write, announce=self.settings.extend
        )
        self.run = ScenarioRun(scenario, options)
        await self.run.start()
        if self._stopped:
            self.run.stop()
        return {"settings": self.settings, "end_ms": self.run.end}

    async def advance(self, until: int) -> dict[str, Any]:
        run = self._started()
        self._advancing = asyncio.current_task()
        try:
            due = await run.advance(until)
        finally:
            self._advancing = None
        return {"now": run.clock.now(), "next": due, "complete": run.complete}

    def figures(self) -> dict[str, int]:
        """Where the shard is (its virtual day) and its figures so far."""
        return self._started().figures() if self.run is not None else {}

    def interrupt(self) -> None:
        """Stop where it is: an advance under way ends now, and no later one runs."""
        self._stopped = True
        if self._advancing is not None:
            self._advancing.cancel()  # ScenarioRun.advance takes it as the run's end
        elif self.run is not None:
            self.run.stop()

    async def finish(self) -> dict[str, Any]:
        run = self._started()
        result = await run.finish()
        if self._log is not None:
            self._log.close()
        return {
            "notes": result.notes,
            "complete": result.complete,
            "end_ms": result.end_ms,
            "seed": result.seed,
            "peak_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "wall_s": round(result.wall_s, 3),
            "events_bytes": (self.dir / EVENTS).stat().st_size,
        }

    def chunk(self, offset: int, size: int = CHUNK_BYTES) -> bytes:
        """Up to ``size`` bytes of the shard's log from ``offset`` (b"" at its end)."""
        with (self.dir / EVENTS).open("rb") as log:
            log.seek(offset)
            return log.read(size)

    async def close(self) -> None:
        """Release the world if it is still up, and the shard's own directory."""
        if self.run is not None:
            await self.run.close()
        if self._log is not None:
            self._log.close()
        if self.owns_dir:
            shutil.rmtree(self.dir, ignore_errors=True)

    def _started(self) -> ScenarioRun:
        if self.run is None:
            raise RuntimeError("the shard was not started")
        return self.run


def dumps(reply: dict[str, Any]) -> bytes:
    return (json.dumps(reply, separators=(",", ":")) + "\n").encode()
