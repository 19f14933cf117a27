"""The reference sender over loopback: what conformance rows A and B ask of an MDM server."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from emulator.clock import DAY, HOUR, VirtualClock
from emulator.mdm.wns_sender import WnsSender, verdict
from emulator.wns.server import RunningWns, start_wns
from emulator.wns.service import WnsConfig
from tests.conftest import APP_A


@pytest.fixture
async def world(clock: VirtualClock) -> AsyncIterator[tuple[RunningWns, WnsSender]]:
    wns = await start_wns(WnsConfig(apps=(APP_A,)), clock)
    async with aiohttp.ClientSession() as session:
        sender = WnsSender.to_local_wns(session, clock, APP_A, wns.url)
        yield wns, sender
    await wns.stop()


def kinds(wns: RunningWns) -> list[tuple[str, int]]:
    return [(r.kind, r.status) for r in wns.service.records]


async def test_token_is_reused_then_refreshed_ahead_of_expiry(
    world: tuple[RunningWns, WnsSender], clock: VirtualClock
) -> None:
    """A2: one token serves many pushes until it expires (no token request per push)."""
    wns, sender = world
    channel = wns.service.request_channel("d", APP_A.pfn, clock.now())
    for _ in range(3):
        assert (await sender.push(channel.uri)).action == "delivered"
        clock.advance(HOUR)
    clock.advance(DAY)
    assert (await sender.push(channel.uri)).token_requests == 1
    assert [k for k, _ in kinds(wns)].count("token") == 2


async def test_one_refresh_and_one_resend_after_401(
    world: tuple[RunningWns, WnsSender], clock: VirtualClock
) -> None:
    """A3: after a 401 get a new token and resend at most once; never loop on 401."""
    wns, sender = world
    channel = wns.service.request_channel("d", APP_A.pfn, clock.now())
    await sender.push(channel.uri)
    wns.service.tokens.revoke()
    result = await sender.push(channel.uri)
    assert result.status == 200
    assert kinds(wns)[-3:] == [("notify", 401), ("token", 200), ("notify", 200)]
    wns.service.faults.add(status=401, count=5)
    result = await sender.push(channel.uri)
    assert result.status == 401
    assert result.action == "fix"
    assert [k for k, s in kinds(wns)].count("notify") == 5  # two sends, not five


async def test_gone_channel_stops_and_throttle_waits(
    world: tuple[RunningWns, WnsSender], clock: VirtualClock
) -> None:
    """C5/D1: stop after 410; after 406 nothing before Retry-After."""
    wns, sender = world
    channel = wns.service.request_channel("d", APP_A.pfn, clock.now())
    wns.service.faults.add(status=406, count=1, retry_after_s=90)
    throttled = await sender.push(channel.uri)
    assert throttled.action == "retry"
    assert throttled.retry_at == clock.now() + 90_000
    clock.advance(31 * DAY)
    gone = await sender.push(channel.uri)
    assert (gone.status, gone.action) == (410, "stop")


async def test_exact_channel_uri_and_raw_headers(
    world: tuple[RunningWns, WnsSender], clock: VirtualClock
) -> None:
    """B1 exact channel (percent-encoding kept), B2 raw headers, B4 cache policy."""
    wns, sender = world
    channel = wns.service.request_channel("d", APP_A.pfn, clock.now())
    await sender.push(channel.uri, b"wake")
    record = wns.service.records[-1].as_json()
    assert record["target"] == "/" + channel.uri.split("/", 3)[3]
    assert record["headers"]["X-WNS-Type"] == "wns/raw"
    assert record["headers"]["Content-Type"] == "application/octet-stream"
    assert record["headers"]["Content-Length"] == "4"
    assert record["headers"]["X-WNS-Cache-Policy"] == "cache"


async def test_untrusted_channel_hosts_are_refused(world: tuple[RunningWns, WnsSender]) -> None:
    """B5: never POST to a ChannelURI outside the trusted WNS domain [WNSOV]."""
    wns, sender = world
    trap = await sender.push("https://evil.example.com/?token=abc")
    assert trap.action == "refused"
    assert wns.service.records == type(wns.service.records)()
    prod = WnsSender(
        aiohttp.ClientSession(), VirtualClock(), token_url="", client_id="", client_secret=""
    )
    try:
        assert prod.trusted("https://db5.notify.windows.com/?token=x")
        assert not prod.trusted("http://db5.notify.windows.com/?token=x")
        assert not prod.trusted("https://notify.windows.com.evil.io/?token=x")
    finally:
        await prod.session.close()


@pytest.mark.parametrize(
    ("status", "action"),
    [
        (200, "delivered"),
        (404, "stop"),
        (410, "stop"),
        (406, "retry"),
        (503, "retry"),
        (500, "retry"),
        (400, "fix"),
        (403, "fix"),
        (413, "fix"),
    ],
)
def test_verdict_table(status: int, action: str) -> None:
    """[WNSHDR] 2.6 recommended sender actions."""
    assert verdict(status) == action


async def test_token_errors_surface(clock: VirtualClock) -> None:
    from emulator.mdm.wns_sender import TokenError

    wns = await start_wns(WnsConfig(apps=(APP_A,)), clock)
    try:
        async with aiohttp.ClientSession() as session:
            sender = WnsSender.to_local_wns(session, clock, APP_A, wns.url, client_secret="wrong")
            with pytest.raises(TokenError, match="invalid_client"):
                await sender.token()
    finally:
        await wns.stop()
