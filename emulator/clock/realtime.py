"""The real-time clock: the shared scheduler paced by the host's monotonic clock.

Owns: mapping host time to emulated time at a rate factor, arming one asyncio timer for the
earliest emulated timer, and forward jumps (an offset added to emulated time).
Must not: let emulated time run backwards.

``now = start + offset + (host_elapsed * rate)``. ``advance(ms)`` adds to ``offset`` and fires
every timer the jump passed, in order, so a 30-day jump works even at rate 1.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable

from emulator.clock.base import Scheduler, Timer


class RealTimeClock(Scheduler):
    """Emulated time = host monotonic time x ``rate``, plus forward jumps."""

    mode = "real"

    def __init__(
        self,
        rate: float = 1.0,
        *,
        start_ms: int | None = None,
        source: Callable[[], float] = time.monotonic,
    ) -> None:
        if not rate > 0:
            raise ValueError("rate must be positive")
        super().__init__()
        self._rate = float(rate)
        self._source = source  # host seconds, monotonic; asyncio's loop uses the same
        self._origin = source()
        self._start = int(time.time() * 1000) if start_ms is None else int(start_ms)
        self._offset = 0  # ms added by jumps
        self._armed: asyncio.TimerHandle | None = None

    @property
    def rate(self) -> float:
        return self._rate

    def now(self) -> int:
        elapsed = (self._source() - self._origin) * 1000 * self._rate
        return self._start + self._offset + int(elapsed)

    def advance(self, ms: int) -> int:
        if ms < 0:
            raise ValueError("a clock never goes backwards")
        self._offset += int(ms)
        return self.poll()

    async def jump(self, ms: int) -> int:
        fired = self.advance(ms)
        await asyncio.sleep(0)
        return fired

    def poll(self) -> int:
        """Fire everything due by now and re-arm the host timer."""
        fired = self._run_due(self.now())
        self._arm()
        return fired

    def _timer_added(self, timer: Timer) -> None:
        if self._heap[0][2] is timer:  # new head: the armed host timer is too late
            self._arm()

    def _arm(self) -> None:
        if self._armed is not None:
            self._armed.cancel()
            self._armed = None
        due = self.next_due()
        if due is None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop (sync use): poll() fires timers
            return
        self._armed = loop.call_later(self._delay_s(due), self.poll)

    def _delay_s(self, due: int) -> float:
        """Host seconds until emulated ``due`` (+1 ms and ceil: when the host timer fires,
        now() has certainly reached it)."""
        return math.ceil(max(0, due - self.now()) + 1) / self._rate / 1000


class WallClock(RealTimeClock):
    """The host's wall clock, read on every call, at rate 1: what an ordinary server uses.

    Unlike :class:`RealTimeClock` it follows the wall clock when it moves (so a process run
    under libfaketime by ``dmemu --server-cmd`` lives on dmemu's emulated time), and polls
    its timers at least every ``POLL_S`` so one the wall clock leaps past fires promptly.
    Never runs backwards (a wall clock set back holds at its highest reading)."""

    mode = "wall"
    POLL_S = 0.2

    def __init__(self) -> None:
        super().__init__(1.0)
        self._last = 0

    def now(self) -> int:
        self._last = max(self._last, int(time.time() * 1000) + self._offset)
        return self._last

    def _delay_s(self, due: int) -> float:
        return min(self.POLL_S, super()._delay_s(due))
