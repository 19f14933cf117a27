"""Bad input to the reference server's endpoints gets a clear 4xx and a log line, and the
server keeps serving (issue 4); the shipped hooks file drives it (conformance.md hooks)."""

from __future__ import annotations

import io
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from structlog.testing import capture_logs

from emulator.clock import MINUTE, VirtualClock
from emulator.hooks import REFERENCE_HOOKS, HookClient, HookMissing, HooksFile, load_hooks
from emulator.mdm.app import OMADM_PATH
from emulator.syncml import (
    CONTENT_TYPE,
    MAX_MESSAGE_BYTES,
    Alert,
    Item,
    Message,
    Replace,
    SyncHdr,
    parse,
    serialize,
)
from emulator.yamlconf import ConfigError
from tests.mdm_world import ref_world

AiohttpClient = Callable[..., Awaitable[TestClient[Any, Any]]]
XML = {"Content-Type": CONTENT_TYPE}


def package1(device_id: str = "dev-1", msg_id: str = "1", session_id: str = "7") -> bytes:
    return serialize(
        Message(
            SyncHdr(session_id, msg_id, "https://mdm.test" + OMADM_PATH, device_id),
            (
                Alert("1", "1201"),
                Replace("2", (Item(source="./DevInfo/DevId", data=device_id),)),
            ),
        )
    )


async def test_malformed_syncml_is_a_400_with_the_reason_and_a_log_line(
    make_client: Callable[..., Awaitable[TestClient[Any, Any]]],
) -> None:
    """Malformed SyncML (bad nesting, an entity bomb) gets 400 naming the problem, logged
    with the offending bytes; the next well-formed session is served [MSMDM 2.2]."""
    client = await make_client()
    bomb = (
        b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaaaaaaaa">'
        b'<!ENTITY b "&a;&a;&a;&a;&a;&a;">]><SyncML xmlns="SYNCML:SYNCML1.2">&b;</SyncML>'
    )
    with capture_logs() as logs:
        bad = await client.post(OMADM_PATH, data=b"<SyncML><SyncHdr></SyncML>", headers=XML)
        assert bad.status == 400
        assert (await bad.text()).startswith("malformed SyncML")
        evil = await client.post(OMADM_PATH, data=bomb, headers=XML)
        assert evil.status == 400
    refused = [e for e in logs if e["event"] == "mdm.request_refused"]
    assert [e["status"] for e in refused] == [400, 400]
    assert refused[0]["excerpt"] == "<SyncML><SyncHdr></SyncML>"
    good = await client.post(OMADM_PATH, data=package1(), headers=XML)
    assert good.status == 200
    reply = parse(await good.read())
    assert reply.commands[0].cmd == "SyncHdr"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("headers", "body", "status", "reason"),
    [
        ({"Content-Type": "text/xml"}, package1(), 415, "Content-Type must be"),
        ({"Content-Type": "application/vnd.syncml.dm+wbxml"}, package1(), 415, "Content-Type"),
        (XML, b"<" * (MAX_MESSAGE_BYTES + 1), 413, "message over"),
        (XML, package1(msg_id="2"), 400, "is not open here"),
    ],
)
async def test_requests_the_endpoint_refuses(
    make_client: Callable[..., Awaitable[TestClient[Any, Any]]],
    headers: dict[str, str],
    body: bytes,
    status: int,
    reason: str,
) -> None:
    """Only the XML encoding is served (415 otherwise), within the SyncML size limit (413),
    and a later message needs its session's MsgID 1 (400) [MSMDM 2.1, 2.2.3.6]."""
    client = await make_client()
    resp = await client.post(OMADM_PATH, data=io.BytesIO(body), headers=headers)
    assert resp.status == status
    assert reason in await resp.text()
    assert (await client.get(OMADM_PATH)).status == 405


async def test_device_list_and_device_token_gate_enrollment(
    make_client: Callable[..., Awaitable[TestClient[Any, Any]]],
) -> None:
    """With a device list, an unknown device gets 403; with a device token, a device without
    it gets 401 and a WWW-Authenticate challenge (issue 4)."""
    client = await make_client(allowed_devices=frozenset({"dev-ok"}), device_token="t0k")
    auth = {**XML, "Authorization": "Bearer t0k"}
    listed = await client.post(OMADM_PATH, data=package1("dev-ok"), headers=auth)
    assert listed.status == 200
    stranger = await client.post(OMADM_PATH, data=package1("dev-x"), headers=auth)
    assert stranger.status == 403
    assert "dev-x" in await stranger.text()
    no_token = await client.post(OMADM_PATH, data=package1("dev-ok", session_id="8"), headers=XML)
    assert no_token.status == 401
    assert no_token.headers["WWW-Authenticate"].startswith("Bearer")


async def test_bad_admin_requests_get_clear_errors(
    make_client: Callable[..., Awaitable[TestClient[Any, Any]]],
) -> None:
    """Bad admin JSON, unknown fields or verbs, unknown devices and commands: 400/404 with a
    JSON error naming the field; the server keeps serving."""
    client = await make_client()
    assert (await client.post(OMADM_PATH, data=package1(), headers=XML)).status == 200
    url = "/admin/devices/dev-1/commands"
    cases = [
        (b"{not json", 400, "not valid JSON"),
        (b'{"verb": "Wipe", "loc_uri": "./Vendor/MSFT/RemoteWipe/doWipe"}', 400, "verb"),
        (b'{"verb": "Exec", "loc_uri": "/no-dot"}', 400, "loc_uri"),
        (b'{"verb": "Get", "loc_uri": "./DevInfo/Mod", "extra": 1}', 400, "extra"),
    ]
    for body, status, needle in cases:
        resp = await client.post(url, data=body)
        assert resp.status == status
        text = await resp.text()
        assert needle in text, text
    assert (await client.post("/admin/devices/nobody/push")).status == 404
    assert (await client.get("/admin/devices/dev-1/commands/x")).status == 404
    assert (await client.get("/admin/devices/dev-1/commands/99")).status == 404
    ok = await client.post(url, json={"verb": "Get", "loc_uri": "./DevInfo/Mod", "push": False})
    assert ok.status == 201


async def test_reference_hooks_file_drives_the_server(clock: VirtualClock) -> None:
    """The shipped hooks file queues a command and pushes the device through the admin API;
    the command comes back done from the push-triggered session (conformance.md hooks)."""
    hooks = load_hooks(REFERENCE_HOOKS)
    async with ref_world(clock) as w:
        w.enroll("dev-1")
        await w.run_for(10 * MINUTE)
        client = HookClient(hooks, w.mdm.url, w.http)
        queued = await client.call(
            "queue_command", device_id="dev-1", verb="Get", loc_uri="./DevDetail/SwV"
        )
        assert queued.ok, queued
        pushed = await client.call("push", device_id="dev-1")
        assert pushed.ok, pushed
        await w.run_for(MINUTE)
        command_id = queued.json()["command"]["id"]  # type: ignore[index]
        _, command = await w.admin("GET", f"/admin/devices/dev-1/commands/{command_id}")
        assert (command["state"], command["result"]) == ("done", "10.0.19045.2006")
        partial = HookClient(HooksFile(push=hooks.push), w.mdm.url, w.http)
        with pytest.raises(HookMissing):
            await partial.call("queue_command", device_id="dev-1", verb="Get", loc_uri="./x")


def test_hooks_file_errors_name_line_and_field(tmp_path: Path) -> None:
    """A hooks file with an unknown placeholder is refused with file:line: field."""
    path = tmp_path / "hooks.yaml"
    path.write_text("push:\n  method: POST\n  url: '{base}/push/{device}'\n")
    with pytest.raises(ConfigError) as err:
        load_hooks(path)
    assert (err.value.line, err.value.field) == (3, "push.url")
    assert "unknown placeholder {device}" in err.value.message


async def test_message_without_a_device_id_is_refused(
    make_client: Callable[..., Awaitable[TestClient[Any, Any]]],
) -> None:
    """A message whose SyncHdr Source (the device id) is empty gets 400, not a device ""."""
    client = await make_client()
    resp = await client.post(OMADM_PATH, data=package1(""), headers=XML)
    assert resp.status == 400
    assert "device id" in await resp.text()
    assert (await client.get("/admin/devices")).status == 200


async def test_admin_token_guards_the_admin_api(
    make_client: Callable[..., Awaitable[TestClient[Any, Any]]],
) -> None:
    """With --admin-token, the admin API answers 401 without ``Bearer <token>``; OMA-DM is
    not affected (devices use --device-token)."""
    client = await make_client(admin_token="adm1n")
    assert (await client.post(OMADM_PATH, data=package1(), headers=XML)).status == 200
    refused = await client.get("/admin/devices")
    assert refused.status == 401
    assert refused.headers["WWW-Authenticate"].startswith("Bearer")
    ok = await client.get("/admin/devices", headers={"Authorization": "Bearer adm1n"})
    assert ok.status == 200


async def test_admin_token_errors_say_what_is_wrong(
    make_client: Callable[..., Awaitable[TestClient[Any, Any]]],
) -> None:
    """A wrong admin token is not "Bearer token required": each mistake gets its own words
    (and RFC 6750's invalid_token); the scheme is case-insensitive (RFC 7235)."""
    client = await make_client(admin_token="adm1n")
    cases = {
        "": "an Authorization: Bearer <token> header is required",
        "Basic YTpi": "the Authorization scheme is 'Basic', not Bearer",
        "Bearer nope": "the Bearer token is not the one this server was started with",
    }
    for header, says in cases.items():
        resp = await client.get("/admin/devices", headers={"Authorization": header})
        assert resp.status == 401
        assert (await resp.json())["error"] == f"admin API: {says}"
    wrong = await client.get("/admin/devices", headers={"Authorization": "Bearer nope"})
    assert 'error="invalid_token"' in wrong.headers["WWW-Authenticate"]
    lower = await client.get("/admin/devices", headers={"Authorization": "bearer adm1n"})
    assert lower.status == 200


async def test_an_admin_push_that_was_not_sent_says_so(
    make_client: Callable[..., Awaitable[TestClient[Any, Any]]],
) -> None:
    """A push the server could not send is not a 200: a device without a ChannelURI gets
    409, with the outcome kept in the body."""
    client = await make_client()
    assert (await client.post(OMADM_PATH, data=package1(), headers=XML)).status == 200
    resp = await client.post("/admin/devices/dev-1/push")
    assert resp.status == 409
    body = await resp.json()
    assert body["action"] == "no_channel"
    assert body["http_status"] == 0


async def test_latency_delays_every_response_on_the_servers_clock(
    clock: VirtualClock, make_client: Callable[..., Awaitable[TestClient[Any, Any]]]
) -> None:
    """`dmemu mdm --latency 20ms` (issue 19): every response waits 20 ms on the server's own
    clock before it goes, so a run can be measured against a server answering in
    milliseconds; here the clock is virtual, so the answer comes only once it has moved."""
    import asyncio

    client = await make_client(latency_ms=20)
    request = asyncio.ensure_future(client.get("/admin/devices"))
    for _ in range(20):
        await asyncio.sleep(0)
    assert not request.done()
    await clock.jump(19)
    assert not request.done()
    await clock.jump(1)
    assert (await request).status == 200
