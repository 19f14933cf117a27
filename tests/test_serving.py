"""Serving on a real socket: direct routes are answered ahead of aiohttp's router, and a
request that expects ``100 Continue`` still gets it (RFC 9110 section 10.1.1)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from emulator.clock import VirtualClock
from emulator.serving import Listening, add_direct_route, listen
from emulator.wns.server import start_wns
from emulator.wns.service import WnsConfig
from tests.conftest import APP_A, AiohttpClient, token_form

#: How long a client waits for a 100 Continue that should come at once.
WAIT = aiohttp.ClientTimeout(total=5)


async def _echo(request: web.Request) -> web.Response:
    return web.Response(body=await request.read() or b"direct")


@web.middleware
async def _stamp(request: web.Request, handler: web.RequestHandler) -> web.StreamResponse:
    response = await handler(request)
    response.headers["X-Routed"] = "1"
    return response


def _app() -> web.Application:
    """A direct route ``/hot`` and a routed ``/cold``; the middleware stamps what the router
    served."""
    app = web.Application(middlewares=[_stamp])
    add_direct_route(app, "/hot", _echo)
    app.router.add_get("/cold", _echo)
    return app


@pytest.fixture
async def served() -> AsyncIterator[Listening]:
    listening = await listen(_app())
    yield listening
    await listening.runner.cleanup()


async def test_direct_routes_skip_the_router_only_when_listening(
    served: Listening, aiohttp_client: AiohttpClient
) -> None:
    """A direct route is answered by its handler ahead of the router (no middleware runs)
    for every method; other paths, unknown ones included, go through the router. Served by
    the test client instead, the same handler is reached through the router."""
    async with aiohttp.ClientSession() as session:
        for method in ("GET", "POST", "DELETE"):
            async with session.request(method, f"{served.url}/hot") as resp:
                assert (resp.status, await resp.read()) == (200, b"direct")
                assert "X-Routed" not in resp.headers
        async with session.get(f"{served.url}/cold") as resp:
            assert resp.status == 200
            assert resp.headers["X-Routed"] == "1"
        async with session.get(f"{served.url}/nowhere") as resp:
            assert resp.status == 404
    client = await aiohttp_client(_app())
    resp = await client.get("/hot")
    assert resp.status == 200
    assert resp.headers["X-Routed"] == "1"


async def test_expect_continue_is_answered_on_a_direct_route(served: Listening) -> None:
    """A client that sends ``Expect: 100-continue`` waits for ``100 Continue`` before the
    body (RFC 9110 10.1.1; .NET's HttpWebRequest does so by default): the router's expect
    handler answers it, so such a request is not taken by the front door. Without the 100
    the client would wait until its timeout."""
    async with (
        aiohttp.ClientSession(timeout=WAIT) as session,
        session.post(f"{served.url}/hot", data=b"payload", expect100=True) as resp,
    ):
        assert (resp.status, await resp.read()) == (200, b"payload")


async def test_a_push_that_expects_continue_is_received(clock: VirtualClock) -> None:
    """[WNSHDR] 2.1 and 2.4: a sender that asks for ``100 Continue`` gets its token and its
    raw push accepted like any other (both endpoints are direct routes of the fake WNS)."""
    wns = await start_wns(WnsConfig(apps=(APP_A,)), clock)
    channel = wns.service.request_channel("dev-1", APP_A.pfn, clock.now())
    try:
        async with aiohttp.ClientSession(timeout=WAIT) as session:
            async with session.post(wns.token_url, data=token_form(), expect100=True) as resp:
                assert resp.status == 200
                token = (await resp.json())["access_token"]
            headers = {
                "Authorization": f"Bearer {token}",
                "Content-Type": "application/octet-stream",
                "X-WNS-Type": "wns/raw",
            }
            async with session.post(
                channel.uri, data=b"wake", headers=headers, expect100=True
            ) as resp:
                assert resp.status == 200
                assert resp.headers["X-WNS-Status"] == "received"
    finally:
        await wns.stop()


async def test_a_request_goes_once_more_when_the_server_drops_the_connection() -> None:
    """A kept-alive connection the server closes just as it is reused (its idle timer ran
    out: a leap of time under --server-cmd provokes it) costs a request nothing: it is sent
    once more on a new connection; a second drop is the server's answer."""
    import asyncio

    import aiohttp

    from emulator.serving import request_once_more

    seen = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        seen.append(1)
        if len(seen) % 2:  # the first of each pair: drop it without an answer
            writer.close()
            return
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]

    async def read(resp: aiohttp.ClientResponse) -> str:
        return await resp.text()

    async with server, aiohttp.ClientSession() as http:
        url = f"http://127.0.0.1:{port}/"
        assert await request_once_more(http, "GET", url, read) == "ok"
        assert len(seen) == 2
