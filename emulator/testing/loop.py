"""An in-process server whose own event loop runs on dmemu's virtual clock.

Owns: :class:`ClockLoop`, an asyncio event loop whose ``time()`` is a dmemu clock's, woken
each time that clock moves and telling the clock about its own timers; and
:func:`serve_on_clock`, which serves an aiohttp application on such a loop in a thread of
its own for the length of a run.
Must not: change dmemu's own loop (the world keeps real-time asyncio for its plumbing).

Theory of operation. A sleep of the server's of 600 s (a Retry-After, a back-off) schedules
a handle at the loop's time plus 600, which is virtual. The loop registers its timers
with the virtual clock (:meth:`~emulator.clock.VirtualClock.add_timer_source`), so the clock
stops at that instant instead of leaping past it; when it gets there it wakes the loop
(``call_soon_threadsafe``), whose next turn sees the handle due and runs it; the clock does
not move on until it has (a quiet check). The server's waits are therefore exact in emulated
time, like the built-in server's. Its clock *reads*
come from freezegun (``dmemu_time``), the same instant.
"""

from __future__ import annotations

import asyncio
import contextvars
import heapq
import inspect
import math
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from aiohttp import web

from emulator.clock import VirtualClock, wall_seconds
from emulator.serving import Listening, listen

SETTLE_S = 0.01  # host seconds without a step of the server before time may move on


class ClockLoop(asyncio.SelectorEventLoop):
    """An event loop on a virtual clock's time (seconds), for a server under test."""

    def __init__(self, clock: VirtualClock) -> None:
        super().__init__()
        # the clock counts whole ms; asyncio runs handles due before time() + resolution, and
        # at epoch seconds its default (1 ns) vanishes in float rounding: due-now never ran
        self._clock_resolution = 0.001
        self._virtual = clock
        self._timers: list[tuple[float, int, asyncio.TimerHandle]] = []
        self._fired: set[int] = set()  # timers (by seq) whose callback has run
        self._last_active = 0.0  # host seconds of the last step the server took
        self._released: tuple[float, float] | None = None  # (clock s, host s) once released
        self._seq = 0
        clock.watch(self._moved)
        clock.add_timer_source(self.next_due_ms)
        clock.add_quiet_check(self.quiet)

    def time(self) -> float:
        if self._released is not None:  # after the run: real time on from where it stopped
            at, since = self._released
            return at + (wall_seconds() - since)
        return self._virtual.now() / 1000

    def release(self) -> None:
        """The run is over: from now on time runs in real time (from the clock's last
        instant), so the server's shutdown waits end (called from any thread)."""
        self._released = (self._virtual.now() / 1000, wall_seconds())
        if not self.is_closed():
            self.call_soon_threadsafe(_nothing)

    def call_at(  # type: ignore[override]  # the same signature, without typeshed's TypeVarTuple
        self,
        when: float,
        callback: Callable[..., object],
        *args: Any,
        context: contextvars.Context | None = None,
    ) -> asyncio.TimerHandle:
        if self._released is not None or not _from_server_code():  # plumbing: no stops
            return super().call_at(when, callback, *args, context=context)
        self._seq += 1
        seq = self._seq
        handle = super().call_at(when, self._fire, seq, callback, *args, context=context)
        heapq.heappush(self._timers, (when, seq, handle))
        while self._timers and (
            self._timers[0][2].cancelled() or self._timers[0][1] in self._fired
        ):
            self._fired.discard(heapq.heappop(self._timers)[1])  # pruned on the loop's thread
        return handle

    def call_soon(  # type: ignore[override]  # the same signature, as call_at's
        self,
        callback: Callable[..., object],
        *args: Any,
        context: contextvars.Context | None = None,
    ) -> asyncio.Handle:
        self._last_active = wall_seconds()  # the server is doing something (a task's step)
        return super().call_soon(callback, *args, context=context)

    def _fire(self, seq: int, callback: Callable[..., object], *args: Any) -> None:
        self._fired.add(seq)
        self._last_active = wall_seconds()
        callback(*args)

    def _pending(self) -> list[float]:
        return [
            when
            for when, seq, handle in list(self._timers)
            if not handle.cancelled() and seq not in self._fired
        ]

    def next_due_ms(self) -> int | None:
        """The earliest live timer of this loop, in clock ms (read from the clock's thread)."""
        pending = self._pending()
        return math.ceil(min(pending) * 1000) if pending else None

    def quiet(self) -> bool:
        """A quiet check for the clock: no timer of this loop is due and unrun, and nothing
        was scheduled on it for ``SETTLE_S`` (a task the server started after answering has
        taken its first step, and a push it sends reaches WNS, whose idle window then holds
        the clock)."""
        now = self.time()
        if any(when <= now for when in self._pending()):
            return False
        return wall_seconds() - self._last_active >= SETTLE_S

    def _moved(self, now_ms: int) -> None:
        if not self.is_closed():
            self.call_soon_threadsafe(_nothing)  # a turn: handles now due get run

    def close(self) -> None:
        self._timers.clear()  # the clock stops at none of them any more
        super().close()


def _nothing() -> None:
    pass


#: modules whose timers are plumbing, not the server's own waits (they still run on the
#: loop's virtual time, but the clock does not stop for them)
_PLUMBING = ("aiohttp", "emulator", "yarl", "multidict", "uvicorn", "a2wsgi", "h11")


def _from_server_code() -> bool:
    """Whether the timer being scheduled comes from the server's code: the first caller
    outside asyncio is not aiohttp (or dmemu) plumbing."""
    frame = sys._getframe(2)
    for _ in range(12):
        if frame is None:
            return True
        module = str(frame.f_globals.get("__name__", ""))
        if module != "asyncio" and not module.startswith("asyncio."):
            return not module.startswith(_PLUMBING)
        frame = frame.f_back  # type: ignore[assignment]
    return True


@contextmanager
def serve_on_clock(app: object, clock: VirtualClock) -> Iterator[str]:
    """Serve ``app`` on a loopback port from a :class:`ClockLoop` in a thread of its own,
    until the block ends; yields its base URL. ``app`` is an aiohttp application, or an
    ASGI or WSGI application (served by uvicorn, WSGI through a2wsgi: ``dmemu[asgi]``)."""
    loop = ClockLoop(clock)
    thread = threading.Thread(target=loop.run_forever, name="dmemu-server-on-clock", daemon=True)
    thread.start()
    try:
        if isinstance(app, web.Application):
            with _aiohttp(app, loop) as url:
                yield url
        else:
            with _uvicorn(app, loop) as url:
                yield url
    finally:
        loop.release()
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=30)
        loop.close()


@contextmanager
def _aiohttp(app: web.Application, loop: ClockLoop) -> Iterator[str]:
    served: Listening = asyncio.run_coroutine_threadsafe(listen(app), loop).result(timeout=30)
    try:
        yield served.url
    finally:
        loop.release()  # its shutdown waits run in real time
        asyncio.run_coroutine_threadsafe(served.runner.cleanup(), loop).result(timeout=30)


@contextmanager
def _uvicorn(app: object, loop: ClockLoop) -> Iterator[str]:
    try:
        import uvicorn
        from a2wsgi import WSGIMiddleware
    except ImportError:
        raise RuntimeError(
            "serving an ASGI or WSGI app needs uvicorn and a2wsgi: pip install 'dmemu[asgi]'"
        ) from None
    asgi: Any = app if _is_asgi(app) else WSGIMiddleware(app)  # type: ignore[arg-type]
    config = uvicorn.Config(asgi, host="127.0.0.1", port=0, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    serving = asyncio.run_coroutine_threadsafe(server.serve(), loop)
    started = threading.Event()
    while not server.started:
        if serving.done():
            serving.result()  # raises what stopped it
            raise RuntimeError("uvicorn stopped before it started")
        started.wait(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        loop.release()  # its tick and shutdown sleeps run in real time
        server.should_exit = True
        serving.result(timeout=30)


def _is_asgi(app: object) -> bool:
    call = getattr(app, "__call__", None)  # noqa: B004 - an instance's __call__, not callable()
    return inspect.iscoroutinefunction(app) or inspect.iscoroutinefunction(call)
