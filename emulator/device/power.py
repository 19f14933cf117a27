"""Power and network: when a device holds its WNS connection and when it can run a session.

Owns: battery level over the day (profiles as piecewise-linear curves), Battery Saver below a
threshold, Data Sense's monthly allotment, network up/down (daily windows, long offline spells,
a manual switch), and the one question the agent asks: what are the conditions at ``now``, and
when can they next change?
Must not: schedule timers, talk to WNS, or read the clock (``now`` is passed in).

Facts [PUSH]: "Battery Saver / Data Sense can drop the persistent WNS connection"; a push that
arrives but cannot start a session "due to power or connectivity limitations" sets Push/Status
7 [DMC]. Decisions (not sourced, kept simple and explicit):
* the WNS connection is up when the network is up and reaches the internet, Battery Saver is
  off (or the device has one of its two exceptions [WNSOV]: ``any_app``, the "Allow push
  notifications from any app while in battery saver" setting of Windows 10/11 desktop
  editions, or ``always_allowed``, the app on the user's "Always allowed" list) and Data
  Sense has not hit the allotment;
* a session can run when the network reaches the server and the battery is above the critical
  level (default 5 %), so a push that arrives on a nearly flat battery, or over a network that
  reaches WNS but not the server (``server_reachable=False``), gives Status 7. With the
  defaults (Battery Saver below 20 %, no exception) the connection is gone long before 5 %:
  the low-battery Status 7 needs a Battery Saver exception, or a threshold under 5 %;
* a network can be up without reaching the internet (``internet=False``, a captive or broken
  uplink): 1607 checks for a network, not for internet [PUSH], so it attempts and fails;
* Data Sense counts the bytes of sessions and pushes plus a steady background use, and resets
  at the start of each calendar month (UTC).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache

from emulator.clock import DAY, MINUTE

MB = 1_000_000


@dataclass(frozen=True, slots=True)
class PowerProfile:
    name: str
    curve: tuple[tuple[int, float], ...]  # (minute of day, battery %), cyclic over the day

    def level(self, ms_of_day: int) -> float:
        points = self.curve
        if len(points) == 1:
            return points[0][1]
        minute = ms_of_day / MINUTE
        prev_m, prev_v = points[-1][0] - 24 * 60, points[-1][1]
        for m, v in points:
            if minute < m:
                return prev_v + (v - prev_v) * (minute - prev_m) / (m - prev_m)
            prev_m, prev_v = m, v
        first_m, first_v = points[0][0] + 24 * 60, points[0][1]
        return prev_v + (first_v - prev_v) * (minute - prev_m) / (first_m - prev_m)

    def crossings(self, level: float) -> tuple[int, ...]:
        """Times of day (ms) where the battery crosses ``level``, sorted (cached: every
        power timer of the fleet asks)."""
        return _crossings(self.curve, level)


@cache
def _crossings(points: tuple[tuple[int, float], ...], level: float) -> tuple[int, ...]:
    out: list[int] = []
    for i, (m, v) in enumerate(points):
        n_m, n_v = points[(i + 1) % len(points)]
        if i + 1 == len(points):
            n_m += 24 * 60
        if (v < level) != (n_v < level) and n_v != v:
            at = m + (level - v) * (n_m - m) / (n_v - v)
            out.append(round(at * MINUTE) % DAY)
    return tuple(sorted(out))


POWER_PROFILES: dict[str, PowerProfile] = {
    p.name: p
    for p in (
        PowerProfile("plugged", ((0, 100.0),)),
        PowerProfile(
            "office-laptop", ((8 * 60, 100.0), (18 * 60, 35.0), (19 * 60, 35.0), (21 * 60, 100.0))
        ),
        PowerProfile(
            "heavy-use", ((7 * 60, 100.0), (19 * 60, 4.0), (20 * 60, 4.0), (23 * 60, 100.0))
        ),
        PowerProfile(
            "phone", ((7 * 60, 100.0), (22 * 60, 12.0), (23 * 60, 12.0), (24 * 60 - 1, 60.0))
        ),
    )
}

#: Daily offline windows (start minute, end minute), UTC.
NETWORK_PATTERNS: dict[str, tuple[tuple[int, int], ...]] = {
    "always": (),
    "nights-off": ((1 * 60, 6 * 60),),
    "commuter": ((8 * 60, 9 * 60), (17 * 60 + 30, 18 * 60 + 30)),
}


@dataclass(frozen=True, slots=True)
class PowerConfig:
    """Per-group settings (shared by every device of a group)."""

    profile: PowerProfile = POWER_PROFILES["plugged"]
    saver_threshold: float = 20.0  # Battery Saver turns on below this % (Windows default)
    critical: float = 5.0  # below this no session starts
    network: tuple[tuple[int, int], ...] = ()  # daily offline windows
    data_allotment: int | None = None  # Data Sense bytes per month; None: unlimited
    background_per_day: int = 0  # bytes per day of other traffic counted by Data Sense
    #: Battery Saver exceptions [WNSOV]: blocked (default), any_app, always_allowed
    saver_exception: str = "blocked"


@dataclass(frozen=True, slots=True)
class Conditions:
    network_up: bool  # a network link: what 1607 checks before a renewal [PUSH]
    internet: bool  # and it reaches the internet (WNS, the server)
    battery: float
    saver: bool  # Battery Saver is on and holds back push (no exception applies)
    data_over: bool
    #: why no OMA-DM session can start now, or None when one can: "offline" (no network),
    #: "no-internet" (a network that reaches nothing), "server-unreachable" (it reaches WNS
    #: but not the server), "low-battery" (below the critical level)
    session_blocker: str | None

    @property
    def wns_connected(self) -> bool:
        return self.network_up and self.internet and not self.saver and not self.data_over

    @property
    def reason(self) -> str:
        """Why the WNS connection is down (or "ok")."""
        if not self.network_up:
            return "offline"
        if not self.internet:
            return "no-internet"
        if self.saver:
            return "battery-saver"
        if self.data_over:
            return "data-sense"
        return "ok"


class PowerState:
    """One device's mutable part: data used this cycle, offline spells, manual switches."""

    __slots__ = (
        "cycle_start",
        "data_base",
        "data_base_at",
        "internet",
        "offline_until",
        "saver_forced",
        "server_reachable",
        "switched_off",
    )

    def __init__(self, now: int) -> None:
        self.cycle_start = month_start(now)
        self.data_base = 0  # bytes used this cycle as of data_base_at
        self.data_base_at = now
        self.offline_until: int | None = None  # a long offline spell
        self.switched_off = False  # network switched off until switched on
        self.server_reachable = True  # WNS reachable but the server not (captive network)
        self.internet = True  # False: a network link that reaches nothing beyond it
        self.saver_forced = False  # Battery Saver switched on by hand, whatever the level


def month_start(now: int) -> int:
    day = datetime.fromtimestamp(now / 1000, UTC)
    return int(datetime(day.year, day.month, 1, tzinfo=UTC).timestamp() * 1000)


def next_month(now: int) -> int:
    day = datetime.fromtimestamp(now / 1000, UTC)
    year, month = (day.year + 1, 1) if day.month == 12 else (day.year, day.month + 1)
    return int(datetime(year, month, 1, tzinfo=UTC).timestamp() * 1000)


def _in_windows(windows: tuple[tuple[int, int], ...], ms_of_day: int) -> bool:
    minute = ms_of_day // MINUTE
    return any(
        (start <= minute < end) if start <= end else (minute >= start or minute < end)
        for start, end in windows
    )


def data_used(cfg: PowerConfig, state: PowerState, now: int) -> int:
    _roll_cycle(state, now)
    return state.data_base + cfg.background_per_day * (now - state.data_base_at) // DAY


def add_data(cfg: PowerConfig, state: PowerState, now: int, nbytes: int) -> None:
    """Count bytes (a session, a push) against Data Sense."""
    state.data_base = data_used(cfg, state, now) + nbytes
    state.data_base_at = now


def _roll_cycle(state: PowerState, now: int) -> None:
    if now >= next_month(state.cycle_start):
        state.cycle_start = month_start(now)
        state.data_base = 0
        state.data_base_at = state.cycle_start


def conditions(cfg: PowerConfig, state: PowerState, now: int) -> Conditions:
    of_day = now % DAY
    network_up = not (
        state.switched_off
        or (state.offline_until is not None and now < state.offline_until)
        or _in_windows(cfg.network, of_day)
    )
    battery = cfg.profile.level(of_day)
    data_over = cfg.data_allotment is not None and data_used(cfg, state, now) >= cfg.data_allotment
    saver_on = state.saver_forced or battery < cfg.saver_threshold
    return Conditions(
        network_up=network_up,
        internet=state.internet,
        battery=round(battery, 1),
        saver=saver_on and cfg.saver_exception == "blocked",
        data_over=data_over,
        session_blocker=(
            "offline"
            if not network_up
            else "no-internet"
            if not state.internet
            else "server-unreachable"
            if not state.server_reachable
            else "low-battery"
            if battery < cfg.critical
            else None
        ),
    )


def next_change(cfg: PowerConfig, state: PowerState, now: int) -> int:
    """The earliest time after ``now`` at which :func:`conditions` may differ."""
    _roll_cycle(state, now)
    day = now - now % DAY
    of_day = now % DAY
    # +1 ms: at the crossing itself the level equals the threshold; "below" starts just after
    crossings = (*cfg.profile.crossings(cfg.saver_threshold), *cfg.profile.crossings(cfg.critical))
    points = [(p + 1) % DAY for p in crossings]
    points += [m * MINUTE for window in cfg.network for m in window]
    candidates = [day + p if p > of_day else day + DAY + p for p in points]
    candidates.append(next_month(state.cycle_start))
    if state.offline_until is not None and state.offline_until > now:
        candidates.append(state.offline_until)
    if cfg.data_allotment is not None and cfg.background_per_day > 0:
        left = cfg.data_allotment - data_used(cfg, state, now)
        if left > 0:
            candidates.append(now + max(1, -(-left * DAY // cfg.background_per_day)))
    return min(candidates)
