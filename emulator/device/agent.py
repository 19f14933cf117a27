"""The device agent's core: one simulated Windows client's decisions, sans-I/O.

Owns: a device's state (a slotted record: identity, lifecycle state, PFN, ChannelURI and
expiry, poll progress, power state, its random stream) and what it does on each event -
enrollment, a timer (poll, renewal, expiry, power), a push, a channel from WNS, the end of a
session - expressed as a list of :data:`Action` for a runtime to carry out.
Must not: do I/O, schedule timers, or read the clock: ``now`` comes with every event.

Theory of operation. The runtime (:mod:`emulator.device.fleet`) feeds events in and applies
the actions: ``Register``/``Revoke`` go to WNS, ``Connect`` sets the WNS connection,
``StartSession`` runs an OMA-DM session, ``SetTimer`` (re)arms the device's single timer of a
kind, ``Emit`` writes the event log. Rules: renewal [PUSH] via :mod:`profiles`; poll plan
[DMC] via :mod:`poll`; connection via :mod:`power`; lifecycle via :mod:`lifecycle`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from emulator.clock import SECOND
from emulator.device import lifecycle, poll
from emulator.device.csp import POLL_DEFAULTS, CspTree, Schema, Values, held, schema_for
from emulator.device.power import PowerConfig, PowerState, add_data, conditions, next_change
from emulator.device.profiles import (
    PROFILES,
    OsProfile,
    jittered,
    network_retry,
    next_renewal,
)
from emulator.device.rng import DeviceRng
from emulator.enroll.flow import EnrollSettings

#: [DMC] PFN is a Package Family Name: <name>_<13-char publisher id>. Anything else is
#: "invalid PFN" (Push/Status 1).
PFN_SHAPE = re.compile(r"^[A-Za-z0-9.\-]{3,50}_[a-z0-9]{13}$")

#: UserAgentOrigin per session trigger [MSMDM 3.1.7.2]: 1 user, 2 server-scheduled,
#: 3 WNS push, 4 login, 5 post-enrollment, 6 CSP-triggered.
ORIGIN = {
    "user": 1,
    "poll": 2,
    "retry": 2,
    "push": 3,
    "login": 4,
    "enrollment": 5,
    "registration": 6,
    "renewal": 6,
}
TIMERS = ("poll", "renew", "expire", "power", "retry")
#: Poll plans by the state of the Poll nodes (see ``Device._plan``), for every device.
_PLANS: dict[tuple[object, ...], tuple[poll.PollSet, ...]] = {}
_PLANS_SIZE = 256


class Register(NamedTuple):
    pfn: str
    renewal: bool
    #: start a session once the channel is issued: True for renewals and retries; False for
    #: a registration started by a PFN write in a session, which that session can read
    #: (section 0), unless WNS answers only after the registration timeout
    announce: bool = True


class Revoke(NamedTuple):
    channel_uri: str


class Connect(NamedTuple):
    connected: bool
    reason: str


class StartSession(NamedTuple):
    trigger: str
    msg_id: str | None = None  # the WNS push that caused it


class SetTimer(NamedTuple):
    kind: str  # one of TIMERS
    at: int | None  # None cancels


class Emit(NamedTuple):
    event: str
    fields: dict[str, Any]


Action = Register | Revoke | Connect | StartSession | SetTimer | Emit


@dataclass(frozen=True, slots=True)
class DeviceGroup:
    """What every device of a group shares (one object, referenced by each device)."""

    name: str = "default"
    profile: OsProfile = PROFILES["win10-22h2"]
    power: PowerConfig = field(default_factory=PowerConfig)
    provider_id: str = "dmemu"
    server_url: str = "https://mdm.example.test/omadm"
    manufacturer: str = "Contoso"
    model: str = "Surface Emulator 1"
    lang: str = "en-US"
    sync_app_version: str | None = None  # None: the profile's
    renewal_failure: str = "none"  # none | silent | hang | pfn_hang (per-device mode)
    renewal_failure_rate: float = 0.0  # chance each renewal attempt fails that way
    #: how long a registration started in a session may take and still be read in it
    #: (section 0: default 5 s); a slower WNS answer comes with a later session
    registration_timeout_ms: int = 5 * SECOND
    #: how its devices enroll (MS-MDE2 against the server); None: assumed enrolled
    enroll: EnrollSettings | None = None

    @property
    def schema(self) -> Schema:
        return schema_for(self.provider_id)

    @property
    def app_version(self) -> str:
        return self.sync_app_version or self.profile.sync_app_version


@dataclass(frozen=True, slots=True)
class SessionEnd:
    """What the runtime reports when a session is over."""

    trigger: str  # what started the session
    ok: bool  # the server answered well-formed SyncML and ended the session
    outcome: str  # "ended" | "server-fault" | "http-<status>" | "unreachable" | "timeout" ...
    retry_after: int | None = None  # from HTTP 429 Retry-After, ms
    nbytes: int = 0  # request + response bytes (Data Sense counts them)
    touched: frozenset[str] = frozenset()  # CSP paths the server wrote


class Device:
    """One simulated Windows client. Slots keep it small: a fleet holds 100,000 of these."""

    __slots__ = (
        "channel_expiry",
        "channel_uri",
        "connected",
        "device_id",
        "enrolled",
        "group",
        "hung",
        "pfn",
        "poll_anchor",
        "polls_done",
        "power",
        "push_blocked",
        "reported_uri",
        "rng",
        "session_hung",
        "session_seq",
        "state",
        "timers",
        "values",
    )

    def __init__(self, device_id: str, group: DeviceGroup, seed: int, now: int) -> None:
        self.device_id = device_id
        self.group = group
        self.rng = DeviceRng(seed)
        self.values: Values = {}  # sparse CSP values (csp.py)
        self.state = lifecycle.INITIAL
        self.pfn: str | None = None  # the PFN the device registered with WNS
        self.channel_uri: str | None = None
        self.channel_expiry: int | None = None
        self.push_blocked = False  # Push/Status 7 overlay
        self.hung = False  # renewal failure mode "hang" struck: no automatic renewal
        self.session_hung = False  # pfn_hang struck in the open session: it sends no more
        self.enrolled = False
        self.poll_anchor = now
        self.polls_done = 0
        self.session_seq = 0
        self.power = PowerState(now)
        self.connected = False  # WNS connection as last decided
        self.reported_uri: str | None = None  # the ChannelURI last sent to the server
        self.timers: list[Any] = [None] * len(TIMERS)  # runtime's timer handles, by kind

    # -- reading ------------------------------------------------------------------------
    @property
    def push_status(self) -> int:
        if self.push_blocked and self.state in lifecycle.CHANNEL_VALID:
            return 7  # [DMC] push received, no session (power/connectivity)
        return lifecycle.STATUS[self.state]

    def computed(self, key: str) -> str:
        """Values the CSP tree reads from the device [DEVINFO][DEVDETAIL][DMC]."""
        g = self.group
        match key:
            case "ChannelURI":  # "null" without a valid PFN [DMC]: empty (section 0)
                valid = self.state in lifecycle.CHANNEL_VALID or self.state == "expired"
                return (self.channel_uri or "") if valid else ""
            case "Status":
                return str(self.push_status)
            case "DevId":
                return self.device_id
            case "Man" | "OEM":
                return g.manufacturer
            case "Mod":
                return g.model
            case "DmV":
                return "1.3"
            case "Lang":
                return g.lang
            case "SwV":
                return g.profile.swv
            case "DevTyp":
                return g.profile.device_type
            case _:
                return "Unknown"

    def tree(self) -> CspTree:
        return CspTree(self.group.schema, self.values, self.computed)

    def configured_pfn(self) -> str | None:
        return self.tree().value(self.group.schema.pfn)

    def poll_values(self) -> tuple[str, ...]:
        schema, tree = self.group.schema, self.tree()
        return tuple(tree.value(schema.poll_path(n)) or "" for n in POLL_DEFAULTS)

    def next_session_id(self) -> str:
        """SessionID: a small counter, unique per session [MSMDM 2.2.3.8]."""
        self.session_seq = self.session_seq % 0xFFFF + 1
        return str(self.session_seq)

    # -- events -------------------------------------------------------------------------
    def enroll(self, now: int, details: dict[str, Any] | None = None) -> list[Action]:
        """Enrollment done: the first session, the poll plan, the power model start.
        ``details``: what a real enrollment gave (thumbprint, server address ...)."""
        self.enrolled = True
        self.poll_anchor, self.polls_done = now, 0
        fields = {"profile": self.group.profile.name, **(details or {})}
        out: list[Action] = [Emit("device.enrolled", fields)]
        out += self._reconsider_power(now)
        out.append(self._poll_timer())
        preset = self.configured_pfn()
        if preset and self.pfn is None:  # enrolled again with a PFN already set [OMADM] 418
            out += self._pfn_written(preset, now)
        out.append(StartSession("enrollment"))
        return out

    def resume(self, now: int) -> list[Action]:
        """Rearm timers after a restart from persisted state."""
        out = self._reconsider_power(now)
        out.append(self._poll_timer())
        if self.channel_expiry is not None and self.state in lifecycle.CHANNEL_VALID:
            out.append(SetTimer("expire", self.channel_expiry))
            out += self._schedule_renewal(now)
        return out

    def on_timer(self, kind: str, now: int) -> list[Action]:
        if kind in ("poll", "retry"):
            if kind == "poll":
                self.polls_done += 1
            out: list[Action] = [self._poll_timer()] if kind == "poll" else []
            cond = conditions(self.group.power, self.power, now)
            if cond.session_blocker is not None:  # retried on the next schedule [DMC]
                return [
                    *out,
                    Emit(
                        "device.session_skipped",
                        {"trigger": kind, "reason": cond.session_blocker},
                    ),
                ]
            return [*out, StartSession(kind)]
        if kind == "power":
            return self._reconsider_power(now)
        if kind == "expire":
            return self._expire(now)
        return self._renew(now)

    def on_push(self, msg_id: str, via: str, now: int) -> list[Action]:
        """A raw push arrived over the WNS connection [PUSH]: the shoulder tap."""
        out: list[Action] = [Emit("device.push_received", {"msg_id": msg_id, "via": via})]
        if not self.group.profile.push_starts_session:
            out.append(Emit("device.push_no_session", {"msg_id": msg_id, "reason": "os-profile"}))
            return out
        cond = conditions(self.group.power, self.power, now)
        if cond.session_blocker is not None:
            self.push_blocked = True  # Push/Status 7 [DMC]: power or connectivity
            out.append(
                Emit(
                    "device.push_no_session",
                    {"msg_id": msg_id, "reason": cond.session_blocker, "battery": cond.battery},
                )
            )
            return out
        out.append(StartSession("push", msg_id))
        return out

    def on_registered(
        self, channel_uri: str, expiry: int, now: int, *, announce: bool = True
    ) -> list[Action]:
        """WNS issued (or renewed) the channel. ``announce``: start a session to report it
        ("triggers a management session on successful renewal" [PUSH][KI]); a channel issued
        while the session that set the PFN is open is read in that session instead
        [WP81BLOG]."""
        first = self.state == "registering"
        renewed_uri = channel_uri != self.channel_uri
        self.state = lifecycle.fire(self.state, "registered")
        self.channel_uri, self.channel_expiry = channel_uri, expiry
        out: list[Action] = [
            Emit(
                "device.channel",
                {
                    "channel_uri": channel_uri,
                    "expires_ms": expiry,
                    "new_uri": renewed_uri,
                    "kind": "registration" if first else "renewal",
                },
            )
        ]
        if not self.connected:
            self.state = lifecycle.fire(self.state, "connection_lost")
        out.append(SetTimer("expire", expiry))
        out += self._schedule_renewal(now)
        if announce:
            out.append(StartSession("registration" if first else "renewal"))
        return out

    def on_refused(self, reason: str, now: int) -> list[Action]:
        """WNS refused the PFN (unknown or blocked): Push/Status 3 [DMC]."""
        self.state = lifecycle.fire(self.state, "refused")
        return [
            Emit("device.channel_refused", {"pfn": self.pfn, "reason": reason}),
            SetTimer("renew", None),
            SetTimer("expire", None),
        ]

    def on_session_end(self, end: SessionEnd, now: int) -> list[Action]:
        out: list[Action] = []
        if end.nbytes:
            add_data(self.group.power, self.power, now, end.nbytes)
        if end.ok:
            self.push_blocked = False
        elif end.retry_after is not None:  # HTTP 429 [MSMDM 3.1.6]
            out.append(SetTimer("retry", now + end.retry_after))
        elif end.outcome in ("unreachable", "timeout") and end.trigger == "push":
            self.push_blocked = True
        schema = self.group.schema
        if any(p.startswith(schema.poll) for p in end.touched):
            self.poll_anchor, self.polls_done = now, 0  # a new plan starts now [DMC]
            out.append(self._poll_timer())
            out.append(Emit("device.poll_schedule", {"plan": self._plan_text()}))
        if any(p.startswith(schema.push) for p in end.touched):
            out += self.pfn_written(now)
        return out

    def pfn_written(self, now: int) -> list[Action]:
        """A session wrote the Push subtree: act on what PFN now holds. The runtime calls
        this as soon as the session reads Push/ChannelURI or Push/Status after the write, so
        the registration happens while that session is open (section 0 [WP81BLOG])."""
        return self._pfn_written(self.configured_pfn(), now)

    # -- rules --------------------------------------------------------------------------
    def _pfn_written(self, after: str | None, now: int) -> list[Action]:
        """Section 0: setting PFN (even to the same value, the [KB3170699] recovery) revokes
        the old channel and registers again; deleting it clears the channel."""
        out: list[Action] = []
        if self.channel_uri is not None and self.state in lifecycle.CHANNEL_VALID:
            out.append(Revoke(self.channel_uri))
        self.channel_uri = self.channel_expiry = None
        self.hung = False
        self.pfn = after
        out += [SetTimer("renew", None), SetTimer("expire", None)]
        if after is None:
            self.state = lifecycle.fire(self.state, "clear_pfn")
            out.append(Emit("device.pfn_cleared", {}))
            return out
        if not PFN_SHAPE.match(after):
            self.state = lifecycle.fire(self.state, "set_invalid_pfn")
            out.append(Emit("device.pfn_invalid", {"pfn": after}))
            return out
        self.state = lifecycle.fire(self.state, "set_pfn")
        out.append(Emit("device.pfn_set", {"pfn": after}))
        g = self.group
        if g.renewal_failure == "pfn_hang" and self.rng.chance(g.renewal_failure_rate):
            # [PUSH] "can also potentially hang when setting the PFN" (section 0 pfn_hang):
            # the PFN is stored, the session sends nothing more, nothing registers until the
            # server sets the PFN again or the next renewal attempt (1511: in 1 day +/- 4 h)
            self.session_hung = True
            out.append(Emit("device.pfn_hang", {"pfn": after}))
            if g.profile.retry_after_expiry is not None:
                out.append(SetTimer("renew", jittered(now, g.profile.retry_after_expiry, self.rng)))
            return out
        return out + self._attempt(now, renewal=False, announce=False)

    def _attempt(self, now: int, *, renewal: bool, announce: bool = True) -> list[Action]:
        """Ask WNS for a channel, unless this device's renewal failure mode strikes."""
        assert self.pfn is not None
        cond = conditions(self.group.power, self.power, now)
        g = self.group
        if g.profile.checks_network and not cond.network_up:  # 1607+ [PUSH]
            return [
                Emit("device.renewal_skipped", {"reason": "no-network"}),
                SetTimer("renew", network_retry(now, self.rng)),
            ]
        failing = g.renewal_failure in ("silent", "hang")
        if renewal and failing and self.rng.chance(g.renewal_failure_rate):
            if g.renewal_failure == "hang":  # [KB3170699] "may fail to automatically renew"
                self.hung = True
                return [Emit("device.renewal_hung", {}), SetTimer("renew", None)]
            return [
                Emit("device.renewal_failed", {"reason": "silent"}),
                *self._schedule_renewal(now),
            ]
        if not (cond.network_up and cond.internet):  # 1511 tries without either; 1607 too
            reason = "no-network" if not cond.network_up else "no-internet"
            out: list[Action] = [Emit("device.renewal_failed", {"reason": reason})]
            if self.channel_expiry is None:
                return [*out, SetTimer("renew", network_retry(now, self.rng))]
            return out + self._schedule_renewal(now)
        return [Register(self.pfn, renewal, announce)]

    def _renew(self, now: int) -> list[Action]:
        if (
            self.pfn is None
            or self.hung
            or self.state not in ("active", "disconnected", "expired", "registering")
        ):
            return []
        return [
            Emit("device.renewal_attempt", {"state": self.state}),
            *self._attempt(now, renewal=self.state != "registering"),
        ]

    def _schedule_renewal(self, now: int) -> list[Action]:
        if self.channel_expiry is None:
            return [SetTimer("renew", None)]
        at = next_renewal(self.group.profile, self.channel_expiry, now, self.rng)
        return [SetTimer("renew", at)]

    def _expire(self, now: int) -> list[Action]:
        if not lifecycle.can_fire(self.state, "expire"):
            return []
        self.state = lifecycle.fire(self.state, "expire")
        return [
            Emit("device.channel_expired", {"channel_uri": self.channel_uri}),
            *self._schedule_renewal(now),
        ]

    def _reconsider_power(self, now: int) -> list[Action]:
        cond = conditions(self.group.power, self.power, now)
        out: list[Action] = [SetTimer("power", next_change(self.group.power, self.power, now))]
        if cond.wns_connected == self.connected:
            return out
        self.connected = cond.wns_connected
        out.append(Connect(cond.wns_connected, cond.reason))
        event = "connection_restored" if self.connected else "connection_lost"
        if lifecycle.can_fire(self.state, event):
            self.state = lifecycle.fire(self.state, event)
        out.append(
            Emit(
                "device.wns_connection",
                {"connected": self.connected, "reason": cond.reason, "battery": cond.battery},
            )
        )
        return out

    def power_changed(self, now: int) -> list[Action]:
        """A scenario switched the network, started an offline spell, etc."""
        return self._reconsider_power(now)

    def _plan(self) -> tuple[poll.PollSet, ...]:
        """The poll plan [DMC] of what the device's Poll nodes hold, shared by every device
        holding the same (a fleet has a few plans, and one is read after every poll)."""
        schema = self.group.schema
        key = (schema.poll, *held(self.values, schema.poll_nodes))
        plan = _PLANS.get(key)
        if plan is None:
            if len(_PLANS) >= _PLANS_SIZE:  # a server chooses the values: stay bounded
                _PLANS.clear()
            values = dict(zip(POLL_DEFAULTS, self.poll_values(), strict=True))
            plan = _PLANS[key] = poll.plan(values)
        return plan

    def _poll_timer(self) -> SetTimer:
        return SetTimer("poll", poll.next_poll(self._plan(), self.poll_anchor, self.polls_done))

    def _plan_text(self) -> str:
        return ", ".join(
            f"{s.interval // 60000} min x {'inf' if s.count is None else s.count}"
            for s in self._plan()
        )
