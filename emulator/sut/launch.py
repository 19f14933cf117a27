"""``--server-cmd``: start the server under test on dmemu's clock for one run.

Owns: the launch recipe (command, OMA-DM URL, readiness URL and timeout, log file), binding
the child's clock (virtual: the timestamp file follows every move of the clock; real time:
``@<instant> x<rate>`` once), and tying the process's stop to the run's exit stack.
Must not: judge or drive devices (the runner does).
"""

from __future__ import annotations

import tempfile
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from emulator.clock import Clock, VirtualClock
from emulator.sut.faketime import TimeFile, find_library
from emulator.sut.process import (
    Placeholders,
    ServerFailed,
    ServerProcess,
    free_port,
    start_server,
)


@dataclass(frozen=True, slots=True)
class ServerCommand:
    command: str  # with {port}, {wns_url}, {ca_file}
    ready_url: str | None = None  # polled until it answers; default: the OMA-DM URL
    ready_timeout_s: float = 30.0
    log: Path | None = None  # its stdout and stderr; default: a file in a temporary folder


async def launch(
    spec: ServerCommand,
    clock: Clock,
    *,
    server_url: str,
    wns_url: str,
    ca_file: str | None,
    http: aiohttp.ClientSession,
    stack: AsyncExitStack,
) -> tuple[str, ServerProcess]:
    """Start the server on the clock, wait until it answers, and return its OMA-DM URL
    (``server_url`` with ``{port}`` filled) and the process. It is stopped when ``stack``
    closes (success, error or Ctrl-C). Raises ServerFailed or FaketimeMissing."""
    library = find_library()
    holes = Placeholders(free_port(), wns_url, ca_file or "")
    command, url = holes.fill(spec.command), holes.fill(server_url)
    ready_url = holes.fill(spec.ready_url or server_url)
    workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="dmemu-sut-")))
    log = spec.log or workdir / "server.log"
    times = TimeFile(workdir / "faketime.rc")
    if isinstance(clock, VirtualClock):
        times.follow(clock.now())
        clock.watch(times.follow)
    else:
        times.running(clock.now(), clock.rate)
    proc = await start_server(command, times.env(library), log)
    stack.push_async_callback(proc.stop)
    try:
        await proc.wait_ready(ready_url, http, spec.ready_timeout_s)
    except ServerFailed as exc:
        if spec.log is None:  # the temporary log goes with the run: keep its end in the error
            raise ServerFailed(f"{exc}\n(its log was {log}, removed with the run)") from None
        raise
    return url, proc
