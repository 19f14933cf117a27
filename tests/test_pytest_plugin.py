"""dmemu's pytest plugin (issue 17, part 2): its fixtures are there in any suite (entry point
pytest11), the process's wall clock follows dmemu's while ``dmemu_time`` is active, and
``dmemu_wns`` gives a fake WNS with the handles a test needs. The end-to-end example, a
vendor-style server tested with ``dmemu_run``, is docs/examples/test_vendor_mdm.py."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest

from emulator.clock import DAY, VirtualClock
from emulator.testing.plugin import FakeWns, Runner, TimeBinding


async def test_the_process_clock_follows_dmemu_and_the_fake_wns_answers(
    dmemu_wns: FakeWns, dmemu_time: TimeBinding, dmemu_clock: VirtualClock
) -> None:
    """datetime.now() and time.time() read the virtual clock, through its leaps; a push to
    a channel the fake WNS issued is received, and 410 once the channel is revoked."""
    assert datetime.now(UTC) == datetime(2026, 1, 1, tzinfo=UTC)
    await dmemu_wns.advance(DAY)
    assert datetime.now(UTC) == datetime(2026, 1, 2, tzinfo=UTC)
    assert time.time() == dmemu_clock.now() / 1000
    uri = dmemu_wns.channel("dev-1")
    app = dmemu_wns.app
    async with aiohttp.ClientSession() as http:
        form = {
            "grant_type": "client_credentials",
            "client_id": app.client_id,
            "client_secret": app.secret,
            "scope": "notify.windows.com",
        }
        async with http.post(dmemu_wns.token_url, data=form) as resp:
            token = (await resp.json())["access_token"]
        headers = {
            "Authorization": f"Bearer {token}",
            "X-WNS-Type": "wns/raw",
            "Content-Type": "application/octet-stream",
        }
        async with http.post(uri, data=b"x", headers=headers) as resp:
            assert resp.status == 200
        dmemu_wns.revoke(uri)
        async with http.post(uri, data=b"x", headers=headers) as resp:
            assert resp.status == 410
    assert [r.status for r in dmemu_wns.pushes(uri)] == [200, 410]
    assert len(dmemu_wns.token_requests()) == 1
    assert datetime.now(UTC) - datetime(2026, 1, 2, tzinfo=UTC) < timedelta(seconds=1)


def test_the_fixtures_come_with_dmemu(pytestconfig: object) -> None:
    """Installed dmemu registers the plugin (pyproject's pytest11 entry point)."""
    import importlib.metadata

    points = importlib.metadata.entry_points(group="pytest11")
    assert any(p.value == "emulator.testing.plugin" for p in points)


async def test_dmemu_run_takes_a_server_url_or_an_app(dmemu_run: Runner) -> None:
    with pytest.raises(TypeError, match="server_url or app"):
        await dmemu_run("name: x\n")


def _aiohttp_app(later: Callable[[], Awaitable[None]], tasks: list[Any]) -> object:
    from aiohttp import web

    async def handler(request: web.Request) -> web.Response:
        tasks.append(asyncio.create_task(later()))
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/", handler)
    return app


def _asgi_app(later: Callable[[], Awaitable[None]], tasks: list[Any]) -> object:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        tasks.append(asyncio.create_task(later()))
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    return app


@pytest.mark.parametrize("kind", ["aiohttp", "asgi"])
async def test_a_server_on_the_clock_loop_wakes_at_its_emulated_instant(
    dmemu_clock: VirtualClock, kind: str
) -> None:
    """A server on a ClockLoop (dmemu_run's app=, aiohttp or ASGI): its asyncio.sleep(3600)
    ends exactly an emulated hour later, the clock stopping there although it has no timer
    of its own, and leaping on to the end of the day afterwards."""
    from emulator.testing.loop import serve_on_clock

    woke: list[float] = []
    tasks: list[Any] = []

    async def later() -> None:
        await asyncio.sleep(3600)
        woke.append(asyncio.get_running_loop().time())

    app = (_aiohttp_app if kind == "aiohttp" else _asgi_app)(later, tasks)
    start = dmemu_clock.now()
    with serve_on_clock(app, dmemu_clock) as url:
        async with aiohttp.ClientSession() as http, http.get(url) as resp:
            assert resp.status == 200
        await dmemu_clock.run_async(start + DAY)
    assert woke == [start / 1000 + 3600]
    assert dmemu_clock.now() == start + DAY


async def test_a_wsgi_app_is_served_on_the_clock_loop_too(dmemu_clock: VirtualClock) -> None:
    """A WSGI application goes through a2wsgi to the same loop."""
    from emulator.testing.loop import serve_on_clock

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"wsgi ok"]

    with serve_on_clock(app, dmemu_clock) as url:
        async with aiohttp.ClientSession() as http, http.get(url) as resp:
            assert await resp.text() == "wsgi ok"
