"""Where shards live: the shard protocol as the coordinator sees it, and local processes.

Owns: :class:`ShardHost` (start, advance to T, finish, the log, interrupt, kill: what the
coordinator asks of a shard, however it is hosted), :class:`ShardDied` (a shard that stopped
answering, with what is known of why), and :class:`ProcessHost`, a shard as a local worker
process (``emulator.shards.worker``) in its own process group, its requests and answers as
JSON lines over its pipes and its stderr relayed line by line. Ray actors are in
``ray_host.py``.
Must not: decide when shards advance (the coordinator does) or merge their logs.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from pathlib import Path
from typing import Any, Protocol, TextIO

from emulator.shards.runtime import EVENTS

STOP_GRACE_S = 10.0  # after SIGTERM (or a finish request), before SIGKILL


class ShardFailed(Exception):
    """The run could not go on: a shard died (which one, its devices, the end of what it
    said), or its hosts could not be had (the Ray cluster is unreachable)."""


class ShardDied(Exception):
    """A shard stopped answering: ``how`` it ended, and the ``tail`` of what it said."""

    def __init__(self, index: int, how: str, tail: list[str] | None = None) -> None:
        super().__init__(how)
        self.index, self.how, self.tail = index, how, tail or []


class ShardHost(Protocol):
    index: int

    async def start(self) -> dict[str, Any]: ...

    async def advance(self, until: int) -> dict[str, Any]: ...

    async def finish(self) -> dict[str, Any]: ...

    async def events(self, into: Path) -> Path:
        """The shard's ``events.jsonl`` on this machine (fetched into ``into`` if need be)."""
        ...

    def interrupt(self) -> None:
        """Stop where it is; :meth:`finish` then gives what it has."""

    async def kill(self) -> None:
        """Stop it now, whatever it is doing; nothing of it is left running."""

    async def close(self) -> None: ...


class ProcessHost:
    """A shard as a local process, its directory ``where`` (the job and its log)."""

    def __init__(
        self, index: int, count: int, job: dict[str, Any], where: Path, err: TextIO
    ) -> None:
        self.index, self.count = index, count
        self.job, self.dir, self.err = job, where, err
        self.tail: list[str] = []  # its last lines on stderr
        self.proc: asyncio.subprocess.Process | None = None
        self._answers: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        self._abandoned = 0  # requests whose answers nobody waits for any more
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> dict[str, Any]:
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "job.json").write_text(json.dumps(self.job), encoding="utf-8")
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "emulator.shards.worker",
            str(self.dir / "job.json"),
            str(self.dir),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,  # Ctrl-C reaches the coordinator, which stops it
            limit=1 << 20,
        )
        self._tasks = [asyncio.create_task(self._read()), asyncio.create_task(self._relay())]
        return await self._call({"op": "start"})

    async def advance(self, until: int) -> dict[str, Any]:
        return await self._call({"op": "advance", "until": until})

    async def finish(self) -> dict[str, Any]:
        return await self._call({"op": "finish"})

    async def events(self, into: Path) -> Path:
        return self.dir / EVENTS

    def interrupt(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.terminate()  # the worker takes SIGTERM as "stop where you are"

    async def kill(self) -> None:
        proc = self.proc
        if proc is not None and proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), STOP_GRACE_S)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        await self._drain()

    async def close(self) -> None:
        proc = self.proc
        if proc is not None and proc.returncode is None:
            if proc.stdin is not None:
                proc.stdin.close()  # a worker whose coordinator is gone finishes by itself
            try:
                await asyncio.wait_for(proc.wait(), STOP_GRACE_S)
            except TimeoutError:
                await self.kill()
        await self._drain()

    async def _call(self, request: dict[str, Any]) -> dict[str, Any]:
        proc = self.proc
        assert proc is not None
        assert proc.stdin is not None
        while self._abandoned:  # answers to requests given up on (a cancelled advance)
            if await self._answers.get() is None:
                raise await self._died()
            self._abandoned -= 1
        try:
            proc.stdin.write((json.dumps(request) + "\n").encode())
            await proc.stdin.drain()
        except (BrokenPipeError, ConnectionResetError):
            raise await self._died() from None
        try:
            answer = await self._answers.get()
        except asyncio.CancelledError:
            self._abandoned += 1
            raise
        if answer is None:
            raise await self._died()
        if "error" in answer:
            raise ShardDied(self.index, answer["error"], self.tail)
        return answer

    async def _read(self) -> None:
        assert self.proc is not None
        assert self.proc.stdout is not None
        async for line in self.proc.stdout:
            self._answers.put_nowait(json.loads(line))
        self._answers.put_nowait(None)

    async def _relay(self) -> None:
        """Its stderr, each line said as the shard's, the last ones kept."""
        assert self.proc is not None
        assert self.proc.stderr is not None
        async for raw in self.proc.stderr:
            line = raw.decode("utf-8", "replace").rstrip()
            self.tail.append(line)
            del self.tail[:-20]
            text = line.removeprefix("dmemu: ")
            print(f"dmemu: shard {self.index + 1}/{self.count}: {text}", file=self.err, flush=True)

    async def _died(self) -> ShardDied:
        assert self.proc is not None
        code = await self.proc.wait()
        await self._drain()
        how = f"was killed by signal {-code}" if code < 0 else f"exited with {code}"
        return ShardDied(self.index, how, self.tail)

    async def _drain(self) -> None:
        """Its pipes read to their end (all it said is relayed), the readers done."""
        for task in self._tasks:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(task), STOP_GRACE_S)
