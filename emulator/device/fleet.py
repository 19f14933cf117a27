"""The fleet runtime: carries out what device cores decide, on the shared clock.

Owns: the devices of one world, their timers on the clock (one per kind per device), their
link to the in-process fake WNS (channel requests, revocation, the persistent connection and
push delivery), running their OMA-DM sessions through a :class:`Transport` (one at a time per
device; a trigger during a session waits, coalesced), and the event log.
Must not: decide device behaviour (``agent.py`` does) or speak HTTP (the transport does).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Iterable
from dataclasses import replace

from emulator.clock import Clock
from emulator.device.agent import (
    TIMERS,
    Action,
    Connect,
    Device,
    DeviceGroup,
    Emit,
    Register,
    Revoke,
    SetTimer,
    StartSession,
)
from emulator.device.csp import CspTree
from emulator.device.rng import device_seed
from emulator.device.session import Transport, run_session
from emulator.enroll.driver import Enroller
from emulator.enroll.flow import DeviceFacts, EnrollFailed, EnrollSettings, enroll_retry_ms
from emulator.enroll.identity import Identities
from emulator.events import EventLog
from emulator.logs import get_logger
from emulator.wns.channels import ChannelRefused
from emulator.wns.models import Channel, Delivery
from emulator.wns.service import WnsService

_KIND = {kind: i for i, kind in enumerate(TIMERS)}
#: a push outranks other waiting triggers: its msg_id is what a vendor follows
_RANK = {"push": 3, "renewal": 2, "registration": 2}


class Fleet:
    def __init__(
        self,
        clock: Clock,
        wns: WnsService,
        transport: Transport,
        *,
        seed: int = 0,
        events: EventLog | None = None,
        enroller: Enroller | None = None,
        identities: Identities | None = None,
        concurrency: int = 0,
    ) -> None:
        self.clock = clock
        self.wns = wns
        self.transport = transport
        self.seed = seed
        self.events = events if events is not None else EventLog(clock)
        self.devices: dict[str, Device] = {}
        self.in_session: set[str] = set()
        self.waiting: dict[str, tuple[str, str | None]] = {}  # device -> (trigger, msg_id)
        self.sessions_run = 0
        self.log = get_logger("fleet", clock)
        #: MS-MDE2 enrollment, for groups with ``enroll`` settings (both or neither)
        self.enroller = enroller
        self.identities = identities
        self.enroll_attempts: dict[str, int] = {}
        #: sessions in flight at once (0: unbounded); matters when a clock resolution lets
        #: the sessions of a window run together
        self.concurrency = concurrency
        self._gate: asyncio.Semaphore | None = None
        self._enrolled_groups: dict[tuple[int, str, str], tuple[DeviceGroup, DeviceGroup]] = {}
        wns.fleet_subscriber = self._delivered

    # -- building -----------------------------------------------------------------------
    def add(self, device_id: str, group: DeviceGroup) -> Device:
        if device_id in self.devices:
            raise ValueError(f"device {device_id!r} already in the fleet")
        if group.enroll is not None and (self.enroller is None or self.identities is None):
            raise ValueError(f"group {group.name!r} enrolls: the fleet needs an enroller")
        device = Device(device_id, group, device_seed(self.seed, device_id), self.clock.now())
        self.devices[device_id] = device
        return device

    def adopt(self, device: Device) -> None:
        """Take a device restored from storage and rearm its timers."""
        self.devices[device.device_id] = device
        self.apply(device, device.resume(self.clock.now()))

    def enroll(self, device: Device) -> None:
        """The device joins its server: at once when it is assumed enrolled, else through
        MS-MDE2 enrollment (retried on failure, see :func:`enroll_retry_ms`)."""
        settings = device.group.enroll
        if settings is None:
            self.apply(device, device.enroll(self.clock.now()))
            return
        self.clock.spawn(self._enroll(device, settings), name=f"enroll-{device.device_id}")

    async def _enroll(self, device: Device, settings: EnrollSettings) -> None:
        assert self.enroller is not None
        assert self.identities is not None
        device_id, group = device.device_id, device.group
        attempt = self.enroll_attempts.get(device_id, 0) + 1
        self.enroll_attempts[device_id] = attempt
        self.events.emit(
            "device.enroll_started",
            device_id,
            discovery_url=settings.discovery_url,
            attempt=attempt,
        )
        facts = DeviceFacts(device_id, group.lang, group.profile.swv)
        try:
            result = await self.enroller.enroll(settings, facts)
        except EnrollFailed as exc:
            wait = enroll_retry_ms(attempt)
            fault = {k: v for k, v in exc.fault.items() if v is not None}
            self.events.emit(
                "device.enroll_failed",
                device_id,
                stage=exc.stage,
                reason=exc.reason,
                detail=exc.detail,
                excerpt=exc.excerpt,
                attempt=attempt,
                retry_in_ms=wait,
                **fault,
            )
            self.clock.call_at(self.clock.now() + wait, self.enroll, device)
            return
        p = result.provisioned
        self.identities.install(device_id, result)
        device.group = self._enrolled_group(group, p.server_url, p.provider_id)
        schema = device.group.schema
        for name, value in p.poll.items():  # DMClient settings of the document [MDE2 3.6]
            device.values[schema.poll_path(name)] = value
        details: dict[str, object] = {
            "thumbprint": result.thumbprint,
            "server_url": p.server_url,
            "provider_id": p.provider_id,
            "auth_policy": result.auth_policy,
        }
        if p.ignored:
            details["ignored"] = list(p.ignored)
        self.apply(device, device.enroll(self.clock.now(), details))

    def _enrolled_group(self, group: DeviceGroup, server_url: str, provider: str) -> DeviceGroup:
        """The group as its enrolled devices see it (the server address and ProviderID of
        the provisioning document), one object per distinct answer."""
        key = (id(group), server_url, provider)
        found = self._enrolled_groups.get(key)
        if found is None or found[0] is not group:
            found = (group, replace(group, server_url=server_url, provider_id=provider))
            self._enrolled_groups[key] = found
        return found[1]

    # -- applying actions ---------------------------------------------------------------
    def apply(self, device: Device, actions: Iterable[Action]) -> None:
        for action in actions:
            if isinstance(action, SetTimer):
                self._set_timer(device, action.kind, action.at)
            elif isinstance(action, Emit):
                self.events.emit(action.event, device.device_id, **action.fields)
            elif isinstance(action, StartSession):
                self._start_session(device, action.trigger, action.msg_id)
            elif isinstance(action, Register):
                self._register(device, action.pfn, action.announce)
            elif isinstance(action, Revoke):
                self._revoke(action.channel_uri)
            elif isinstance(action, Connect):
                status = "connected" if action.connected else "disconnected"
                self.wns.set_connection(device.device_id, status, self.clock.now())

    def _set_timer(self, device: Device, kind: str, at: int | None) -> None:
        i = _KIND[kind]
        old = device.timers[i]
        if old is not None:
            self.clock.cancel(old)
        device.timers[i] = (
            None
            if at is None
            else self.clock.call_at(max(at, self.clock.now()), self._fire, device, kind)
        )

    def _fire(self, device: Device, kind: str) -> None:
        device.timers[_KIND[kind]] = None
        self.apply(device, device.on_timer(kind, self.clock.now()))

    # -- WNS ----------------------------------------------------------------------------
    def _register(self, device: Device, pfn: str, announce: bool) -> None:
        """Ask WNS for a channel. A registration started in a session (``announce`` False)
        that WNS answers within the device's registration timeout is read in that session;
        a slower answer arrives later and starts a session of its own (section 0)."""
        delay = self.wns.registration_delay(pfn)
        if delay and (announce or delay > device.group.registration_timeout_ms):
            self.events.emit("device.registration_pending", device.device_id, delay_ms=delay)
            self.clock.call_at(self.clock.now() + delay, self._registered_late, device, pfn)
            return
        self._registered(device, pfn, announce)

    def _registered_late(self, device: Device, pfn: str) -> None:
        if device.pfn == pfn and device.state == "registering":  # not set again meanwhile
            self._registered(device, pfn, True)

    def _registered(self, device: Device, pfn: str, announce: bool) -> None:
        now = self.clock.now()
        try:
            channel = self.wns.request_channel(device.device_id, pfn, now)
        except ChannelRefused as exc:
            self.apply(device, device.on_refused(exc.reason, now))
            return
        actions = device.on_registered(channel.uri, channel.expires_ms, now, announce=announce)
        self.apply(device, actions)

    def _settle(self, device: Device, tree: CspTree) -> None:
        """The session is about to read Push/ChannelURI or Push/Status: a PFN it wrote takes
        effect now, while the session is open (section 0 [WP81BLOG])."""
        push = device.group.schema.push
        written = [path for path in tree.touched if path.startswith(push)]
        if written:
            tree.touched.difference_update(written)  # acted on: not again at the session end
            self.apply(device, device.pfn_written(self.clock.now()))

    def _revoke(self, channel_uri: str) -> None:
        channel = self.wns.registry.find_by_query(channel_uri.partition("?")[2])
        if channel is not None and not channel.revoked:
            self.wns.revoke_channel(channel)

    def _delivered(self, channel: Channel, delivery: Delivery) -> None:
        device = self.devices.get(channel.device_id)
        if device is None:
            return
        if channel.uri != device.channel_uri:  # an older channel of this device still works
            self.events.emit(
                "device.push_old_channel",
                device.device_id,
                msg_id=delivery.push.msg_id,
                channel_uri=channel.uri,
            )
        now = self.clock.now()
        self.apply(device, device.on_push(delivery.push.msg_id, delivery.via, now))

    # -- sessions -----------------------------------------------------------------------
    def _start_session(self, device: Device, trigger: str, msg_id: str | None) -> None:
        if device.device_id in self.in_session:
            held = self.waiting.get(device.device_id)
            if held is None or _RANK.get(trigger, 1) > _RANK.get(held[0], 1):
                self.waiting[device.device_id] = (trigger, msg_id)
            return
        self.in_session.add(device.device_id)
        self.clock.spawn(
            self._sessions(device, trigger, msg_id), name=f"session-{device.device_id}"
        )

    async def _sessions(self, device: Device, trigger: str, msg_id: str | None) -> None:
        next_up: tuple[str, str | None] | None = (trigger, msg_id)
        settle = functools.partial(self._settle, device)
        try:
            while next_up is not None:
                trigger, msg_id = next_up
                tls = self.identities.context(device.device_id) if self.identities else None
                session = run_session(
                    device, trigger, msg_id, self.transport, self._emitter(device), settle, tls
                )
                if self.concurrency > 0:
                    if self._gate is None:  # made in the running loop
                        self._gate = asyncio.Semaphore(self.concurrency)
                    async with self._gate:
                        end = await session
                else:
                    end = await session
                self.sessions_run += 1
                self.apply(device, device.on_session_end(end, self.clock.now()))
                next_up = self.waiting.pop(device.device_id, None)
        finally:
            self.in_session.discard(device.device_id)

    def _emitter(self, device: Device) -> Callable[..., None]:
        events, device_id = self.events, device.device_id

        def emit(event: str, **fields: object) -> None:
            events.emit(event, device_id, **fields)

        return emit

    # -- scenario hooks ------------------------------------------------------------------
    def set_network(self, device: Device, up: bool) -> None:
        device.power.switched_off = not up
        self.apply(device, device.power_changed(self.clock.now()))

    def go_offline(self, device: Device, until: int) -> None:
        device.power.offline_until = until
        self.apply(device, device.power_changed(self.clock.now()))

    def set_battery_saver(self, device: Device, on: bool) -> None:
        """Battery Saver switched on (or back to automatic) by hand [PUSH]."""
        device.power.saver_forced = on
        self.apply(device, device.power_changed(self.clock.now()))

    def set_server_reachable(self, device: Device, reachable: bool) -> None:
        device.power.server_reachable = reachable
        self.apply(device, device.power_changed(self.clock.now()))

    def set_internet(self, device: Device, up: bool) -> None:
        """The network link stays up but reaches (or again reaches) the internet."""
        device.power.internet = up
        self.apply(device, device.power_changed(self.clock.now()))
