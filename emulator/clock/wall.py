"""Host time for the two things that legitimately need it outside a clock's own pacing.

Owns: :func:`wall_seconds` (how long a run took, for reports and benchmarks),
:func:`wall_sleep` (a coordinator's pause between progress lines of its shards) and
:class:`IdleWindow` (the external-server idle window that gates virtual time skips).
Must not: feed host time into the emulated world (which only ever sees a clock's ``now``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


def host_epoch_ms() -> float:
    """The host's wall clock (ms since the epoch): only to express emulated time as an offset
    from it, for a process bound to the clock through libfaketime."""
    return time.time() * 1000


def wall_seconds() -> float:
    """Host monotonic seconds: durations of runs, never emulated time."""
    return time.monotonic()


async def wall_sleep(seconds: float) -> None:
    """Wait ``seconds`` of host time: for pacing what people read, never the world."""
    await asyncio.sleep(seconds)


class IdleWindow:
    """A quiet check for :meth:`Scheduler.add_quiet_check`: true once ``activity()`` has not
    changed for ``window_ms`` real milliseconds (trio's autojump threshold). An external
    server may push on its own schedule a little after answering us; skipping time before it
    has done so would misplace its pushes in emulated time."""

    def __init__(self, window_ms: int, activity: Callable[[], int]) -> None:
        self.window_s = window_ms / 1000
        self.activity = activity  # a counter that grows with every inbound request
        self._seen = activity()
        self._since = time.monotonic()

    def settled(self) -> bool:
        now, seen = time.monotonic(), self.activity()
        if seen != self._seen:
            self._seen, self._since = seen, now
            return False
        return now - self._since >= self.window_s
