"""Loopback world for the reference server: fake WNS and reference MDM on real sockets, a fleet
with the aiohttp driver, all on one virtual clock; plus helpers to read what each side saw."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp

from emulator.clock import VirtualClock
from emulator.device.agent import Device, DeviceGroup
from emulator.device.driver import HttpTransport
from emulator.device.fleet import Fleet
from emulator.device.recording import RecordingTransport
from emulator.mdm.app import PUSH_NOT_SENT, PUSH_STATUS
from emulator.mdm.config import MdmConfig
from emulator.mdm.server import ReferenceServer, RunningMdm, start_mdm
from emulator.syncml import Command
from emulator.wns.models import RequestRecord
from emulator.wns.server import RunningWns, start_wns
from emulator.wns.service import WnsConfig
from tests.conftest import APP_A

PROVIDER = "dmemu"


class RefWorld:
    def __init__(
        self,
        clock: VirtualClock,
        wns: RunningWns,
        mdm: RunningMdm,
        fleet: Fleet,
        http: aiohttp.ClientSession,
        transport: RecordingTransport,
    ) -> None:
        self.clock, self.wns, self.mdm, self.fleet, self.http = clock, wns, mdm, fleet, http
        self.transport = transport

    @property
    def server(self) -> ReferenceServer:
        return self.mdm.server

    async def restart_mdm(self) -> None:
        """Stop the reference server and start it again on the same port and database."""
        old = self.mdm
        await old.stop()
        server = ReferenceServer(old.server.config, self.clock, db=old.server.store.path)
        self.mdm = await start_mdm(server, port=old.port)

    def group(self, **kw: Any) -> DeviceGroup:
        return DeviceGroup(provider_id=PROVIDER, server_url=self.mdm.omadm_url, **kw)

    def enroll(self, device_id: str, **group: Any) -> Device:
        device = self.fleet.add(device_id, self.group(**group))
        self.fleet.enroll(device)
        return device

    async def run_for(self, ms: int) -> None:
        await self.clock.run_async(self.clock.now() + ms)

    async def admin(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        """Call the admin API as an operator (or a hooks file) would."""
        data = None if body is None else json.dumps(body).encode()
        async with self.http.request(method, f"{self.mdm.url}{path}", data=data) as resp:
            text = await resp.text()
            return resp.status, (json.loads(text) if text.startswith(("{", "[")) else text)

    async def push(self, device_id: str) -> dict[str, Any]:
        status, body = await self.admin("POST", f"/admin/devices/{device_id}/push")
        assert status == PUSH_STATUS.get(body["action"], PUSH_NOT_SENT), body  # says what happened
        return dict(body)

    def notifies(self, device_id: str | None = None) -> list[RequestRecord]:
        """The raw pushes the fake WNS received (optionally those for one device's channels)."""
        service = self.wns.service
        out = [r for r in service.records if r.kind == "notify"]
        if device_id is None:
            return out
        ids = {c.id for c in service.registry.channels_of(device_id)}
        return [r for r in out if r.channel_id in ids]

    def server_commands(self, device_id: str) -> list[tuple[int, Command]]:
        """Every command the server sent this device, with the time it was sent."""
        return [
            (ex.t_ms, cmd)
            for ex in self.transport.exchanges
            if ex.device_id == device_id and ex.reply is not None
            for cmd in ex.reply.commands
        ]

    def tokens(self) -> list[RequestRecord]:
        return [r for r in self.wns.service.records if r.kind == "token"]

    def events(self, name: str, device_id: str | None = None) -> list[dict[str, Any]]:
        return self.fleet.events.of(name, device_id)


@asynccontextmanager
async def ref_world(
    clock: VirtualClock,
    *,
    seed: int = 5,
    wns: dict[str, Any] | None = None,
    db: str = ":memory:",
    **mdm: Any,
) -> AsyncIterator[RefWorld]:
    running_wns = await start_wns(WnsConfig(apps=(APP_A,), **(wns or {})), clock)
    config = MdmConfig(
        app=APP_A,
        provider_id=PROVIDER,
        token_url=running_wns.token_url,
        trusted_hosts=(running_wns.url.split("://", 1)[1],),
        **mdm,
    )
    running_mdm = await start_mdm(ReferenceServer(config, clock, db=db))
    http_transport = HttpTransport(timeout_s=10)
    transport = RecordingTransport(clock, http_transport)
    fleet = Fleet(clock, running_wns.service, transport, seed=seed)
    async with aiohttp.ClientSession() as http:
        world = RefWorld(clock, running_wns, running_mdm, fleet, http, transport)
        try:
            yield world
        finally:
            await http_transport.close()
            await world.mdm.stop()
            await running_wns.stop()
