"""The device flows once more over real loopback HTTP: fake WNS app, aiohttp driver, and the
scripted MDM peer behind an aiohttp server."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from emulator.clock import DAY, MINUTE, VirtualClock
from emulator.device.agent import DeviceGroup
from emulator.device.driver import HttpTransport, ServerAuth
from emulator.device.fleet import Fleet
from emulator.device.session import Reply, TransportError
from emulator.mdm.wns_sender import WnsSender
from emulator.syncml import CONTENT_TYPE
from emulator.wns.server import RunningWns, start_wns
from emulator.wns.service import WnsConfig
from tests.conftest import APP_A
from tests.world import PROVIDER, ScriptedMdm, replace_pfn

AiohttpServer = Callable[..., Awaitable[TestServer]]


class Loopback:
    def __init__(
        self,
        clock: VirtualClock,
        wns: RunningWns,
        mdm: ScriptedMdm,
        fleet: Fleet,
        sender: WnsSender,
        server_url: str,
    ) -> None:
        self.clock, self.wns, self.mdm, self.fleet = clock, wns, mdm, fleet
        self.sender, self.server_url = sender, server_url


@pytest.fixture
async def loop_world(clock: VirtualClock, aiohttp_server: AiohttpServer) -> AsyncIterator[Loopback]:
    mdm = ScriptedMdm()
    seen_auth: list[str] = []

    async def omadm(request: web.Request) -> web.Response:
        seen_auth.append(request.headers.get("Authorization", ""))
        reply = await mdm.post(str(request.url), dict(request.headers), await request.read())
        return web.Response(status=reply.status, body=reply.body, headers=dict(reply.headers))

    app = web.Application()
    app.router.add_post("/omadm", omadm)
    server = await aiohttp_server(app)
    wns = await start_wns(WnsConfig(apps=(APP_A,)), clock)
    transport = HttpTransport(ServerAuth("bearer", token="device-token"), timeout_s=10)
    fleet = Fleet(clock, wns.service, transport, seed=3)
    async with aiohttp.ClientSession() as session:
        sender = WnsSender.to_local_wns(session, clock, APP_A, wns.url)
        world = Loopback(clock, wns, mdm, fleet, sender, str(server.make_url("/omadm")))
        world.seen_auth = seen_auth  # type: ignore[attr-defined]
        yield world
    await transport.close()
    await wns.stop()


async def test_flows_over_loopback_http(loop_world: Loopback, clock: VirtualClock) -> None:
    """Over real HTTP: PFN -> channel -> push through the fake WNS -> session with the push's
    Msg-ID; renewal at day 15 reported; a malformed reply is the server's fault [PUSH]."""
    w = loop_world
    group = DeviceGroup(provider_id=PROVIDER, server_url=w.server_url)
    device = w.fleet.add("dev-http", group)
    w.mdm.queue("dev-http", replace_pfn())
    w.fleet.enroll(device)
    await clock.run_async(clock.now() + MINUTE)
    uri = w.mdm.channel_uri["dev-http"]
    result = await w.sender.push(uri)
    await clock.run_async(clock.now() + MINUTE)
    push_session = w.fleet.events.of("session.start")[-1]
    assert push_session["trigger"] == "push"
    assert push_session["msg_id"] == result.msg_id
    assert w.seen_auth[-1] == "Bearer device-token"  # type: ignore[attr-defined]

    await clock.run_async(clock.now() + 15 * DAY)
    assert w.mdm.channel_uri["dev-http"] != uri
    assert "renewal" in [s["trigger"] for s in w.fleet.events.of("session.start")]

    def broken(seen: Any, msg: Any) -> Reply:
        return Reply(200, {"Content-Type": CONTENT_TYPE}, b"<SyncML><SyncHdr></SyncML>")

    w.mdm.override = broken
    await clock.run_async(clock.now() + DAY)
    assert w.fleet.events.of("session.server_fault")[-1]["rule"] == "malformed"
    assert device.state == "active"


async def test_unreachable_server_is_logged_not_fatal(clock: VirtualClock) -> None:
    """Connection errors are logged and retried on the next schedule, never crash the fleet."""
    wns = await start_wns(WnsConfig(apps=(APP_A,)), clock)
    transport = HttpTransport(timeout_s=5)
    fleet = Fleet(clock, wns.service, transport)
    device = fleet.add("dev-x", DeviceGroup(server_url="http://127.0.0.1:9/omadm"))
    fleet.enroll(device)
    await clock.run_async(clock.now() + 20 * MINUTE)
    kinds = [e["kind"] for e in fleet.events.of("session.transport_error")]
    assert kinds[:2] == ["unreachable", "unreachable"]
    await transport.close()
    await wns.stop()


async def test_basic_auth_and_oversize_reply(aiohttp_server: AiohttpServer) -> None:
    """Basic auth is sent on every session message [MSMDM 1.3.1]; a reply over the SyncML
    size limit is read only up to one byte past it, so the codec reports it as too large."""
    from emulator.syncml import MAX_MESSAGE_BYTES

    async def handler(request: web.Request) -> web.Response:
        auth = request.headers.get("Authorization", "")
        return web.Response(body=auth.encode() + b"x" * (MAX_MESSAGE_BYTES + 100))

    app = web.Application()
    app.router.add_post("/omadm", handler)
    server = await aiohttp_server(app)
    transport = HttpTransport(ServerAuth("basic", user="dev", password="pw"))
    reply = await transport.post(str(server.make_url("/omadm")), {}, b"<SyncML/>")
    await transport.close()
    assert reply.body.startswith(b"Basic ZGV2OnB3")
    assert len(reply.body) == MAX_MESSAGE_BYTES + 1


async def test_tls_client_certificate_auth(aiohttp_server: AiohttpServer, tmp_path: Any) -> None:
    """Server auth "cert": the device presents its enrollment certificate over TLS and trusts
    the server's CA [MSMDM 1.3.1][SRV]; without the certificate the handshake is refused and
    the session fails as "unreachable", not as a crash."""
    import ssl

    import trustme

    ca = trustme.CA()
    server_cert = ca.issue_cert("127.0.0.1")
    device_cert = ca.issue_cert("device-1@dmemu.test")
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_cert.configure_cert(server_ctx)
    ca.configure_trust(server_ctx)
    server_ctx.verify_mode = ssl.CERT_REQUIRED
    seen: list[str] = []

    async def handler(request: web.Request) -> web.Response:
        peer = request.transport.get_extra_info("peercert") if request.transport else None
        seen.append(str(peer["subjectAltName"]) if peer else "")
        return web.Response(body=b"ok")

    app = web.Application()
    app.router.add_post("/omadm", handler)
    server = await aiohttp_server(app, ssl=server_ctx)
    url = str(server.make_url("/omadm"))
    ca_file, cert_file = tmp_path / "ca.pem", tmp_path / "device.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    device_cert.private_key_and_cert_chain_pem.write_to_path(str(cert_file))
    with_cert = HttpTransport(
        ServerAuth("cert", cert_file=str(cert_file), key_file=str(cert_file), ca_file=str(ca_file))
    )
    reply = await with_cert.post(url, {}, b"<SyncML/>")
    await with_cert.close()
    assert reply.body == b"ok"
    assert "device-1@dmemu.test" in seen[0]
    without = HttpTransport(ServerAuth("none", ca_file=str(ca_file)), timeout_s=5)
    with pytest.raises(TransportError) as failure:
        await without.post(url, {}, b"<SyncML/>")
    await without.close()
    assert failure.value.kind == "unreachable"
