"""The virtual clock: a discrete-event scheduler that skips time when the world is quiet.

Owns: virtual ``now``, synchronous ``advance``/``run``, and the asyncio driver
(:meth:`VirtualClock.run_async`) that jumps to the next timer only once no work is in flight.
Must not: read the host clock for anything but the optional idle window of real seconds.

Theory of operation
-------------------
``advance(ms)`` and ``run(until)`` are plain loops: pop the earliest timer, set ``now`` to its
due time, call it. They suit sans-I/O cores and unit tests, where callbacks do not await.

``run_async(until)`` drives a world of asyncio tasks and HTTP exchanges. Each round it gives
the event loop a turn, waits until the busy count is zero and every quiet check passes, then
jumps to the next due time and fires everything due then. With a ``resolution_ms`` it fires
everything due in that window at once, at its end, so exchanges at nearby instants overlap
(a run against a server with real latency is bounded by windows, not by instants). A task
that waits on ``clock.sleep`` has released its hold, so a request sleeping on injected
latency does not stall time; the timer that wakes it takes the hold back as it fires.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from emulator.clock.base import DEFAULT_EPOCH_MS, Scheduler


class VirtualClock(Scheduler):
    """Time that moves only when told to, or when the world is quiet (``run_async``)."""

    mode = "virtual"

    def __init__(
        self, start_ms: int = DEFAULT_EPOCH_MS, *, settle_rounds: int = 1, resolution_ms: int = 0
    ) -> None:
        super().__init__()
        self._now = int(start_ms)
        #: run_async fires timers due in the same window of this length together, at the
        #: window's end, and waits once for all they started (0: every instant exactly)
        self.resolution_ms = resolution_ms
        self._watchers: list[Callable[[int], None]] = []
        self._sources: list[Callable[[], int | None]] = []  # timers kept elsewhere
        # Event-loop turns at each instant before time may move on. Correctness does not need
        # them (spawned tasks and woken sleepers hold the clock busy from the instant they
        # start); one turn keeps other tasks, such as the control API, served during a run.
        self.settle_rounds = settle_rounds

    def now(self) -> int:
        return self._now

    def watch(self, callback: Callable[[int], None]) -> None:
        """Call ``callback(now)`` each time now moves forward, before the timers due then
        fire (a server under test bound through libfaketime reads its time from it)."""
        self._watchers.append(callback)

    def _moved(self, now: int) -> None:
        self._now = now
        for callback in self._watchers:
            callback(now)

    def _on_fire(self, when: int) -> None:
        if when > self._now:
            self._moved(when)

    def advance(self, ms: int) -> int:
        """Move forward ``ms`` at once, firing due timers in order. Returns how many fired."""
        if ms < 0:
            raise ValueError("a clock never goes backwards")
        return self.run(self._now + ms)

    def run(self, until: int | None = None) -> int:
        """Fire timers in order until none is due at or before ``until``; then now = until.

        With ``until=None`` fire until the heap is empty (beware self-rescheduling timers).
        """
        fired = 0
        while (due := self._due_by(until)) is not None:
            fired += self._run_due(due)
        self._reach(until)
        return fired

    def _due_by(self, until: int | None) -> int | None:
        """The next due time if it is at or before ``until`` (any time when None)."""
        due = self.next_due()
        return None if due is None or (until is not None and due > until) else due

    def _reach(self, until: int | None) -> None:
        if until is not None and until > self._now:
            self._moved(until)

    async def wait_quiet(self) -> None:
        """Return once no work is in flight and every quiet check passes."""
        while True:
            for _ in range(self.settle_rounds):
                await asyncio.sleep(0)
            if self.is_quiet():
                return
            if self.busy_units > 0:
                await self._wait_released()
            else:  # a quiet check (e.g. an idle window) is pending: poll briefly
                await asyncio.sleep(0.001)

    async def run_async(self, until: int | None = None) -> int:
        """Drive an asyncio world: jump timer to timer whenever quiet, up to ``until``.

        Call it from a task that holds nothing (or inside ``parked()``), or it waits forever.
        """
        fired = 0
        await self.wait_quiet()
        while (due := self._next_stop(until)) is not None:
            if self.resolution_ms > 0:
                fired += self._run_window(due, until)
            else:
                if due > self._now:
                    self._moved(due)
                fired += self._run_due(due)
            await self.wait_quiet()
        self._reach(until)
        await self.wait_quiet()
        return fired

    def _run_window(self, due: int, until: int | None) -> int:
        """Fire every timer due by the end of the window (of ``resolution_ms``, aligned to
        the epoch) that holds ``due``, all at that end: what they start runs concurrently,
        every event carries the window's instant, and nothing fires before it is due (a
        timer is up to one window late)."""
        width = self.resolution_ms
        end = max(self._now, -(-due // width) * width)
        if until is not None:
            end = min(end, until)
        if end > self._now:
            self._moved(end)
        return self._run_due(end)

    def add_timer_source(self, next_due: Callable[[], int | None]) -> None:
        """Timers kept elsewhere on this clock (an in-process server's event loop, see
        :mod:`emulator.testing.loop`): ``run_async`` stops at each of them too, so a wait of
        that server ends at its own instant, not at whatever instant comes next here."""
        self._sources.append(next_due)

    def _next_stop(self, until: int | None) -> int | None:
        """The next instant to move to: this clock's next timer or a source's, by ``until``."""
        due = self.next_due()
        for source in self._sources:
            other = source()
            if other is not None and other > self._now and (due is None or other < due):
                due = other
        return None if due is None or (until is not None and due > until) else due

    async def jump(self, ms: int) -> int:
        if ms < 0:
            raise ValueError("a clock never goes backwards")
        with self.parked():
            return await self.run_async(self._now + ms)
