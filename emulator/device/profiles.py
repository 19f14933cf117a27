"""OS profiles: what each Windows build reports and how it renews its push channel.

Owns: the profile table (SwV, DMClient version, renewal rule, whether a push starts a
session) and the renewal schedule as a pure function of (expiry, now, network, rng) [PUSH].
Must not: keep device state, schedule timers or talk to WNS.

Renewal rules [PUSH] (protocol.md 1.3):
* ``wp81``: renews when 15 days are left; KB3170699 says it "may fail to automatically renew",
  and a channel more than 30 days past renewal cannot be re-established by the device alone:
  after expiry it does not retry (the server must send a new PFN). Under 15 days left it
  retries daily (a decision: no source gives WP8.1's retry interval).
* ``win81``: Windows 8.1 desktop, with WP8.1's renewal rules (the sources give none of its
  own) and a desktop's DevInfo; Battery Saver's "any app" exception is Windows 10's.
* ``win10-1511``: more than 15 days left -> at 15 days left; under 15 days -> in 4 h +/- 1 h;
  expired -> in 1 day +/- 4 h.
* ``win10-1607``: as 1511, but checks for a network first; without one the attempt is skipped
  and the next is in 4 h +/- 1 h.
* ``win10-22h2``: a fixed later build, with 1607's rules.
* ``win11-no-session``: current Windows 11 as fleetdm/fleet#43773 reports it: channel and
  renewal work, a push is received and logged, but no OMA-DM session starts (section 0).
Jitter comes from the device's own stream (:mod:`emulator.device.rng`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from emulator.clock import DAY, HOUR
from emulator.device.rng import DeviceRng

RENEW_AT_LEFT = 15 * DAY  # [PUSH] renew after 15 of 30 days


@dataclass(frozen=True, slots=True)
class OsProfile:
    name: str
    swv: str  # ./DevDetail/SwV [DEVDETAIL]
    description: str
    retry_under_15_days: tuple[int, int] | None  # (delay, jitter) once under 15 days left
    retry_after_expiry: tuple[int, int] | None  # (delay, jitter) once expired; None: give up
    checks_network: bool = False  # 1607+: skip the attempt without a network [PUSH]
    push_starts_session: bool = True
    sync_app_version: str = "2.0"  # DMClient SyncApplicationVersion [DMC]
    device_type: str = "Desktop"  # ./DevDetail/DevTyp [DEVDETAIL]
    #: "can also potentially hang when setting the PFN" on 8, 8.1 and 1511 [PUSH]
    may_hang_on_pfn: bool = False
    #: Battery Saver's "Allow push notifications from any app" exists (Windows 10/11
    #: desktop editions only [WNSOV])
    saver_any_app: bool = True


_WP81 = OsProfile(
    "wp81",
    "8.10.15148.160",
    "Windows Phone 8.1: renews at day 15, may fail to renew, no recovery after expiry",
    retry_under_15_days=(DAY, 0),
    retry_after_expiry=None,
    sync_app_version="1.0",
    device_type="Phone",
    may_hang_on_pfn=True,
    saver_any_app=False,
)
_WIN81 = replace(
    _WP81,
    name="win81",
    swv="6.3.9600.17031",
    description="Windows 8.1 desktop: WP8.1's renewal rules, may hang when the PFN is set",
    device_type="Desktop",
)
_WIN10_1511 = OsProfile(
    "win10-1511",
    "10.0.10586.0",
    "Windows 10 1511 DMClient retry rules",
    retry_under_15_days=(4 * HOUR, HOUR),
    retry_after_expiry=(DAY, 4 * HOUR),
    may_hang_on_pfn=True,
)
_WIN10_1607 = replace(
    _WIN10_1511,
    name="win10-1607",
    swv="10.0.14393.0",
    description="Windows 10 1607: 1511 rules, network check first",
    checks_network=True,
    may_hang_on_pfn=False,
)
PROFILES: dict[str, OsProfile] = {
    p.name: p
    for p in (
        _WP81,
        _WIN81,
        _WIN10_1511,
        _WIN10_1607,
        replace(
            _WIN10_1607,
            name="win10-22h2",
            swv="10.0.19045.2006",
            description="Windows 10 22H2: a later build with 1607 rules",
        ),
        replace(
            _WIN10_1607,
            name="win11-no-session",
            swv="10.0.26100.2314",
            description="Windows 11: push received and logged, no OMA-DM session "
            "(fleetdm/fleet#43773)",
            push_starts_session=False,
        ),
    )
}
NETWORK_RETRY = (4 * HOUR, HOUR)  # 1607+: no network -> retry in 4 h +/- 1 h [PUSH]


def jittered(now: int, rule: tuple[int, int], rng: DeviceRng) -> int:
    delay, jitter = rule
    return now + delay + (rng.uniform_int(-jitter, jitter) if jitter else 0)


def next_renewal(profile: OsProfile, expiry: int, now: int, rng: DeviceRng) -> int | None:
    """When the device next tries to renew a channel expiring at ``expiry`` [PUSH]."""
    if expiry - now > RENEW_AT_LEFT:
        return expiry - RENEW_AT_LEFT
    if now < expiry:
        assert profile.retry_under_15_days is not None
        return jittered(now, profile.retry_under_15_days, rng)
    if profile.retry_after_expiry is None:
        return None
    return jittered(now, profile.retry_after_expiry, rng)


def network_retry(now: int, rng: DeviceRng) -> int:
    """1607+ found no network: the attempt is skipped, next one in 4 h +/- 1 h [PUSH]."""
    return jittered(now, NETWORK_RETRY, rng)
