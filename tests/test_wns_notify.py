"""POST <ChannelURI>: every header rule and response code of [WNSHDR] 2.4-2.6."""

from __future__ import annotations

from typing import Any

import pytest

from emulator.clock import DAY, SECOND, VirtualClock
from emulator.wns.models import Channel
from emulator.wns.service import WnsService
from tests.conftest import APP_A, channel_path, get_token, raw_headers


@pytest.fixture
def channel(service: WnsService, clock: VirtualClock) -> Channel:
    return service.request_channel("dev-1", APP_A.pfn, clock.now())


@pytest.fixture
async def token(wns: Any) -> str:
    return await get_token(wns)


async def post(
    wns: Any, channel: Channel, token: str, body: bytes = b"ping", **headers: str
) -> Any:
    hdrs = raw_headers(token)
    dropped = []
    for name, value in headers.items():
        key = name.replace("_", "-")
        if value == "<drop>":
            hdrs.pop(key, None)
            dropped.append(key)
        else:
            hdrs[key] = value
    return await wns.post(
        channel_path(channel.uri), data=body, headers=hdrs, skip_auto_headers=dropped
    )


async def test_success_headers(wns: Any, channel: Channel, token: str) -> None:
    """200: X-WNS-Status and the older X-WNS-NotificationStatus (section 0), Msg-ID,
    Debug-Trace and MS-CV; no DeviceConnectionStatus unless asked for [WNSHDR]."""
    resp = await post(wns, channel, token)
    assert resp.status == 200
    assert resp.headers["X-WNS-Status"] == "received"
    assert resp.headers["X-WNS-NotificationStatus"] == "received"
    msg_id = resp.headers["X-WNS-Msg-ID"]
    assert len(msg_id) == 16
    assert msg_id.isalnum()
    assert resp.headers["X-WNS-Debug-Trace"].isalnum()
    base, _, extension = resp.headers["MS-CV"].partition(".")
    assert len(base) == 16
    assert extension.isdigit()
    assert "X-WNS-DeviceConnectionStatus" not in resp.headers
    assert resp.headers["Content-Length"] == "0"
    assert resp.headers["Date"] == "Thu, 01 Jan 2026 00:00:00 GMT"  # the emulated clock


async def test_ms_cv_is_echoed_and_status_given_on_request(
    wns: Any, channel: Channel, token: str
) -> None:
    resp = await post(
        wns, channel, token, MS_CV="abcdefghijklmnop.7", X_WNS_RequestForStatus="true"
    )
    assert resp.headers["MS-CV"] == "abcdefghijklmnop.7"
    assert resp.headers["X-WNS-DeviceConnectionStatus"] == "connected"


async def test_records_keep_the_headers_as_received(
    wns: Any, channel: Channel, token: str, service: WnsService
) -> None:
    """Every request is recorded with its headers as the sender sent them, in order with their
    spelling (issue 2: list recorded requests). Pushes that repeat the same headers share one
    kept copy, and a header that changes (an MS-CV per request) is kept per request."""
    for cv in ("abcdefghijklmnop.1", "abcdefghijklmnop.1", "abcdefghijklmnop.2"):
        assert (await post(wns, channel, token, MS_CV=cv)).status == 200
    first, second, third = (r.headers for r in service.records if r.kind == "notify")
    ours = {"authorization", "content-type", "x-wns-type", "ms-cv"}
    assert [(k, v) for k, v in first if k.lower() in ours] == [
        ("Authorization", f"Bearer {token}"),
        ("Content-Type", "application/octet-stream"),
        ("X-WNS-Type", "wns/raw"),
        ("MS-CV", "abcdefghijklmnop.1"),
    ]
    assert second is first
    assert third != first
    assert ("MS-CV", "abcdefghijklmnop.2") in third


@pytest.mark.parametrize(
    ("headers", "phrase"),
    [
        ({"X_WNS_Type": "<drop>"}, "X-WNS-Type header is required"),
        ({"X_WNS_Type": "wns/push"}, "X-WNS-Type 'wns/push' is invalid"),
        ({"Content_Type": "text/xml"}, "conflicts with X-WNS-Type wns/raw"),
        ({"Content_Type": "<drop>"}, "Content-Type header is required"),
        ({"X_WNS_Type": "wns/toast"}, "conflicts with X-WNS-Type wns/toast"),
        ({"X_WNS_Cache_Policy": "sometimes"}, "X-WNS-Cache-Policy 'sometimes' is invalid"),
        ({"X_WNS_TTL": "ten"}, "X-WNS-TTL 'ten' is invalid"),
        ({"X_WNS_TTL": "-5"}, "X-WNS-TTL '-5' is invalid"),
        ({"X_WNS_TTL": "1.5"}, "X-WNS-TTL '1.5' is invalid"),
        ({"X_WNS_RequestForStatus": "yes"}, "X-WNS-RequestForStatus 'yes' is invalid"),
        ({"X_WNS_Tag": "abc"}, "X-WNS-Tag applies to tile notifications only"),
        ({"X_WNS_Group": "g1"}, "X-WNS-Group applies to toast notifications only"),
        ({"X_WNS_Match": "type:wns/toast;all"}, "X-WNS-Match is only valid with DELETE"),
        ({"X_WNS_SuppressPopup": "true"}, "only valid on Windows Phone channels"),
        ({"X_WNS_PRIORITY": "5"}, "X-WNS-PRIORITY '5' is invalid"),
    ],
)
async def test_each_malformed_or_conflicting_header_is_a_400(
    wns: Any, channel: Channel, token: str, headers: dict[str, str], phrase: str
) -> None:
    """[WNSHDR] 400: one or more headers were specified incorrectly or conflict."""
    resp = await post(wns, channel, token, **headers)
    assert resp.status == 400
    assert phrase in resp.headers["X-WNS-Error-Description"]


async def test_xml_types_and_their_headers_are_accepted(
    wns: Any, channel: Channel, token: str
) -> None:
    tile = await post(
        wns,
        channel,
        token,
        body=b"<tile/>",
        X_WNS_Type="wns/tile",
        Content_Type="text/xml",
        X_WNS_Tag="Tag01",
        X_WNS_PRIORITY="2",
    )
    assert tile.status == 200
    toast = await post(
        wns,
        channel,
        token,
        body=b"<toast/>",
        X_WNS_Type="wns/toast",
        Content_Type="text/xml; charset=utf-8",
        X_WNS_Group="grp",
    )
    assert toast.status == 200
    cached = await post(wns, channel, token, X_WNS_Cache_Policy="Cache", X_WNS_TTL="60")
    assert cached.status == 200  # [PUSH] writes "Cache": values are case-insensitive


async def test_a_repeated_header_conflicts(wns: Any, channel: Channel, token: str) -> None:
    headers = [
        ("Authorization", f"Bearer {token}"),
        ("Content-Type", "application/octet-stream"),
        ("X-WNS-Type", "wns/raw"),
        ("X-WNS-Type", "wns/tile"),
    ]
    resp = await wns.post(channel_path(channel.uri), data=b"x", headers=headers)
    assert resp.status == 400
    assert "appears more than once" in resp.headers["X-WNS-Error-Description"]


async def test_payload_limits(wns: Any, channel: Channel, token: str) -> None:
    """[WNSHDR] 413 above 5000 bytes; [RAW] the payload must not be empty (section 0)."""
    assert (await post(wns, channel, token, body=b"x" * 5000)).status == 200
    big = await post(wns, channel, token, body=b"x" * 5001)
    assert big.status == 413
    assert "5000 byte size limit" in big.headers["X-WNS-Error-Description"]
    huge = await post(wns, channel, token, body=b"x" * 200_000)
    assert huge.status == 413
    empty = await post(wns, channel, token, body=b"")
    assert empty.status == 400
    assert "must not be empty" in empty.headers["X-WNS-Error-Description"]


async def test_chunked_bodies_are_refused(wns: Any, channel: Channel, token: str) -> None:
    """[WNSHDR] chunking is an unsupported HTTP feature."""

    async def body() -> Any:
        yield b"ping"

    resp = await wns.post(channel_path(channel.uri), data=body(), headers=raw_headers(token))
    assert resp.status == 400
    assert "Chunked" in resp.headers["X-WNS-Error-Description"]


@pytest.mark.parametrize(
    ("authorization", "phrase", "challenge"),
    [
        (None, "missing", 'Bearer realm="notify.windows.com"'),
        ("Basic abc", "must be 'Bearer", 'error="invalid_token"'),
        ("Bearer", "must be 'Bearer", 'error="invalid_token"'),
        ("Bearer not-a-token", "invalid", 'error="invalid_token"'),
    ],
)
async def test_401_without_a_valid_token(
    wns: Any, channel: Channel, authorization: str | None, phrase: str, challenge: str
) -> None:
    """[WNSHDR] 401; section 0: WWW-Authenticate per RFC 6750 plus X-WNS-Error-Description."""
    headers = raw_headers("x")
    if authorization is None:
        del headers["Authorization"]
    else:
        headers["Authorization"] = authorization
    resp = await wns.post(channel_path(channel.uri), data=b"x", headers=headers)
    assert resp.status == 401
    assert phrase in resp.headers["X-WNS-Error-Description"]
    assert challenge in resp.headers["WWW-Authenticate"]


async def test_revoked_token_gets_401(
    wns: Any, service: WnsService, channel: Channel, token: str
) -> None:
    service.tokens.revoke(APP_A.sid)
    resp = await post(wns, channel, token)
    assert resp.status == 401
    assert "revoked" in resp.headers["X-WNS-Error-Description"]


async def test_unknown_or_modified_channel_is_404(wns: Any, channel: Channel, token: str) -> None:
    """[WNSHDR] 404 unknown channel; [WNSOV] the URI is opaque: decoding %2b to '+' breaks it,
    while an equivalent percent-encoding (%2B) is the same URI."""
    assert (await wns.post("/?token=AAAA", data=b"x", headers=raw_headers(token))).status == 404
    assert (await wns.post("/", data=b"x", headers=raw_headers(token))).status == 404
    assert "%2b" in channel.uri
    mangled = channel.uri.replace("%2b", "+").replace("%2f", "/")
    resp = await wns.post(channel_path(mangled), data=b"x", headers=raw_headers(token))
    assert resp.status == 404
    upper = channel.uri.replace("%2b", "%2B").replace("%2f", "%2F").replace("%3d", "%3D")
    resp = await wns.post(channel_path(upper), data=b"x", headers=raw_headers(token))
    assert resp.status == 200


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "PATCH"])
async def test_other_methods_are_405(wns: Any, channel: Channel, token: str, method: str) -> None:
    """[WNSHDR] 405: only POST (DELETE is for Windows Phone channels)."""
    resp = await wns.request(method, channel_path(channel.uri), headers=raw_headers(token))
    assert resp.status == 405
    assert resp.headers["Allow"] == "POST"
    assert "only POST" in resp.headers["X-WNS-Error-Description"]


async def test_410_after_30_days_or_revocation_or_blocked_pfn(
    wns: Any, service: WnsService, clock: VirtualClock, channel: Channel, token: str
) -> None:
    """[PUSH] a ChannelURI is valid for 30 days; [WNSHDR] 410 channel expired / domain blocked."""
    service.registry.blocked.add(APP_A.pfn)
    blocked = await post(wns, channel, token)
    assert blocked.status == 410
    assert "Domain Blocked" in blocked.headers["X-WNS-Error-Description"]
    service.registry.blocked.clear()

    clock.advance(30 * DAY - SECOND)
    token = await get_token(wns)
    assert (await post(wns, channel, token)).status == 200
    clock.advance(SECOND)
    gone = await post(wns, channel, token)
    assert gone.status == 410
    assert gone.headers["X-WNS-Error-Description"] == "The channel expired."

    fresh = service.request_channel("dev-1", APP_A.pfn, clock.now())
    service.revoke_channel(fresh)
    revoked = await post(wns, fresh, token)
    assert revoked.status == 410
    assert "revoked" in revoked.headers["X-WNS-Error-Description"]


async def test_throttle_406_with_retry_after(aiohttp_client: Any, clock: VirtualClock) -> None:
    """[WNSHDR] 406 with Retry-After past the per-channel rate; fine again once it elapses."""
    from emulator.wns.app import make_wns_app
    from tests.conftest import make_service

    service = make_service(clock, rate_limit=(3, 60 * SECOND))
    client = await aiohttp_client(make_wns_app(service, clock))
    channel = service.request_channel("dev-1", APP_A.pfn, clock.now())
    token = await get_token(client)
    for _ in range(3):
        assert (await post(client, channel, token)).status == 200
        clock.advance(10 * SECOND)
    throttled = await post(client, channel, token)
    assert throttled.status == 406
    assert throttled.headers["X-WNS-Status"] == "channelthrottled"
    assert throttled.headers["Retry-After"] == "30"
    clock.advance(30 * SECOND)
    assert (await post(client, channel, token)).status == 200


async def test_check_order_auth_before_channel_before_headers(
    wns: Any, channel: Channel, token: str
) -> None:
    """The first failing rule answers: 401 beats 404, 404 beats 400."""
    bad_all = {"Authorization": "Bearer nope", "X-WNS-Type": "bogus"}
    assert (await wns.post("/?token=zz", data=b"x", headers=bad_all)).status == 401
    bad_hdr = raw_headers(token, **{"X-WNS-Type": "bogus"})
    assert (await wns.post("/?token=zz", data=b"x", headers=bad_hdr)).status == 404
    assert (await post(wns, channel, token, X_WNS_Type="bogus")).status == 400
