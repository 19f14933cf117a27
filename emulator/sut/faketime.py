"""Binding a server process's clock to dmemu's with libfaketime (Debian package ``faketime``).

Owns: finding the library, the timestamp file a child reads its time from, and the
environment that makes a dynamically linked program (Python, Node, Java, .NET, C) read it.
Must not: start processes (:mod:`emulator.sut.process` does).

Theory of operation. ``LD_PRELOAD=libfaketime.so.1`` makes the child's clock reads (wall
and monotonic) follow what the file ``FAKETIME_TIMESTAMP_FILE`` says;
``FAKETIME_NO_CACHE=1`` makes it read the file on every call, so a rewrite takes effect at
once. Two modes:

* virtual clock: the file holds the offset of the emulated instant from the host's wall
  clock (``-28847589.381``, seconds), rewritten atomically each time the clock moves. The
  child's clock reads the instant, then runs on in real time until the next move (a few
  real milliseconds within one instant); its sleeps take real time, and a timer of its own
  that a leap passed fires at its next wake-up (a request, another timer). (A frozen
  absolute time would be exact to the instant, but libfaketime then breaks Python's
  ``time.sleep`` (EINVAL) or turns every sleep into a busy loop.)
* real-time clock at ``--rate R``: the file holds ``@<instant> xR`` once, so the child's clock
  starts at the emulated instant and runs R times as fast, and its sleeps shrink R times.

The child runs with ``TZ=UTC``. Statically linked programs (Go) ignore LD_PRELOAD: for them
only ``--rate`` with an unwarped clock is left.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

from emulator.clock import host_epoch_ms

#: where Debian, Ubuntu and a source install put the library
CANDIDATES = (
    "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1",
    "/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1",
    "/usr/lib/faketime/libfaketime.so.1",
    "/usr/local/lib/faketime/libfaketime.so.1",
)
INSTALL = "apt-get install faketime (Debian, Ubuntu), or set DMEMU_LIBFAKETIME to its path"


class FaketimeMissing(Exception):
    """libfaketime is not installed: the message says how to install it."""


def find_library() -> Path:
    explicit = os.environ.get("DMEMU_LIBFAKETIME")
    for candidate in ([explicit] if explicit else []) + list(CANDIDATES):
        if Path(candidate).is_file():
            return Path(candidate)
    raise FaketimeMissing(
        f"--server-cmd binds the server's clock with libfaketime, which is not installed: {INSTALL}"
    )


def _utc(ms: int) -> str:
    return datetime.fromtimestamp(ms // 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")


class TimeFile:
    """The timestamp file one child reads its time from."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _write(self, text: str) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(text + "\n", encoding="ascii")
        os.replace(tmp, self.path)  # atomic: a reader never sees half a line

    def follow(self, now_ms: int) -> None:
        """Virtual clock: the child reads ``now_ms`` from now on (then runs in real time)."""
        self._write(f"{(now_ms - host_epoch_ms()) / 1000:+.3f}")

    def running(self, now_ms: int, rate: float) -> None:
        """Real-time clock: the child's time starts at ``now_ms`` and runs ``rate`` x."""
        self._write(f"@{_utc(now_ms)} x{rate:g}")

    def env(self, library: Path) -> dict[str, str]:
        """What the child's environment gains (LD_PRELOAD keeps any it already had)."""
        preload = os.environ.get("LD_PRELOAD", "")
        return {
            "LD_PRELOAD": f"{library}:{preload}" if preload else str(library),
            "FAKETIME_TIMESTAMP_FILE": str(self.path),
            "FAKETIME_NO_CACHE": "1",
            "TZ": "UTC",
        }
