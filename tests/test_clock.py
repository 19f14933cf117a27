"""The one clock seam: ordering, cancellation, jumps, rate, and skipping only when quiet."""

from __future__ import annotations

import asyncio

import pytest

from emulator.clock import DAY, DEFAULT_EPOCH_MS, HOUR, RealTimeClock, VirtualClock, iso, parse_iso


def test_timers_fire_in_time_order_and_fifo_among_equal_times() -> None:
    """Determinism principle: FIFO tie-break among timers due at the same millisecond."""
    clock = VirtualClock()
    out: list[str] = []
    clock.call_later(10, out.append, "b1")
    clock.call_later(5, out.append, "a")
    clock.call_later(10, out.append, "b2")
    clock.call_at(clock.now() + 10, out.append, "b3")
    assert clock.advance(10) == 4
    assert out == ["a", "b1", "b2", "b3"]
    assert clock.now() == DEFAULT_EPOCH_MS + 10


def test_cancelled_timer_never_fires_and_is_not_pending() -> None:
    clock = VirtualClock()
    out: list[int] = []
    keep = clock.call_later(5, out.append, 1)
    drop = clock.call_later(5, out.append, 2)
    clock.cancel(drop)
    assert clock.pending() == 1
    clock.advance(5)
    assert out == [1]
    assert not keep.cancelled


def test_advance_sets_now_to_each_timer_while_it_runs() -> None:
    """A callback sees the time it was scheduled for, then the jump completes."""
    clock = VirtualClock()
    seen: list[int] = []
    clock.call_later(HOUR, lambda: seen.append(clock.now()))
    clock.advance(DAY)
    assert seen == [DEFAULT_EPOCH_MS + HOUR]
    assert clock.now() == DEFAULT_EPOCH_MS + DAY


def test_timers_scheduled_by_timers_within_the_jump_fire_too() -> None:
    clock = VirtualClock()
    out: list[int] = []

    def tick(n: int) -> None:
        out.append(n)
        if n < 5:
            clock.call_later(HOUR, tick, n + 1)

    clock.call_later(HOUR, tick, 1)
    clock.advance(3 * HOUR)
    assert out == [1, 2, 3]
    clock.run(until=None)
    assert out == [1, 2, 3, 4, 5]


def test_run_until_stops_before_later_timers_and_the_past_is_clamped() -> None:
    clock = VirtualClock()
    out: list[str] = []
    clock.call_later(2 * DAY, out.append, "late")
    clock.run(until=clock.now() + DAY)
    assert out == []
    assert clock.next_due() == DEFAULT_EPOCH_MS + 2 * DAY
    past = clock.call_at(0, out.append, "past")  # never in the past: fires at now
    assert past.when == clock.now()
    with pytest.raises(ValueError, match="backwards"):
        clock.advance(-1)


def test_a_failing_callback_does_not_stop_the_world() -> None:
    clock = VirtualClock()
    out: list[str] = []
    clock.call_later(1, lambda: 1 / 0)
    clock.call_later(2, out.append, "after")
    clock.advance(5)
    assert out == ["after"]


def test_iso_round_trip_at_the_edges() -> None:
    """Times are integer ms internally; ISO-8601 only at the edges."""
    assert iso(DEFAULT_EPOCH_MS) == "2026-01-01T00:00:00.000Z"
    assert parse_iso("2026-01-01T00:00:00.250Z") == DEFAULT_EPOCH_MS + 250
    assert parse_iso("2026-01-01T01:00:00+01:00") == DEFAULT_EPOCH_MS


def test_real_clock_paces_emulated_time_by_its_rate() -> None:
    """Real-time mode paces the scheduler at a rate factor (3600x: one hour per second)."""
    host = [100.0]
    clock = RealTimeClock(3600, start_ms=DEFAULT_EPOCH_MS, source=lambda: host[0])
    fired: list[int] = []
    clock.call_later(HOUR, lambda: fired.append(clock.now()))
    host[0] += 0.5
    assert clock.now() == DEFAULT_EPOCH_MS + HOUR // 2
    assert clock.poll() == 0
    host[0] += 0.5
    assert clock.poll() == 1
    assert fired == [DEFAULT_EPOCH_MS + HOUR]


def test_real_clock_jumps_forward_and_fires_what_it_passed() -> None:
    host = [0.0]
    clock = RealTimeClock(1, start_ms=DEFAULT_EPOCH_MS, source=lambda: host[0])
    out: list[str] = []
    clock.call_later(30 * DAY, out.append, "expired")
    assert clock.advance(31 * DAY) == 1
    assert out == ["expired"]
    assert clock.now() == DEFAULT_EPOCH_MS + 31 * DAY
    with pytest.raises(ValueError, match="rate must be positive"):
        RealTimeClock(0)


async def test_real_clock_fires_timers_from_the_event_loop() -> None:
    clock = RealTimeClock(1000)  # one emulated second per real millisecond
    done = asyncio.Event()
    clock.call_later(20_000, done.set)  # 20 emulated s = ~20 real ms
    await asyncio.wait_for(done.wait(), timeout=5)


@pytest.mark.parametrize("turns", [0, 1, 4])
async def test_virtual_clock_skips_time_while_tasks_sleep_on_it(turns: int) -> None:
    """Virtual time is the core design: a month of sleeping passes without waiting. Each
    sleeper wakes at its own instant and does its work there, however few event-loop turns
    the clock gives each instant: the timer that wakes it holds the clock until it runs."""
    clock = VirtualClock(settle_rounds=turns)
    woke: list[int] = []

    async def device(n: int) -> None:
        await clock.sleep(n * DAY)
        await asyncio.sleep(0)  # work after waking, spread over loop turns
        await asyncio.sleep(0)
        woke.append(clock.now())

    for n in (3, 1, 2):
        clock.spawn(device(n))
    await asyncio.wait_for(clock.run_async(until=clock.now() + 30 * DAY), timeout=5)
    assert woke == [DEFAULT_EPOCH_MS + n * DAY for n in (1, 2, 3)]
    assert clock.now() == DEFAULT_EPOCH_MS + 30 * DAY


async def test_virtual_clock_does_not_jump_while_work_is_in_flight() -> None:
    """Quiet rule: no jump while an exchange holds the clock busy."""
    clock = VirtualClock()
    release = asyncio.Event()
    fired: list[int] = []
    clock.call_later(HOUR, lambda: fired.append(clock.now()))

    async def exchange() -> None:
        with clock.busy():
            await release.wait()  # e.g. waiting for an HTTP response

    task = clock.spawn(exchange())
    driver = asyncio.ensure_future(clock.run_async(until=clock.now() + DAY))
    for _ in range(20):
        await asyncio.sleep(0)
    assert fired == []  # held back: the world is not quiet
    release.set()
    await asyncio.wait_for(driver, timeout=5)
    await task
    assert fired == [DEFAULT_EPOCH_MS + HOUR]


async def test_a_quiet_check_holds_time_until_it_passes() -> None:
    """The hook later issues use for an external server's idle window."""
    clock = VirtualClock()
    gate = {"open": False}
    clock.add_quiet_check(lambda: gate["open"])
    clock.call_later(HOUR, lambda: None)
    driver = asyncio.ensure_future(clock.run_async(until=clock.now() + DAY))
    for _ in range(10):
        await asyncio.sleep(0)
    assert clock.now() == DEFAULT_EPOCH_MS
    gate["open"] = True
    await asyncio.wait_for(driver, timeout=5)
    assert clock.now() == DEFAULT_EPOCH_MS + DAY


async def test_jump_from_inside_a_busy_handler_parks_its_hold() -> None:
    """The control API advances the clock from inside a request that holds it busy."""
    clock = VirtualClock()
    out: list[str] = []
    clock.call_later(DAY, out.append, "day")
    with clock.busy():
        fired = await asyncio.wait_for(clock.jump(2 * DAY), timeout=5)
    assert (fired, out) == (1, ["day"])
    assert clock.busy_units == 0


def test_the_wall_clock_follows_the_host_clock_when_it_leaps() -> None:
    """dmemu mdm's clock reads the host's wall clock on every call, so a clock moved under
    it (libfaketime under --server-cmd; freezegun here) carries it, timers included, and it
    never runs backwards."""
    from datetime import datetime

    from freezegun import freeze_time

    from emulator.clock import WallClock

    fired: list[int] = []
    with freeze_time("2026-01-01 00:00:00") as frozen:
        clock = WallClock()
        start = clock.now()
        clock.call_at(start + HOUR, fired.append, 1)
        frozen.move_to(datetime(2026, 1, 16))  # a leap of 15 days
        assert clock.now() == start + 15 * DAY
        assert clock.poll() == 1
        assert fired == [1]
        frozen.move_to(datetime(2026, 1, 2))  # set back: holds
        assert clock.now() == start + 15 * DAY


async def test_a_resolution_fires_a_windows_timers_together_at_its_end() -> None:
    """--resolution (issue 19): timers due in the same window fire together at the window's
    end (never before they are due), and the work they start overlaps; a later window's
    timer waits for its own."""
    clock = VirtualClock(0, resolution_ms=60_000)
    seen: list[tuple[str, int]] = []
    in_flight = 0
    most = 0

    async def exchange(name: str) -> None:
        nonlocal in_flight, most
        in_flight += 1
        most = max(most, in_flight)
        seen.append((name, clock.now()))
        for _ in range(3):  # an exchange takes a few loop turns
            await asyncio.sleep(0)
        in_flight -= 1

    for name, at in (("a", 10_000), ("b", 30_000), ("c", 59_999), ("d", 60_001)):
        clock.call_at(at, lambda n=name: clock.spawn(exchange(n)))
    await clock.run_async(200_000)
    assert seen == [("a", 60_000), ("b", 60_000), ("c", 60_000), ("d", 120_000)]
    assert most == 3
    assert clock.now() == 200_000
