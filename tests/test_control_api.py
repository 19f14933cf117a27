"""The /_emulator API: the same routes the CLI, CI and the tests use to inspect and steer."""

from __future__ import annotations

from typing import Any

from emulator.clock import DAY, DEFAULT_EPOCH_MS, VirtualClock
from emulator.wns.service import WnsService
from tests.conftest import APP_A, APP_B, channel_path, get_token, raw_headers


async def test_clock_read_and_advance(wns: Any, clock: VirtualClock) -> None:
    """GET /_emulator/clock and POST /_emulator/clock/advance with seconds (or days)."""
    body = await (await wns.get("/_emulator/clock")).json()
    assert body["now"] == "2026-01-01T00:00:00.000Z"
    assert body["mode"] == "virtual"
    resp = await wns.post("/_emulator/clock/advance", json={"seconds": 3600})
    assert (await resp.json())["now_ms"] == DEFAULT_EPOCH_MS + 3_600_000
    resp = await wns.post("/_emulator/clock/advance", json={"days": 30})
    assert clock.now() == DEFAULT_EPOCH_MS + 3_600_000 + 30 * DAY
    assert resp.status == 200


async def test_clock_advance_rejects_bad_bodies(wns: Any) -> None:
    for body, phrase in [
        (b"{nope", "not valid JSON"),
        (b'{"seconds": -1}', "seconds"),
        (b'{"weeks": 1}', "weeks"),
        (b'{"days": 99999}', "3650"),
        (b'{"seconds": 1e308}', "seconds"),
    ]:
        resp = await wns.post("/_emulator/clock/advance", data=body)
        assert resp.status == 400
        err = await resp.json()
        assert phrase in err["error"] + " ".join(err["details"])


async def test_channel_lifecycle_over_the_api(wns: Any, clock: VirtualClock) -> None:
    """Issue, inspect, renew, revoke channels; the ChannelURI and its expiry come back."""
    resp = await wns.post("/_emulator/wns/channels", json={"pfn": APP_A.pfn, "device_id": "d1"})
    assert resp.status == 201
    ch = await resp.json()
    assert ch["state"] == "active"
    assert ch["expires_at"] == "2026-01-31T00:00:00.000Z"
    assert ch["channel_uri"].startswith("http://wns.test/?token=")

    listed = await (await wns.get("/_emulator/wns/channels", params={"device_id": "d1"})).json()
    assert [c["id"] for c in listed["channels"]] == [ch["id"]]
    renewed = await (await wns.post(f"/_emulator/wns/channels/{ch['id']}/renew")).json()
    assert renewed["channel_uri"] != ch["channel_uri"]
    old = await (await wns.get(f"/_emulator/wns/channels/{ch['id']}")).json()
    assert old["state"] == "superseded"
    assert old["superseded_by"] == renewed["id"]
    revoked = await (await wns.post(f"/_emulator/wns/channels/{renewed['id']}/revoke")).json()
    assert revoked["state"] == "revoked"
    clock.advance(31 * DAY)
    old = await (await wns.get(f"/_emulator/wns/channels/{ch['id']}")).json()
    assert old["state"] == "expired"
    assert (await wns.get("/_emulator/wns/channels/ch-999999")).status == 404


async def test_channel_creation_errors(wns: Any) -> None:
    resp = await wns.post("/_emulator/wns/channels", json={"pfn": "No.Such_0000000000000"})
    assert resp.status == 422
    assert (await resp.json())["details"] == ["unknown_pfn"]
    resp = await wns.post("/_emulator/wns/channels", json={})
    assert resp.status == 400
    assert "pfn" in " ".join((await resp.json())["details"])


async def test_connection_control_and_pushes_view(wns: Any) -> None:
    """Drop a device's connection, push with cache, restore it: the cached push is delivered."""
    ch = await (
        await wns.post("/_emulator/wns/channels", json={"pfn": APP_A.pfn, "connected": False})
    ).json()
    token = await get_token(wns)
    headers = raw_headers(token, **{"X-WNS-Cache-Policy": "cache"})
    resp = await wns.post(channel_path(ch["channel_uri"]), data=b"tap", headers=headers)
    assert resp.headers["X-WNS-Status"] == "received"
    pushes = await (await wns.get(f"/_emulator/wns/channels/{ch['id']}/pushes")).json()
    assert [p["payload"] for p in pushes["cached"]] == ["tap"]
    resp = await wns.put(
        f"/_emulator/wns/devices/{ch['device_id']}/connection", json={"status": "connected"}
    )
    assert (await resp.json())["delivered_from_cache"] == 1
    pushes = await (await wns.get(f"/_emulator/wns/channels/{ch['id']}/pushes")).json()
    assert pushes["cached"] == []
    assert pushes["delivered"][0]["via"] == "cache"
    bad = await wns.put(
        f"/_emulator/wns/devices/{ch['device_id']}/connection", json={"status": "x"}
    )
    assert bad.status == 400
    assert (
        await wns.put("/_emulator/wns/devices/nobody/connection", json={"status": "connected"})
    ).status == 404


async def test_requests_are_recorded_redacted_and_clearable(wns: Any) -> None:
    token = await get_token(wns)
    await wns.post("/?token=unknown", data=b"x", headers=raw_headers(token))
    rows = (await (await wns.get("/_emulator/wns/requests")).json())["requests"]
    assert [(r["kind"], r["status"]) for r in rows] == [("token", 200), ("notify", 404)]
    assert rows[1]["headers"]["Authorization"].startswith("Bearer <redacted sha256:")
    assert rows[1]["response_headers"]["X-WNS-Error-Description"]
    only = await (await wns.get("/_emulator/wns/requests", params={"kind": "notify"})).json()
    assert len(only["requests"]) == 1
    assert (await (await wns.delete("/_emulator/wns/requests")).json()) == {"cleared": 2}
    assert (await wns.get("/_emulator/wns/requests", params={"limit": "x"})).status == 400


async def test_faults_over_the_api(wns: Any) -> None:
    """Inject: status for the next N requests, with Retry-After; list and clear them."""
    ch = await (await wns.post("/_emulator/wns/channels", json={"pfn": APP_A.pfn})).json()
    token = await get_token(wns)
    fault = await (
        await wns.post(
            "/_emulator/wns/faults",
            json={"status": 503, "count": 1, "channel_id": ch["id"], "retry_after_s": 30},
        )
    ).json()
    assert fault["remaining"] == 1
    resp = await wns.post(channel_path(ch["channel_uri"]), data=b"x", headers=raw_headers(token))
    assert resp.status == 503
    assert resp.headers["Retry-After"] == "30"
    assert "unavailable" in resp.headers["X-WNS-Error-Description"]
    resp = await wns.post(channel_path(ch["channel_uri"]), data=b"x", headers=raw_headers(token))
    assert resp.status == 200
    await wns.post("/_emulator/wns/faults", json={"target": "token", "status": 500})
    resp = await wns.post("/accesstoken.srf", data={"grant_type": "client_credentials"})
    assert resp.status == 500
    assert (await resp.json())["error"] == "temporarily_unavailable"
    listed = (await (await wns.get("/_emulator/wns/faults")).json())["faults"]
    assert len(listed) == 1
    assert await (await wns.delete(f"/_emulator/wns/faults/{listed[0]['id']}")).json()
    assert (await wns.delete("/_emulator/wns/faults/f-9999")).status == 404
    for bad in ({}, {"status": 200}, {"status": 500, "channel_id": "ch-404404"}):
        assert (await wns.post("/_emulator/wns/faults", json=bad)).status in (400, 404)


async def test_latency_fault_waits_on_the_virtual_clock(wns: Any, clock: VirtualClock) -> None:
    """Added latency passes on the emulated clock, and an in-world sender awaiting the
    response (it holds the clock busy) does not deadlock the jump."""
    import asyncio

    from emulator.control.keys import held_header

    ch = await (await wns.post("/_emulator/wns/channels", json={"pfn": APP_A.pfn})).json()
    token = await get_token(wns)
    await wns.post("/_emulator/wns/faults", json={"latency_ms": 5000, "count": 1})
    start = clock.now()

    async def in_world_sender() -> Any:
        headers = {**raw_headers(token), **held_header(clock)}
        return await wns.post(channel_path(ch["channel_uri"]), data=b"x", headers=headers)

    pending = clock.spawn(in_world_sender())
    await asyncio.wait_for(clock.run_async(until=start + 10_000), timeout=5)
    resp = await asyncio.wait_for(pending, timeout=5)
    assert resp.status == 200
    assert resp.headers["Date"] == "Thu, 01 Jan 2026 00:00:05 GMT"
    assert clock.busy_units == 0


async def test_block_pfn_revoke_tokens_and_reset(wns: Any, service: WnsService) -> None:
    resp = await wns.post(f"/_emulator/wns/pfns/{APP_B.pfn}/block")
    assert (await resp.json())["blocked"] is True
    apps = (await (await wns.get("/_emulator/wns/apps")).json())["apps"]
    assert {a["pfn"]: a["blocked"] for a in apps} == {APP_A.pfn: False, APP_B.pfn: True}
    assert "secret" not in repr(apps)
    await wns.delete(f"/_emulator/wns/pfns/{APP_B.pfn}/block")
    assert APP_B.pfn not in service.registry.blocked
    await get_token(wns)
    assert (await (await wns.post("/_emulator/wns/tokens/revoke", json={})).json()) == {
        "revoked": 1
    }
    assert (await wns.post("/_emulator/wns/tokens/revoke", json={"sid": "S-1"})).status == 404
    await wns.post("/_emulator/wns/channels", json={"pfn": APP_A.pfn})
    assert (await (await wns.post("/_emulator/reset")).json()) == {"reset": True}
    assert service.registry.by_id == {}
    assert list(service.records) == []


async def test_reset_keeps_where_channel_uris_point(wns: Any, service: WnsService) -> None:
    """After POST /_emulator/reset new ChannelURIs keep the served port (or --public-url):
    they used to lose it (http://127.0.0.1/?token=...), so senders posted to port 80."""
    service.set_base_url("https://db5.notify.windows.com:8443")
    await wns.post("/_emulator/reset")
    resp = await wns.post("/_emulator/wns/channels", json={"pfn": APP_A.pfn})
    uri = (await resp.json())["channel_uri"]
    assert uri.startswith("https://db5.notify.windows.com:8443/?token=")


async def test_the_control_api_has_an_index(wns: Any) -> None:
    """GET /_emulator/ lists the control routes (it was a plain-text 404); an unknown route
    under the prefix is a JSON 404 that lists them too."""
    for path in ("/_emulator/", "/_emulator"):
        resp = await wns.get(path)
        assert resp.status == 200
        routes = {(r["method"], r["path"]) for r in (await resp.json())["routes"]}
        assert ("GET", "/_emulator/clock") in routes
        assert ("POST", "/_emulator/wns/faults") in routes
        assert ("POST", "/_emulator/reset") in routes
    missing = await wns.get("/_emulator/nothing")
    assert missing.status == 404
    body = await missing.json()
    assert body["error"] == "no control route GET /_emulator/nothing"
    assert "GET /_emulator/clock" in body["details"]
    wrong_method = await wns.delete("/_emulator/clock")
    assert wrong_method.status == 405
    assert "GET" in wrong_method.headers["Allow"]
