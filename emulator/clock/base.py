"""Clock protocol and the timer scheduler both clocks share.

Owns: the :class:`Clock` protocol every component depends on, :class:`Timer`, the heap
scheduler with FIFO tie-break, the accounting of "busy" work that keeps a virtual clock from
jumping while an exchange is in flight, and clock-aware ``sleep``/``spawn`` for asyncio code.
Must not: know about HTTP, devices or WNS.

Theory of operation
-------------------
Timers live in a heap of ``(when_ms, seq, Timer)``; ``seq`` is a global counter, so timers due
at the same millisecond fire in the order they were scheduled (determinism principle).
Cancelling marks the timer and leaves it in the heap (lazy deletion).

"Busy" is a counter of work in flight (an HTTP exchange being served, a device task running).
A task started with :meth:`Scheduler.spawn` or a block under :meth:`Scheduler.busy` holds it.
A task that waits on the clock (:meth:`Scheduler.sleep`) is *blocked on time*, which is
exactly when time may be skipped, so ``sleep`` and :meth:`Scheduler.parked` release what the
current task holds while they wait (trio's autojump idea). A context variable tracks how much
the current task holds, so this is correct across nested regions and many concurrent tasks.
"""

from __future__ import annotations

import abc
import asyncio
import contextvars
import heapq
import itertools
from collections.abc import Callable, Coroutine, Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any, Protocol, TypeVar

import structlog

SECOND = 1_000
MINUTE = 60 * SECOND
HOUR = 60 * MINUTE
DAY = 24 * HOUR

#: Virtual runs start here unless told otherwise: 2026-01-01T00:00:00Z. A fixed epoch keeps
#: event logs identical between runs of the same scenario and seed.
DEFAULT_EPOCH_MS = 1_767_225_600_000

T = TypeVar("T")

_log = structlog.get_logger("dmemu.clock")

#: How many busy units the current task holds (see the module docstring).
_HELD: contextvars.ContextVar[int] = contextvars.ContextVar("dmemu_clock_held", default=0)


def iso(ms: int) -> str:
    """Render epoch milliseconds as ISO-8601 UTC with millisecond precision."""
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.") + (
        f"{ms % 1000:03d}Z"
    )


_http_date_memo: list[tuple[int, str]] = [(-1, "")]


def http_date(ms: int) -> str:
    """Render epoch milliseconds as an HTTP Date header value (RFC 9110 IMF-fixdate).

    Memoized per second: a busy server answers many requests within one.
    """
    second = ms // 1000
    memo = _http_date_memo[0]
    if memo[0] == second:
        return memo[1]
    text = format_datetime(datetime.fromtimestamp(second, tz=UTC), usegmt=True)
    _http_date_memo[0] = (second, text)
    return text


def parse_iso(text: str) -> int:
    """Parse an ISO-8601 timestamp (``Z`` or an offset; naive means UTC) to epoch ms."""
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return int(value.timestamp() * 1000)


class Timer:
    """One scheduled callback. Cancel it with :meth:`cancel` (or ``clock.cancel``)."""

    __slots__ = ("args", "callback", "cancelled", "seq", "when")

    def __init__(self, when: int, seq: int, callback: Callable[..., object], args: tuple[Any, ...]):
        self.when = when  # due time, epoch ms
        self.seq = seq  # global scheduling order: FIFO tie-break among equal `when`
        self.callback = callback  # called as callback(*args) on the clock's thread
        self.args = args
        self.cancelled = False  # lazily removed from the heap when it reaches the top

    def cancel(self) -> None:
        self.cancelled = True

    def __repr__(self) -> str:
        state = " cancelled" if self.cancelled else ""
        return f"<Timer {iso(self.when)} #{self.seq} {self.callback!r}{state}>"


class Clock(Protocol):
    """What every component may ask of time. Implemented by the two clocks below."""

    @property
    def mode(self) -> str:
        """``"virtual"`` or ``"real"``."""

    @property
    def rate(self) -> float:
        """Virtual milliseconds per real millisecond (real clock); 0 for a virtual clock."""

    def now(self) -> int:
        """Current time, epoch milliseconds."""

    def call_at(self, when: int, callback: Callable[..., object], *args: Any) -> Timer: ...

    def call_later(self, delay: int, callback: Callable[..., object], *args: Any) -> Timer: ...

    def cancel(self, timer: Timer) -> None: ...

    def advance(self, ms: int) -> int:
        """Jump forward ``ms`` at once, firing due timers in order; returns how many fired."""

    async def jump(self, ms: int) -> int:
        """Jump forward ``ms`` from inside a running world, letting it react between timers."""

    async def sleep(self, ms: int, *, peer_units: int = 0) -> None:
        """Wait ``ms`` on this clock (``peer_units``: see :meth:`Scheduler.parked`)."""

    def spawn(self, coro: Coroutine[Any, Any, T], *, name: str | None = None) -> asyncio.Task[T]:
        """Start a task whose running time counts as busy (time does not skip under it)."""

    def busy(self) -> AbstractContextManager[None]:
        """Context manager: work in flight; a virtual clock does not jump while it is held."""

    def parked(self, peer_units: int = 0) -> AbstractContextManager[object]:
        """Context manager: the current task releases what it holds while it waits on time."""

    def holding(self) -> bool:
        """Whether the current task holds the clock busy (an in-world task)."""


class Scheduler(abc.ABC):
    """The heap scheduler and busy accounting shared by both clocks."""

    mode = "abstract"

    def __init__(self) -> None:
        self._heap: list[tuple[int, int, Timer]] = []
        self._seq = itertools.count()
        self._busy = 0  # units of work in flight (see module docstring)
        self._quiet_waiters: list[asyncio.Future[None]] = []
        self._quiet_checks: list[Callable[[], bool]] = []
        self._tasks: set[asyncio.Task[Any]] = set()  # strong refs to spawned tasks
        self.fired = 0  # timers fired so far (a cheap progress figure)
        self._hold = _Hold(self)  # what busy() returns: one per clock, it keeps no state

    # -- time ---------------------------------------------------------------------------
    @abc.abstractmethod
    def now(self) -> int:
        """Current time in ms; each clock defines where it comes from."""

    @property
    def rate(self) -> float:
        return 0.0

    # -- timers -------------------------------------------------------------------------
    def call_at(self, when: int, callback: Callable[..., object], *args: Any) -> Timer:
        """Schedule ``callback(*args)`` at ``when`` (clamped to now: never in the past)."""
        when = max(int(when), self.now())
        timer = Timer(when, next(self._seq), callback, args)
        heapq.heappush(self._heap, (when, timer.seq, timer))
        self._timer_added(timer)
        return timer

    def call_later(self, delay: int, callback: Callable[..., object], *args: Any) -> Timer:
        return self.call_at(self.now() + max(0, int(delay)), callback, *args)

    def cancel(self, timer: Timer) -> None:
        timer.cancel()

    def next_due(self) -> int | None:
        """When the earliest live timer is due, or None when none is pending."""
        heap = self._heap
        while heap and heap[0][2].cancelled:
            heapq.heappop(heap)
        return heap[0][0] if heap else None

    def pending(self) -> int:
        """How many live timers are scheduled."""
        return sum(1 for _, _, t in self._heap if not t.cancelled)

    def _timer_added(self, timer: Timer) -> None:  # noqa: B027 - optional hook
        """Hook for clocks that must re-arm a host timer when the head changes."""

    def _on_fire(self, when: int) -> None:  # noqa: B027 - optional hook
        """Hook: a timer due at ``when`` is about to fire (the virtual clock sets now here)."""

    def _run_due(self, upto: int) -> int:
        """Fire every live timer due at or before ``upto``, in (when, seq) order."""
        fired = 0
        heap = self._heap
        while heap and heap[0][0] <= upto:
            when, _, timer = heapq.heappop(heap)
            if timer.cancelled:
                continue
            self._on_fire(when)
            fired += 1
            try:
                timer.callback(*timer.args)
            except Exception:  # a faulty callback must not stop the world
                _log.exception("clock.callback_failed", callback=repr(timer.callback), at=iso(when))
        self.fired += fired
        return fired

    # -- busy accounting ----------------------------------------------------------------
    @property
    def busy_units(self) -> int:
        return self._busy

    def add_quiet_check(self, check: Callable[[], bool]) -> None:
        """Register another condition that must hold before time may skip (e.g. an idle
        window since the last inbound request from an external server)."""
        self._quiet_checks.append(check)

    def is_quiet(self) -> bool:
        return self._busy <= 0 and all(check() for check in self._quiet_checks)

    def _take(self, units: int) -> None:
        self._busy += units

    def _release(self, units: int) -> None:
        self._busy -= units
        if self._busy <= 0 and self._quiet_waiters:
            waiters, self._quiet_waiters = self._quiet_waiters, []
            for fut in waiters:
                if not fut.done():
                    fut.set_result(None)

    def busy(self) -> _Hold:
        return self._hold

    def holding(self) -> bool:
        return _HELD.get() > 0

    @contextmanager
    def parked(self, peer_units: int = 0) -> Iterator[_Parking]:
        """Release what the current task holds while it waits on time; take it back when the
        wait ends, unless :meth:`_unpark` took it back earlier.

        ``peer_units``: a server answering an in-world client (one that holds a unit while it
        awaits the response) also releases the client's unit, since that client is waiting on
        this server, which is waiting on time. Without it, injected latency would deadlock.
        """
        parking = _Parking(_HELD.get() + peer_units)
        self._release(parking.held)
        token = _HELD.set(0)
        try:
            yield parking
        finally:
            _HELD.reset(token)
            self._unpark(parking)

    def _unpark(self, parking: _Parking) -> None:
        """Take back what a parked task released (`held` includes peer_units), once."""
        if not parking.returned:
            parking.returned = True
            self._take(parking.held)

    async def _wait_released(self) -> None:
        """Wait until the busy count drops to zero (used by the virtual clock's driver)."""
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._quiet_waiters.append(fut)
        await fut

    # -- asyncio helpers ----------------------------------------------------------------
    async def sleep(self, ms: int, *, peer_units: int = 0) -> None:
        """Wait ``ms`` on this clock, parked (see :meth:`parked`). The timer that ends the wait
        takes the hold back as it fires, so the world is busy from that instant: the woken
        task has work to do, and time must not skip before it runs, however many event-loop
        turns that takes."""
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        with self.parked(peer_units) as parking:
            timer = self.call_later(ms, self._wake, fut, parking)
            try:
                await fut
            finally:
                timer.cancel()

    def _wake(self, fut: asyncio.Future[None], parking: _Parking) -> None:
        if not fut.done():
            self._unpark(parking)
            fut.set_result(None)

    def spawn(self, coro: Coroutine[Any, Any, T], *, name: str | None = None) -> asyncio.Task[T]:
        ctx = contextvars.copy_context()
        ctx.run(_HELD.set, 1)  # the task holds its own unit, not its parent's
        self._take(1)
        task = asyncio.get_running_loop().create_task(coro, name=name, context=ctx)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        self._release(1)
        if not task.cancelled() and task.exception() is not None:
            _log.error(
                "clock.task_failed",
                task=task.get_name(),
                error=repr(task.exception()),
                at=iso(self.now()),
            )


class _Parking:
    """What a parked task released, and whether it has been taken back."""

    __slots__ = ("held", "returned")

    def __init__(self, held: int) -> None:
        self.held = held
        self.returned = False


class _Hold:
    """``with clock.busy():``. It sits on every request's hot path, so each clock has one,
    shared by every task: it keeps no per-use state (a task's own count lives in its
    context, and holds nest, so leaving one is the count minus one)."""

    __slots__ = ("_scheduler",)

    def __init__(self, scheduler: Scheduler) -> None:
        self._scheduler = scheduler

    def __enter__(self) -> None:
        self._scheduler._busy += 1
        _HELD.set(_HELD.get() + 1)

    def __exit__(self, *exc: object) -> None:
        _HELD.set(_HELD.get() - 1)
        self._scheduler._release(1)
