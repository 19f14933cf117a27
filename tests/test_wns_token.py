"""POST /accesstoken.srf: the OAuth client-credentials flow of [WNSHDR] 2.1-2.2 / [WNSOV]."""

from __future__ import annotations

from typing import Any

import pytest

from emulator.clock import DAY, MINUTE, VirtualClock
from emulator.wns.service import WnsService
from tests.conftest import APP_A, APP_B, channel_path, get_token, raw_headers, token_form


async def test_token_success_shape_and_headers(wns: Any) -> None:
    """200 JSON with access_token, token_type bearer, expires_in; Cache-Control: no-store."""
    resp = await wns.post("/accesstoken.srf", data=token_form())
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("application/json")
    assert resp.headers["Cache-Control"] == "no-store"
    body = await resp.json()
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 86_400  # [QS] 24 hours
    assert isinstance(body["access_token"], str)
    assert len(body["access_token"]) > 40


async def test_content_type_with_charset_is_accepted(wns: Any) -> None:
    body = "&".join(
        f"{k}={v}"
        for k, v in token_form(client_secret="secret-B", client_id=APP_B.client_id).items()
    )
    resp = await wns.post(
        "/accesstoken.srf",
        data=body.encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded; charset=UTF-8"},
    )
    assert resp.status == 200


@pytest.mark.parametrize(
    ("changes", "error", "phrase"),
    [
        ({"grant_type": "authorization_code"}, "unsupported_grant_type", "client_credentials"),
        ({"scope": "s.notify.live.net"}, "invalid_scope", "notify.windows.com"),
        ({"scope": "wrong"}, "invalid_scope", "notify.windows.com"),
        ({"client_id": "ms-app://S-1-15-2-9-9-9"}, "invalid_client", "unknown client_id"),
        ({"client_id": APP_A.sid}, "invalid_client", "ms-app://"),
        ({"client_secret": "nope"}, "invalid_client", "client_secret"),
        ({"grant_type": "<drop>"}, "invalid_request", "grant_type"),
        ({"client_id": "<drop>"}, "invalid_request", "client_id"),
        ({"client_secret": "<drop>"}, "invalid_request", "client_secret"),
        ({"scope": "<drop>"}, "invalid_request", "scope"),
        ({"client_secret": ""}, "invalid_request", "client_secret"),
    ],
)
async def test_every_wrong_field_is_a_400_oauth_error(
    wns: Any, changes: dict[str, str], error: str, phrase: str
) -> None:
    """Section 0: token endpoint errors are 400 with {"error", "error_description"}."""
    resp = await wns.post("/accesstoken.srf", data=token_form(**changes))
    assert resp.status == 400
    body = await resp.json()
    assert body["error"] == error
    assert phrase in body["error_description"]


async def test_wrong_content_type_is_invalid_request(wns: Any) -> None:
    resp = await wns.post("/accesstoken.srf", json=token_form())
    assert resp.status == 400
    body = await resp.json()
    assert body["error"] == "invalid_request"
    assert "application/x-www-form-urlencoded" in body["error_description"]


async def test_repeated_parameter_and_garbage_bodies(wns: Any) -> None:
    """RFC 6749 3.2: parameters MUST NOT be included more than once."""
    form = "&".join(f"{k}={v}" for k, v in token_form().items()) + "&scope=notify.windows.com"
    ct = {"Content-Type": "application/x-www-form-urlencoded"}
    resp = await wns.post("/accesstoken.srf", data=form.encode(), headers=ct)
    assert (await resp.json())["error"] == "invalid_request"
    for junk in (b"\xff\xfe\x00", b"=&=&&", b"a" * 5000):
        resp = await wns.post("/accesstoken.srf", data=junk, headers=ct)
        assert resp.status == 400
        assert (await resp.json())["error"] == "invalid_request"


async def test_other_methods_get_405(wns: Any) -> None:
    resp = await wns.get("/accesstoken.srf")
    assert resp.status == 405
    assert (await resp.json())["error"] == "invalid_request"


async def test_token_expires_after_24_hours_on_the_virtual_clock(
    wns: Any, service: WnsService, clock: VirtualClock
) -> None:
    """[QS] the cached access token expires after 24 hours: notify answers 401."""
    channel = service.request_channel("dev-1", APP_A.pfn, clock.now())
    token = await get_token(wns)
    clock.advance(DAY - MINUTE)
    ok = await wns.post(channel_path(channel.uri), data=b"x", headers=raw_headers(token))
    assert ok.status == 200
    clock.advance(MINUTE)
    late = await wns.post(channel_path(channel.uri), data=b"x", headers=raw_headers(token))
    assert late.status == 401
    assert late.headers["X-WNS-Error-Description"] == "Token expired."
    assert 'error="invalid_token"' in late.headers["WWW-Authenticate"]
    fresh = await get_token(wns)
    again = await wns.post(channel_path(channel.uri), data=b"x", headers=raw_headers(fresh))
    assert again.status == 200


async def test_token_ttl_is_configurable(aiohttp_client: Any, clock: VirtualClock) -> None:
    from emulator.wns.app import make_wns_app
    from tests.conftest import make_service

    client = await aiohttp_client(make_wns_app(make_service(clock, token_ttl_ms=60_000), clock))
    resp = await client.post("/accesstoken.srf", data=token_form())
    assert (await resp.json())["expires_in"] == 60


async def test_tokens_are_scoped_to_their_app(
    wns: Any, service: WnsService, clock: VirtualClock
) -> None:
    """[WNSHDR] 403: authenticated but not authorized for this URI (another app's channel)."""
    channel_b = service.request_channel("dev-b", APP_B.pfn, clock.now())
    token_a = await get_token(wns, APP_A)
    resp = await wns.post(channel_path(channel_b.uri), data=b"x", headers=raw_headers(token_a))
    assert resp.status == 403
    assert "another app" in resp.headers["X-WNS-Error-Description"]
    token_b = await get_token(wns, APP_B)
    resp = await wns.post(channel_path(channel_b.uri), data=b"x", headers=raw_headers(token_b))
    assert resp.status == 200


async def test_secrets_never_reach_the_records(wns: Any, service: WnsService) -> None:
    """Principle 9: client_secret and tokens never appear in records or reports."""
    token = await get_token(wns)
    await wns.post("/?token=nope", data=b"x", headers=raw_headers(token))
    dump = repr([r.as_json() for r in service.records])
    assert APP_A.secret not in dump
    assert token not in dump
    assert "client_secret=<redacted sha256:" in service.records[0].as_json()["body"]


def test_a_token_from_one_shard_is_good_on_every_shard_of_the_run() -> None:
    """Each shard of a run serves its own fake WNS; a server that took its token from one
    shard's token endpoint pushes to every shard's ChannelURIs with it (issue 19). A token
    carries a MAC keyed by the run: another run's WNS, or a token altered by one byte, is
    refused; expiry [QS] and revocation hold on every shard (revoking an app's tokens at an
    instant revokes those issued before it, wherever they were issued)."""
    import base64
    import random
    from urllib.parse import urlencode

    from emulator.wns.tokens import FORM_TYPE, TokenService

    def service(seed: int, key: bytes) -> TokenService:
        return TokenService([APP_A, APP_B], random.Random(seed), key=key)

    first, second, other_run = service(1, b"run"), service(2, b"run"), service(1, b"other")
    form = urlencode(token_form(APP_B)).encode()
    token = first.issue(FORM_TYPE, form, now=1_000)
    assert len(base64.b64decode(token.value)) == 72  # the length of real ones
    seen = second.resolve(token.value, 2_000)
    assert seen is not None
    assert (seen.sid, seen.issued_ms, seen.expires_ms) == (APP_B.sid, 1_000, token.expires_ms)
    assert other_run.known(token.value) is None
    raw = bytearray(base64.b64decode(token.value))
    raw[3] ^= 1
    assert second.known(base64.b64encode(raw).decode()) is None
    assert second.known("not a token") is None
    assert second.resolve(token.value, token.expires_ms) is None  # expired, still known
    second.revoke(APP_B.sid, now=1_500)
    later = first.issue(FORM_TYPE, form, now=1_500)
    third = service(3, b"run")
    third.revoke(APP_B.sid, now=1_500)
    for shard in (second, third):
        revoked = shard.known(token.value)
        assert revoked is not None
        assert revoked.revoked  # issued before the revocation: refused everywhere
        assert shard.resolve(later.value, 2_000) is not None
