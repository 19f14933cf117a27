"""The one clock seam: every read of time and every wait in dmemu goes through here.

Two implementations share one scheduler (a heap of timers, FIFO among equal times):

* :class:`VirtualClock` jumps from timer to timer, but only when the world is quiet, so a
  month of channel life passes in seconds and runs are reproducible.
* :class:`RealTimeClock` paces the same scheduler against the host's monotonic clock at a
  rate factor (1x, 3600x ...), and can still be jumped forward.

Times are integer milliseconds since the Unix epoch; ISO-8601 only at the edges (:func:`iso`).
"""

from emulator.clock.base import (
    DAY,
    DEFAULT_EPOCH_MS,
    HOUR,
    MINUTE,
    SECOND,
    Clock,
    Scheduler,
    Timer,
    http_date,
    iso,
    parse_iso,
)
from emulator.clock.realtime import RealTimeClock, WallClock
from emulator.clock.virtual import VirtualClock
from emulator.clock.wall import IdleWindow, host_epoch_ms, wall_seconds, wall_sleep

__all__ = [
    "DAY",
    "DEFAULT_EPOCH_MS",
    "HOUR",
    "MINUTE",
    "SECOND",
    "Clock",
    "IdleWindow",
    "RealTimeClock",
    "Scheduler",
    "Timer",
    "VirtualClock",
    "WallClock",
    "host_epoch_ms",
    "http_date",
    "iso",
    "parse_iso",
    "wall_seconds",
    "wall_sleep",
]
