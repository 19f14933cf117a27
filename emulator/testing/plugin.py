"""dmemu's pytest plugin: a fake WNS, dmemu's clock and scenario runs inside your test suite.

Installed with dmemu (entry point ``pytest11``: ``dmemu``), so the fixtures are there in any
suite of a project that depends on dmemu:

* ``dmemu_clock``: a :class:`~emulator.clock.VirtualClock` for the test;
* ``dmemu_wns``: a fake WNS on a loopback port, on that clock (:class:`FakeWns`: its URLs,
  the demo app, channels, what was pushed, revocation, faults, ``await advance(ms)``);
* ``dmemu_time``: while active, the test process's wall clock (``datetime``, the ``time``
  module and friends) reads ``dmemu_clock`` (freezegun, with asyncio left on real time),
  so a Python server under test in the same process lives on emulated time;
* ``dmemu_run``: ``await dmemu_run(scenario, server_url=..., hooks=...)`` (or ``app=`` an
  aiohttp, ASGI or WSGI application, served for the run) runs a scenario's fleet against
  your server, the process's time bound to the run's clock for its length, and returns the
  result with each expectation's verdict.

What it covers: a server's clock *reads* follow emulated time exactly. A server given as
``app=`` also runs on an event loop on the run's clock (:mod:`emulator.testing.loop`), so its
own sleeps and timers end at their emulated instants; one reached by ``server_url`` waits
real time while emulated time leaps (see ``docs/testing-with-pytest.md``).
Must not: hold protocol logic; it wires dmemu's parts for a test.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from freezegun import freeze_time

from emulator.clock import Clock, VirtualClock
from emulator.hooks import HooksFile, load_hooks
from emulator.runner import RunOptions, RunResult, run_scenario
from emulator.scenario.expect import Verdict, judge_all
from emulator.scenario.loader import load_scenario
from emulator.testing.loop import serve_on_clock
from emulator.wns.config import DEMO_APP
from emulator.wns.models import App, Channel, RequestRecord
from emulator.wns.server import RunningWns, start_wns
from emulator.wns.service import WnsConfig

#: modules whose time reads stay real while the process's time is bound (dmemu's own)
REAL_TIME_MODULES = ["emulator.clock"]


class TimeBinding:
    """The process's wall clock (freezegun) following a dmemu clock until :meth:`stop`."""

    def __init__(self, clock: Clock) -> None:
        self._freezer = freeze_time(_when(clock.now()), ignore=REAL_TIME_MODULES, real_asyncio=True)
        self._factory: Any = self._freezer.start()  # FrozenDateTimeFactory
        if isinstance(clock, VirtualClock):
            clock.watch(self.move)

    def move(self, now_ms: int) -> None:
        if self._factory is not None:
            self._factory.move_to(_when(now_ms))

    def stop(self) -> None:
        if self._factory is not None:
            self._factory = None
            self._freezer.stop()


def _when(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


@dataclass
class FakeWns:
    """A running fake WNS and the handles a test needs."""

    running: RunningWns
    clock: VirtualClock
    app: App = DEMO_APP

    @property
    def url(self) -> str:
        return self.running.url

    @property
    def token_url(self) -> str:
        return self.running.token_url

    def channel(self, device_id: str = "dev-1", *, connected: bool = True) -> str:
        """Issue a ChannelURI for ``device_id`` (as its DMClient would), return it."""
        service = self.running.service
        channel = service.request_channel(device_id, self.app.pfn, self.clock.now())
        status = "connected" if connected else "disconnected"
        service.set_connection(device_id, status, self.clock.now())
        return channel.uri

    def find(self, channel_uri: str) -> Channel:
        found = self.running.service.registry.find_by_query(channel_uri.partition("?")[2])
        if found is None:
            raise KeyError(f"no channel {channel_uri}")
        return found

    def pushes(self, channel_uri: str | None = None) -> list[RequestRecord]:
        """The notification requests WNS served (to one ChannelURI), oldest first."""
        records = [r for r in self.running.service.records if r.kind == "notify"]
        if channel_uri is None:
            return records
        channel = self.find(channel_uri)
        return [r for r in records if r.channel_id == channel.id]

    def token_requests(self) -> list[RequestRecord]:
        return [r for r in self.running.service.records if r.kind == "token"]

    def revoke(self, channel_uri: str) -> None:
        """Revoke a channel: pushes to it get 410 (as after a PFN change)."""
        self.running.service.revoke_channel(self.find(channel_uri))

    def fault(self, status: int, *, count: int = 1, retry_after_s: int | None = None) -> None:
        """Answer the next ``count`` pushes with ``status`` (Retry-After when given)."""
        self.running.service.faults.add(status=status, count=count, retry_after_s=retry_after_s)

    async def advance(self, ms: int) -> None:
        """Let ``ms`` of emulated time pass (the world runs its timers meanwhile)."""
        await self.clock.jump(ms)


@pytest.fixture
def dmemu_clock() -> VirtualClock:
    """A virtual clock: time moves only when told to, or when the world is quiet."""
    return VirtualClock()


@pytest.fixture
async def dmemu_wns(dmemu_clock: VirtualClock) -> AsyncIterator[FakeWns]:
    """A fake WNS (the demo app) on a loopback port and on ``dmemu_clock``."""
    running = await start_wns(WnsConfig(apps=(DEMO_APP,)), dmemu_clock)
    try:
        yield FakeWns(running, dmemu_clock)
    finally:
        await running.stop()


@pytest.fixture
def dmemu_time(dmemu_clock: VirtualClock) -> Iterator[TimeBinding]:
    """The test process's wall clock (datetime, time) reads ``dmemu_clock`` while active."""
    binding = TimeBinding(dmemu_clock)
    try:
        yield binding
    finally:
        binding.stop()


@dataclass(frozen=True)
class RunOutcome:
    result: RunResult
    verdicts: list[Verdict]

    @property
    def passed(self) -> bool:
        return self.result.complete and all(v.passed for v in self.verdicts)

    def failures(self) -> list[str]:
        return [f"{v.name}: {v.detail} {v.evidence}" for v in self.verdicts if not v.passed]

    def events(self, name: str) -> list[dict[str, Any]]:
        return [e for e in self.result.events if e["event"] == name]


Runner = Callable[..., Awaitable[RunOutcome]]


@pytest.fixture
def dmemu_run(tmp_path: Path) -> Runner:
    """``await dmemu_run(scenario, server_url=..., hooks=...)``: a scenario's fleet against
    your server, the process's time bound to the run's clock; returns a RunOutcome."""

    async def run(
        scenario: str | Path,
        *,
        server_url: str | None = None,
        app: object = None,
        path: str = "/",
        hooks: HooksFile | Path | None = None,
        idle_ms: int = 5,
        **options: Any,
    ) -> RunOutcome:
        """Run ``scenario`` (a path, or YAML text) against ``server_url``, or against an
        ``app`` (aiohttp; ASGI or WSGI with ``dmemu[asgi]``) served for the run from an
        event loop on the run's clock (its OMA-DM endpoint at ``path``: its sleeps and
        timers then end at their emulated instants), with the test process's wall clock
        bound to the run's while it runs."""
        if (server_url is None) == (app is None):
            raise TypeError("dmemu_run takes server_url or app, one of them")
        file = Path(scenario) if isinstance(scenario, Path) else tmp_path / "scenario.yaml"
        if not isinstance(scenario, Path):
            file.write_text(scenario, encoding="utf-8")
        loaded = load_scenario(file)
        clock = VirtualClock(loaded.start_ms)
        binding = TimeBinding(clock)
        try:
            with contextlib.ExitStack() as serving:
                if app is not None:
                    server_url = serving.enter_context(serve_on_clock(app, clock)) + path
                run_options = RunOptions(
                    server_url=server_url,
                    hooks=load_hooks(hooks) if isinstance(hooks, Path) else hooks,
                    idle_ms=idle_ms,
                    progress=False,
                    clock=clock,
                    **options,
                )
                result = await run_scenario(loaded, run_options)
        finally:
            binding.stop()
        verdicts = judge_all(loaded.expectations, result.events, result.group_of, result.end_ms)
        return RunOutcome(result, verdicts)

    return run
