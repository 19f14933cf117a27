"""The reference server's conduct, rule by rule against conformance.md rows A-E, over loopback
HTTP with the fake WNS and real devices on one virtual clock. These are the baseline the
conformance suite grades other servers against."""

from __future__ import annotations

import itertools
from urllib.parse import parse_qs

from aiohttp import web

from emulator.clock import DAY, HOUR, MINUTE, SECOND, VirtualClock
from emulator.device.profiles import PROFILES
from emulator.syncml import Add, Get, Replace
from emulator.wns.models import RAW_LIMIT_BYTES, RequestRecord
from tests.conftest import APP_A
from tests.mdm_world import RefWorld, ref_world


async def _enrolled(w: RefWorld, *device_ids: str, **group: object) -> None:
    for device_id in device_ids:
        w.enroll(device_id, **group)
    await w.run_for(10 * MINUTE)


def _header(record: RequestRecord, name: str) -> str | None:
    values = [v for k, v in record.headers if k.lower() == name.lower()]
    return values[0] if values else None


def _channel_id(w: RefWorld, device_id: str) -> str:
    return w.wns.service.registry.channels_of(device_id)[-1].id


def _pfn_writes(w: RefWorld, device_id: str) -> list[tuple[int, str]]:
    return [
        (t, type(cmd).__name__)
        for t, cmd in w.server_commands(device_id)
        if isinstance(cmd, Add | Replace) and any(i.target.endswith("/Push/PFN") for i in cmd.items)
    ]


# -- A. WNS authentication --------------------------------------------------------------------
async def test_a1_a2_token_request_form_and_reuse(clock: VirtualClock) -> None:
    """A1: the token request is a form POST to /accesstoken.srf with client_credentials,
    ms-app://SID, the secret and scope notify.windows.com [WNSOV][WNSHDR]. A2: one token
    serves many pushes within its life."""
    async with ref_world(clock) as w:
        await _enrolled(w, "dev-1", "dev-2")
        for _ in range(3):
            for device_id in ("dev-1", "dev-2"):
                assert (await w.push(device_id))["action"] == "delivered"
        tokens = w.tokens()
        assert len(tokens) == 1
        token = tokens[0]
        assert (token.method, token.target, token.status) == ("POST", "/accesstoken.srf", 200)
        assert _header(token, "Content-Type") == "application/x-www-form-urlencoded"
        form = {k: v[0] for k, v in parse_qs(token.body.decode()).items()}
        assert form == {
            "grant_type": "client_credentials",
            "client_id": f"ms-app://{APP_A.sid}",
            "client_secret": APP_A.secret,
            "scope": "notify.windows.com",
        }


async def test_a3_token_refreshed_once_after_401(clock: VirtualClock) -> None:
    """A3: after a 401 the server gets one new token and resends once; a WNS that keeps
    answering 401 gets exactly two pushes and one refresh, never a loop [WNSOV]."""
    async with ref_world(clock) as w:
        await _enrolled(w, "dev-1")
        await w.push("dev-1")
        w.wns.service.tokens.revoke(APP_A.sid)
        result = await w.push("dev-1")
        assert result["action"] == "delivered"
        assert [r.status for r in w.notifies()][-2:] == [401, 200]
        assert len(w.tokens()) == 2

        await w.run_for(DAY)  # the token's 24 h run out: refreshed ahead, no 401 at all
        before = len(w.notifies())
        assert (await w.push("dev-1"))["action"] == "delivered"
        assert [r.status for r in w.notifies()[before:]] == [200]

        w.wns.service.faults.add(status=401)  # every notify answered 401
        before, tokens = len(w.notifies()), len(w.tokens())
        result = await w.push("dev-1")
        assert result["http_status"] == 401
        assert len(w.notifies()) - before == 2
        assert len(w.tokens()) - tokens == 1


# -- B. The raw push request ------------------------------------------------------------------
async def test_b1_to_b4_raw_push_request(clock: VirtualClock) -> None:
    """B1: POST to the ChannelURI exactly as reported (opaque, %-escapes kept). B2: wns/raw,
    application/octet-stream, Bearer token, Content-Length equal to the body [RAW][WNSHDR].
    B3: a body of 1..5000 bytes. B4: X-WNS-Cache-Policy: cache [PUSH]."""
    async with ref_world(clock) as w:
        await _enrolled(w, "dev-1")
        uri = w.server.store.devices["dev-1"].channel_uri
        assert uri is not None
        assert "%2" in uri.lower()
        await w.push("dev-1")
        (record,) = w.notifies()
        assert record.target == uri[len(w.wns.url) :]
        assert _header(record, "X-WNS-Type") == "wns/raw"
        assert _header(record, "Content-Type") == "application/octet-stream"
        assert (_header(record, "Authorization") or "").startswith("Bearer ")
        assert _header(record, "Content-Length") == str(len(record.body))
        assert 0 < len(record.body) <= RAW_LIMIT_BYTES
        assert _header(record, "X-WNS-Cache-Policy") == "cache"


async def test_b5_never_pushes_outside_the_trusted_host(
    clock: VirtualClock, aiohttp_server: object
) -> None:
    """B5: a ChannelURI outside the trusted WNS host is never contacted [WNSOV]."""
    hits: list[str] = []

    async def trap(request: web.Request) -> web.Response:
        hits.append(request.path_qs)
        return web.Response()

    app = web.Application()
    app.router.add_route("*", "/", trap)
    trap_server = await aiohttp_server(app)  # type: ignore[operator]
    async with ref_world(clock) as w:
        device = w.enroll("dev-1")
        await w.run_for(10 * MINUTE)
        device.channel_uri = str(trap_server.make_url("/?token=trap"))  # reported next session
        await w.run_for(DAY)
        assert w.server.store.devices["dev-1"].channel_uri == device.channel_uri
        result = await w.push("dev-1")
        assert result["action"] == "refused"
        assert hits == []


# -- C. Channel lifecycle ---------------------------------------------------------------------
async def test_c1_c3_pfn_at_enrollment_and_channel_query_every_session(
    clock: VirtualClock,
) -> None:
    """C1: PFN set in the enrollment session before any push [PUSH][DMC]. C3: every session
    Gets Push/ChannelURI [PUSH][KI]."""
    async with ref_world(clock) as w:
        await _enrolled(w, "dev-1")
        writes = _pfn_writes(w, "dev-1")
        assert writes[0][1] == "Add"
        await w.push("dev-1")
        await w.run_for(3 * DAY)
        first_replies: dict[str, list[object]] = {}
        for ex in w.transport.exchanges:
            if ex.sent.header.msg_id == "1" and ex.reply is not None:
                first_replies[ex.session_id] = list(ex.reply.commands)
        assert len(first_replies) >= 10
        for commands in first_replies.values():
            assert any(
                isinstance(c, Get) and any(i.target.endswith("/Push/ChannelURI") for i in c.items)
                for c in commands
            )
        assert writes[0][0] <= w.notifies()[0].t_ms


async def test_c2_replace_after_418_never_add_again(clock: VirtualClock) -> None:
    """C2: a server that lost its record Adds the PFN, gets 418 and then uses Replace; it never
    repeats the Add [OMADM] protocol.md 4."""
    async with ref_world(clock) as w:
        await _enrolled(w, "dev-1")
        await w.restart_mdm()  # in-memory database: the server forgot the device
        await w.run_for(2 * DAY)
        writes = [kind for _, kind in _pfn_writes(w, "dev-1")]
        assert writes[:3] == ["Add", "Add", "Replace"]
        assert writes[2:] == ["Replace"] * (len(writes) - 2)
        assert w.server.store.devices["dev-1"].pfn_state == "set"
        assert (await w.push("dev-1"))["action"] == "delivered"


async def test_c4_pushes_only_to_the_newest_channel(clock: VirtualClock) -> None:
    """C4: once the renewal session reported a new ChannelURI, the superseded one is never
    pushed again [PUSH]."""
    async with ref_world(clock) as w:
        await _enrolled(w, "dev-1")
        old = w.server.store.devices["dev-1"].channel_uri
        await w.run_for(16 * DAY)
        new = w.server.store.devices["dev-1"].channel_uri
        assert new != old
        for _ in range(3):
            await w.push("dev-1")
        assert {r.target for r in w.notifies()} == {new[len(w.wns.url) :]}  # type: ignore[index]


async def test_c5_c6_gone_410_stops_and_pfn_is_set_again(clock: VirtualClock) -> None:
    """C5: after a 410 nothing more goes to that ChannelURI [WNSOV]. C6: the next session sets
    the PFN again [PUSH], and push works on the new channel."""
    async with ref_world(clock) as w:
        await _enrolled(w, "dev-1", renewal_failure="silent", renewal_failure_rate=1.0)
        await w.run_for(31 * DAY)
        gone = await w.push("dev-1")
        assert gone["http_status"] == 410
        for _ in range(3):
            assert (await w.push("dev-1"))["action"] == "no_channel"
        assert [r.status for r in w.notifies()] == [410]
        await w.run_for(DAY + HOUR)
        after = [t for t, kind in _pfn_writes(w, "dev-1") if t > gone_at(w)]
        assert len(after) == 1
        assert (await w.push("dev-1"))["action"] == "delivered"


def gone_at(w: RefWorld) -> int:
    return next(r.t_ms for r in w.notifies() if r.status == 410)


async def test_c7_proactive_reset_on_builds_that_may_not_renew(clock: VirtualClock) -> None:
    """C7: on a 1511 device whose renewal silently fails, the server sets the PFN again before
    the channel's 30 days run out [PUSH][KB3170699], so the device never expires; a 1607+
    device is left alone."""
    async with ref_world(clock) as w:
        await _enrolled(
            w,
            "dev-1511",
            profile=PROFILES["win10-1511"],
            renewal_failure="silent",
            renewal_failure_rate=1.0,
        )
        await _enrolled(w, "dev-22h2")
        start = clock.now()
        await w.run_for(35 * DAY)
        resets = [t - start for t, kind in _pfn_writes(w, "dev-1511") if kind == "Replace"]
        assert resets
        assert 20 * DAY <= resets[0] < 30 * DAY
        assert w.events("device.channel_expired", "dev-1511") == []
        assert [k for _, k in _pfn_writes(w, "dev-22h2")] == ["Add"]


async def test_c8_not_found_404_stops(clock: VirtualClock) -> None:
    """C8: after a 404 (unknown channel) nothing more goes to that ChannelURI [WNSHDR]."""
    async with ref_world(clock) as w:
        device = w.enroll("dev-1")
        await w.run_for(10 * MINUTE)
        device.channel_uri = f"{w.wns.url}/?token=unknown-channel"
        await w.run_for(DAY)
        assert (await w.push("dev-1"))["http_status"] == 404
        assert (await w.push("dev-1"))["action"] == "no_channel"
        assert [r.status for r in w.notifies()] == [404]


# -- D. Rates and errors ----------------------------------------------------------------------
async def test_d1_throttled_406_waits_for_retry_after(clock: VirtualClock) -> None:
    """D1: after 406 with Retry-After nothing goes to that channel before it elapses
    [WNSHDR]; the server resends once it has, by itself."""
    async with ref_world(clock) as w:
        await _enrolled(w, "dev-1")
        w.wns.service.faults.add(
            status=406, count=1, channel_id=_channel_id(w, "dev-1"), retry_after_s=600
        )
        first = await w.push("dev-1")
        assert (first["http_status"], first["action"]) == (406, "retry")
        assert (await w.push("dev-1"))["action"] == "deferred"
        await w.run_for(20 * MINUTE)
        times = [r.t_ms for r in w.notifies()]
        assert len(times) == 2
        assert times[1] - times[0] >= 600 * SECOND
        assert w.notifies()[-1].status == 200


async def test_d2_unavailable_503_backs_off(clock: VirtualClock) -> None:
    """D2: 500/503 are retried with back-off (growing waits) [WNSHDR], and Retry-After is
    honoured when present."""
    async with ref_world(clock) as w:
        await _enrolled(w, "dev-1")
        w.wns.service.faults.add(status=503, count=3)
        await w.push("dev-1")
        await w.run_for(HOUR)
        statuses = [r.status for r in w.notifies()]
        assert statuses == [503, 503, 503, 200]
        times = [r.t_ms for r in w.notifies()]
        gaps = [b - a for a, b in itertools.pairwise(times)]
        assert gaps[0] >= 30 * SECOND
        assert gaps[1] > gaps[0]
        assert gaps[2] > gaps[1]

        w.wns.service.faults.add(status=503, count=1, retry_after_s=900)
        before = len(w.notifies())
        await w.push("dev-1")
        await w.run_for(HOUR)
        times = [r.t_ms for r in w.notifies()[before:]]
        assert times[1] - times[0] >= 900 * SECOND


async def test_d3_no_blind_retry_of_403(clock: VirtualClock) -> None:
    """D3: a push answered 400/403/413 is not resent unchanged [WNSHDR]."""
    async with ref_world(clock) as w:
        await _enrolled(w, "dev-1")
        w.wns.service.faults.add(status=403, sid=APP_A.sid)
        result = await w.push("dev-1")
        await w.run_for(DAY)
        assert (result["http_status"], result["action"]) == (403, "fix")
        assert [r.status for r in w.notifies()] == [403]


async def test_d4_push_rate_per_device(clock: VirtualClock) -> None:
    """D4: at most 12 pushes per device per hour reach WNS, however many are asked for
    [PUSH] "improper use can get a PFN blocked"."""
    async with ref_world(clock) as w:
        await _enrolled(w, "dev-1")
        actions = [(await w.push("dev-1"))["action"] for _ in range(20)]
        assert actions.count("rate_limited") == 8
        assert len(w.notifies("dev-1")) == 12
        await w.run_for(HOUR)
        assert (await w.push("dev-1"))["action"] == "delivered"


# -- E. Sessions and polling ------------------------------------------------------------------
async def test_e1_e2_e4_polling_kept_valid_syncml_sessions_end(clock: VirtualClock) -> None:
    """E1: the poll schedule keeps an infinite set [PUSH][MDE2]. E2: every server message is
    valid SyncML DM (no device-side fault) [MSMDM]. E4: every session ends with a Status-only
    message within a few round trips [MSMDM 2.2.6.1]."""
    async with ref_world(clock) as w:
        await _enrolled(w, "dev-a", "dev-b")
        await _enrolled(w, "dev-c", profile=PROFILES["wp81"])
        await w.push("dev-a")
        await w.run_for(20 * DAY)
        for device_id in ("dev-a", "dev-b", "dev-c"):
            (plan,) = w.events("device.poll_schedule", device_id)
            assert plan["plan"].endswith("1440 min x inf")
            ends = w.events("session.end", device_id)
            assert len(ends) >= 20
            assert {e["outcome"] for e in ends} == {"ended"}
            assert max(e["messages"] for e in ends) <= 3
        assert w.events("session.server_fault") == []


async def test_e3_queued_command_rides_the_push_session(clock: VirtualClock) -> None:
    """E3: a command queued on the server is delivered in the session its push triggered
    [PUSH] seed 003; a command for an offline device waits for its next session."""
    async with ref_world(clock) as w:
        await _enrolled(w, "dev-1")
        status, body = await w.admin(
            "POST",
            "/admin/devices/dev-1/commands",
            {
                "verb": "Replace",
                "loc_uri": "./Vendor/MSFT/DMClient/Provider/dmemu/Poll/PollOnLogin",
                "data": "true",
                "format": "bool",
            },
        )
        assert status == 201
        await w.run_for(MINUTE)
        start = w.events("session.start", "dev-1")[-1]
        assert (start["trigger"], start["msg_id"]) == ("push", body["push"]["msg_id"])
        _, command = await w.admin("GET", f"/admin/devices/dev-1/commands/{body['command']['id']}")
        assert (command["state"], command["status"]) == ("done", "200")
        assert command["session_id"] == start["session_id"]
