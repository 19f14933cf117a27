"""The server under test as a process dmemu starts, watches and always stops.

Owns: filling the command's placeholders (``{port}``, ``{wns_url}``, ``{ca_file}``), starting
it in its own process group with its output in a log file, waiting until it answers (any
HTTP status will do), and stopping it: SIGTERM to the group, SIGKILL after a grace period,
and a last SIGKILL at interpreter exit should anything skip the orderly stop.
Must not: decide what time the server sees (:mod:`emulator.sut.faketime` does).
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import os
import shlex
import signal
import socket
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from emulator.clock import wall_seconds

LAST_LINES = 15  # of the server's log, in an error
GRACE_S = 5.0  # between SIGTERM and SIGKILL
POLL_S = 0.1


class ServerFailed(Exception):
    """The server command could not be run, exited, or never answered: said in one message
    with the end of its log (exit code 2)."""


@dataclass(frozen=True, slots=True)
class Placeholders:
    port: int
    wns_url: str
    ca_file: str = ""

    def fill(self, template: str) -> str:
        try:
            return template.format(port=self.port, wns_url=self.wns_url, ca_file=self.ca_file)
        except (KeyError, IndexError, ValueError) as exc:
            raise ServerFailed(
                f"{template!r}: unknown placeholder {exc} (use {{port}}, {{wns_url}}, {{ca_file}})"
            ) from None


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def tail(path: Path, lines: int = LAST_LINES) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "(no log)"
    kept = text.splitlines()[-lines:]
    return "\n".join(f"  | {line}" for line in kept) if kept else "  | (the log is empty)"


class ServerProcess:
    def __init__(self, proc: asyncio.subprocess.Process, command: str, log: Path) -> None:
        self.proc = proc
        self.command = command
        self.log = log
        self.killed = False  # it ignored SIGTERM and was killed
        self._atexit = self._kill_now
        atexit.register(self._atexit)

    def _failure(self, what: str) -> ServerFailed:
        return ServerFailed(f"the server command {what}: {self.command}\n{tail(self.log)}")

    async def wait_ready(self, url: str, http: aiohttp.ClientSession, timeout_s: float) -> None:
        """Poll ``url`` until it answers with any HTTP status; fail if the process exits or
        ``timeout_s`` real seconds pass."""
        deadline = wall_seconds() + timeout_s
        while True:
            if self.proc.returncode is not None:
                raise self._failure(f"exited with code {self.proc.returncode} before it was ready")
            with contextlib.suppress(aiohttp.ClientError, TimeoutError, OSError):
                async with http.get(url, timeout=aiohttp.ClientTimeout(total=2)) as resp:
                    await resp.read()
                    return
            if wall_seconds() > deadline:
                raise self._failure(f"did not answer {url} within {timeout_s:g} s")
            with contextlib.suppress(TimeoutError):  # a pause, cut short if it exits
                await asyncio.wait_for(self.proc.wait(), POLL_S)

    async def stop(self, grace_s: float = GRACE_S) -> None:
        """SIGTERM to the server's process group, SIGKILL if it lingers past ``grace_s``."""
        if self.proc.returncode is None:
            self._signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), grace_s)
            except TimeoutError:
                self.killed = True
                self._signal(signal.SIGKILL)
                await self.proc.wait()
        self._signal(signal.SIGKILL)  # anything it left behind in its group
        atexit.unregister(self._atexit)  # only now: a stop cut short still kills at exit

    def _signal(self, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, sig)

    def _kill_now(self) -> None:
        self._signal(signal.SIGKILL)


async def start_server(command: str, env: dict[str, str], log: Path) -> ServerProcess:
    """Start ``command`` (placeholders already filled) in a process group of its own, its
    stdout and stderr appended to ``log``."""
    try:
        argv = shlex.split(command)
    except ValueError as exc:  # an unbalanced quote
        raise ServerFailed(f"--server-cmd {command!r}: {exc}") from None
    if not argv:
        raise ServerFailed("--server-cmd is empty")
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=out,
                stderr=out,
                env={**os.environ, **env},
                start_new_session=True,
            )
        except OSError as exc:
            raise ServerFailed(f"cannot run {argv[0]!r}: {exc.strerror}") from None
    return ServerProcess(proc, command, log)
