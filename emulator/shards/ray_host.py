"""Shards hosted as Ray actors (``--cluster ray://HOST:PORT`` or ``--cluster ray-local``).

Owns: connecting to the Ray cluster (or starting a local one, and stopping it again), one
async actor per shard wrapping the same :class:`~emulator.shards.runtime.ShardRuntime` a
local worker process runs, and the coordinator's side of the shard protocol over Ray calls:
the shard's log comes back in pieces through Ray's object store, so the shards may be on
other machines. Ray is the optional extra ``dmemu[ray]``: this module is imported only when a
run asks for a cluster. Every node must have dmemu installed (the same version).
Must not: decide when shards advance (the coordinator does).
"""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path
from typing import Any

try:
    import ray
    from ray.exceptions import RayError
except ImportError as exc:  # the extra is not installed
    raise ImportError("--cluster needs Ray: pip install 'dmemu[ray]'") from exc

import contextlib

from emulator.logs import configure_logging
from emulator.shards.hosts import ShardDied, ShardFailed
from emulator.shards.runtime import ShardRuntime

LOCAL = "ray-local"


def valid_cluster(address: str) -> bool:
    return address == LOCAL or address.startswith("ray://")


class ShardActor:
    """One shard in a Ray worker process (an async actor: ``interrupt`` runs beside an
    ``advance`` under way, and stops it)."""

    def __init__(self, job: dict[str, Any]) -> None:
        configure_logging(job.get("log_level", "warning"))
        self.runtime = ShardRuntime(job)

    async def start(self) -> dict[str, Any]:
        return await self.runtime.start()

    async def advance(self, until: int) -> dict[str, Any]:
        return await self.runtime.advance(until)

    async def finish(self) -> dict[str, Any]:
        return await self.runtime.finish()

    async def figures(self) -> dict[str, int]:
        return self.runtime.figures()

    async def interrupt(self) -> None:
        self.runtime.interrupt()

    async def chunk(self, offset: int) -> bytes:
        return self.runtime.chunk(offset)

    async def close(self) -> None:
        await self.runtime.close()


class RayHost:
    """The coordinator's handle on one shard actor."""

    def __init__(self, index: int, actor: Any) -> None:
        self.index = index
        self.actor = actor

    async def _call(self, ref: Any) -> Any:
        try:
            return await ref
        except RayError as exc:
            first = str(exc).strip().splitlines()[:1]
            raise ShardDied(
                self.index, f"lost its Ray actor ({type(exc).__name__})", first
            ) from None

    async def start(self) -> dict[str, Any]:
        answer: dict[str, Any] = await self._call(self.actor.start.remote())
        return answer

    async def advance(self, until: int) -> dict[str, Any]:
        answer: dict[str, Any] = await self._call(self.actor.advance.remote(until))
        return answer

    async def finish(self) -> dict[str, Any]:
        answer: dict[str, Any] = await self._call(self.actor.finish.remote())
        return answer

    async def figures(self) -> dict[str, int]:
        """Where the shard is, for progress lines (a local worker says it on its stderr)."""
        answer: dict[str, int] = await self._call(self.actor.figures.remote())
        return answer

    async def events(self, into: Path) -> Path:
        path = into / f"shard-{self.index}.jsonl"
        with path.open("wb") as log:
            while piece := await self._call(self.actor.chunk.remote(log.tell())):
                log.write(piece)
        return path

    def interrupt(self) -> None:
        self.actor.interrupt.remote()

    async def kill(self) -> None:
        ray.kill(self.actor, no_restart=True)

    async def close(self) -> None:
        with contextlib.suppress(ShardDied):
            await self._call(self.actor.close.remote())
        ray.kill(self.actor, no_restart=True)


class RayCluster:
    """Ray for one run: joined (``ray://``) or started here (``ray-local``, stopped again by
    :meth:`shutdown`)."""

    def __init__(self, address: str, workers: int | None) -> None:
        self.address = address
        if not ray.is_initialized():
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # said in the error below, in our words
                    ray.init(
                        address="local" if address == LOCAL else address,
                        num_cpus=(workers or os.cpu_count() or 1) if address == LOCAL else None,
                        include_dashboard=False,
                        logging_level=logging.WARNING,
                        log_to_driver=False,  # the coordinator asks the shards how they are
                    )
            except (ConnectionError, RuntimeError, ValueError) as exc:
                raise ShardFailed(
                    f"--cluster {address}: Ray could not start or connect: {exc}"
                ) from None
            self.started = True
        else:
            self.started = False

    def cpus(self) -> int:
        resources: dict[str, float] = ray.cluster_resources()  # type: ignore[no-untyped-call]
        return max(1, int(resources.get("CPU", 1)))

    def hosts(self, jobs: list[dict[str, Any]]) -> list[RayHost]:
        actor = ray.remote(num_cpus=1, max_restarts=0)(ShardActor)
        return [RayHost(i, actor.remote(job)) for i, job in enumerate(jobs)]

    def shutdown(self) -> None:
        if self.started:
            ray.shutdown()
