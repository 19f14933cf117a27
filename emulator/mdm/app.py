"""The reference server's HTTP face: the OMA-DM endpoint and the JSON admin API.

Owns: ``POST /ManagementServer/MDM.svc`` (Content-Type and size checked before parsing,
:class:`~emulator.mdm.omadm.Refused` turned into a 4xx with a plain-text reason and a log
line carrying the offending bytes) and the admin routes under ``/admin`` that people, the
hooks file and the conformance suite use:

* ``GET /admin/devices``: every device with its channel, last session and newest push;
* ``GET /admin/devices/{id}``: one device with its commands and pushes;
* ``PUT /admin/devices/{id}``: allow a device to enroll (when a device list is required);
* ``POST /admin/devices/{id}/push``: push now, answer the outcome;
* ``POST /admin/devices/{id}/commands``: queue Get/Add/Replace/Delete/Exec on a LocURI
  (pushes the device unless ``"push": false``); ``GET .../commands/{cid}`` reads its result;
* ``GET /admin/enrollment/token``: the Federated enrollment token (the ``enroll_token`` hook).

The enrollment services (``/EnrollmentServer/...``) are mounted from ``enrollment.py``.

Every route runs under :func:`emulator.control.common.guard` (busy clock, emulated Date, no
traceback escapes); with ``--admin-token`` the admin routes need ``Bearer <token>``.
Must not: decide protocol (the endpoint and the pusher do).
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, Literal

from aiohttp import web
from aiohttp.typedefs import Middleware
from pydantic import BaseModel, ConfigDict, Field, field_validator

from emulator.clock import iso
from emulator.control.common import (
    api_error,
    guard,
    json_response,
    parse_body,
    read_body,
)
from emulator.control.keys import CLOCK
from emulator.device.session import Reply
from emulator.enroll.keys import thumbprint
from emulator.health import ClockCollector, add_health_routes
from emulator.mdm.config import WRONG_TOKEN, bearer_problem
from emulator.mdm.enrollment import routes as enrollment_routes
from emulator.mdm.metrics import MdmCollector, mdm_ready
from emulator.mdm.omadm import MAX_DEVICE_ID, Refused
from emulator.openapi import Operation, add_operations, document, serve_document
from emulator.serving import Handler
from emulator.syncml import CONTENT_TYPE, MAX_MESSAGE_BYTES
from emulator.syncml.codec import EXCERPT_BYTES

if TYPE_CHECKING:
    from emulator.mdm.server import ReferenceServer

OMADM_PATH = "/ManagementServer/MDM.svc"  # as in protocol.md 3.8
MDM: web.AppKey[ReferenceServer] = web.AppKey("dmemu_mdm")
_TIME_FIELDS = frozenset(
    {"first_seen", "last_session_at", "channel_seen_at", "retry_at", "queued_at", "sent_at"}
    | {"done_at", "at"}
)


def make_mdm_app(server: ReferenceServer) -> web.Application:
    middlewares = [_latency(server.config.latency_ms)] if server.config.latency_ms else []
    app = web.Application(client_max_size=MAX_MESSAGE_BYTES, middlewares=middlewares)
    app[CLOCK] = server.clock
    app[MDM] = server
    app.router.add_post(OMADM_PATH, guard(omadm, _plain_crash))
    for method, path, handler in enrollment_routes(server):
        app.router.add_route(method, path, guard(handler, _plain_crash))
    health = add_health_routes(
        app,
        ready=lambda: mdm_ready(server),
        collectors=[MdmCollector(server), ClockCollector(server.clock)],
    )
    add_operations(app, ADMIN, lambda handler: guard(_admin(handler)))
    doc = admin_document(ADMIN + health)
    app.router.add_get(ADMIN_OPENAPI_PATH, guard(serve_document(doc)))
    return app


def _latency(ms: int) -> Middleware:
    """Every response waits ``ms`` on the server's clock before it goes (``--latency``)."""

    @web.middleware
    async def delayed(request: web.Request, handler: Handler) -> web.StreamResponse:
        response = await handler(request)
        await request.app[CLOCK].sleep(ms)
        return response

    return delayed


def _admin(handler: Handler) -> Handler:
    """The admin token check (``--admin-token``) in front of an admin route."""

    async def checked(request: web.Request) -> web.StreamResponse:
        token = request.app[MDM].config.admin_token
        problem = bearer_problem(request.headers.get("Authorization", ""), token)
        if problem is not None:
            error = ', error="invalid_token"' if problem == WRONG_TOKEN else ""
            raise api_error(
                401,
                f"admin API: {problem}",
                headers={"WWW-Authenticate": f'Bearer realm="dmemu-admin"{error}'},
            )
        return await handler(request)

    checked.__name__ = handler.__name__
    return checked


def _plain_crash() -> web.Response:
    return web.Response(status=500, text="internal server error (see the server's log)")


def _times(record: dict[str, Any]) -> dict[str, Any]:
    """Emulated ms as ISO-8601 at the edge (architecture principle 1)."""
    return {k: iso(v) if k in _TIME_FIELDS and isinstance(v, int) else v for k, v in record.items()}


# -- OMA-DM ---------------------------------------------------------------------------------
async def omadm(request: web.Request) -> web.Response:
    server = request.app[MDM]
    body, too_big = b"", False
    if request.content_type == CONTENT_TYPE:  # else refused unread
        body, _, too_big = await read_body(request, MAX_MESSAGE_BYTES)
    answer = serve_message(
        server,
        request.content_type,
        body,
        too_big=too_big,
        authorization=request.headers.get("Authorization", ""),
        origin=request.headers.get("UserAgentOrigin"),
        client_cert=_client_thumbprint(request),
        remote=request.remote,
    )
    return web.Response(status=answer.status, headers=answer.headers, body=answer.body)


def serve_message(
    server: ReferenceServer,
    content_type: str,
    body: bytes,
    *,
    too_big: bool,
    authorization: str,
    origin: str | None,
    client_cert: str | None,
    remote: str | None,
) -> Reply:
    """One device message to the OMA-DM endpoint, however it came (HTTP, or in process
    with ``--transport memory``): the reply, or the refusal (4xx, a plain-text reason, a
    log line with the offending bytes)."""
    try:
        if content_type != CONTENT_TYPE:
            raise Refused(415, f"Content-Type must be {CONTENT_TYPE}, not {content_type!r}")
        if too_big:
            raise Refused(413, f"message over {MAX_MESSAGE_BYTES} bytes")
        reply = server.endpoint.handle(body, authorization, origin, server.clock.now(), client_cert)
    except Refused as exc:
        server.log.warning(
            "mdm.request_refused",
            status=exc.status,
            reason=exc.reason,
            remote=remote,
            excerpt=body[:EXCERPT_BYTES].decode("utf-8", "replace"),
        )
        headers = {"Content-Type": "text/plain; charset=utf-8"}
        if exc.status == 401:
            headers["WWW-Authenticate"] = 'Bearer realm="dmemu"'
        return Reply(exc.status, headers, exc.reason.encode())
    return Reply(200, {"Content-Type": CONTENT_TYPE}, reply)


def _client_thumbprint(request: web.Request) -> str | None:
    """The thumbprint of the TLS client certificate the request came with, if any."""
    transport = request.transport
    ssl_object = transport.get_extra_info("ssl_object") if transport is not None else None
    der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
    return thumbprint(der) if der else None


# -- admin API ------------------------------------------------------------------------------
class CommandBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    verb: Literal["Get", "Add", "Replace", "Delete", "Exec"]
    loc_uri: str = Field(min_length=3, max_length=1024, pattern=r"^\./\S+$")
    data: str | None = Field(default=None, max_length=64 * 1024)
    format: Literal["chr", "int", "bool", "b64", "xml", "node", "null"] | None = None
    push: bool = True  # push the device so the command goes out now [PUSH]

    @field_validator("data", "format", mode="before")
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        """Hook templates fill absent values with "" (emulator/mdm/hooks.yaml)."""
        return None if value == "" else value


def _device_id(request: web.Request) -> str:
    device_id = request.match_info["device_id"]
    if request.app[MDM].store.device(device_id) is None:
        raise api_error(404, f"no device {device_id!r} has enrolled with this server")
    return device_id


def _summary(server: ReferenceServer, device_id: str) -> dict[str, Any]:
    row = server.store.devices[device_id]
    pushes = server.store.pushes(device_id)
    data = _times(row.public())
    data["last_push"] = _times(pushes[-1].public()) if pushes else None
    return data


async def list_devices(request: web.Request) -> web.Response:
    server = request.app[MDM]
    return json_response({"devices": [_summary(server, d) for d in sorted(server.store.devices)]})


async def get_device(request: web.Request) -> web.Response:
    server = request.app[MDM]
    device_id = _device_id(request)
    data = _summary(server, device_id)
    data["commands"] = [_times(c.public()) for c in server.store.commands(device_id)]
    data["pushes"] = [_times(p.public()) for p in server.store.pushes(device_id)]
    return json_response(data)


async def register_device(request: web.Request) -> web.Response:
    """Allow a device to enroll (with ``--devices``, only listed or registered ones may)."""
    server = request.app[MDM]
    device_id = request.match_info["device_id"]
    if not device_id or len(device_id) > MAX_DEVICE_ID or any(c.isspace() for c in device_id):
        raise api_error(400, f"{device_id!r} is not a device id")
    allowed = server.endpoint.allowed
    added = allowed is not None and device_id not in allowed
    if allowed is not None:
        allowed.add(device_id)
    server.log.info("mdm.device_registered", device_id=device_id, added=added)
    return json_response({"device_id": device_id, "allowed": True}, status=201 if added else 200)


#: the admin push's HTTP status by the push's action; the body always holds the outcome
PUSH_STATUS = {
    "delivered": 200,  # WNS accepted it (received or cached)
    "dropped": 200,  # WNS accepted it and dropped it (device offline, no cache policy)
    "retry": 202,  # WNS asked to wait: sent again after Retry-After / back-off
    "deferred": 202,  # waiting for an earlier Retry-After: goes out then
    "coalesced": 202,  # a push to the device is in flight: that one will do
    "no_channel": 409,  # the device has no usable ChannelURI (none yet, or 404/410)
    "rate_limited": 429,  # the per-device hourly limit (--push-rate)
}
PUSH_NOT_SENT = 502  # WNS refused it (stop, fix), was unreachable, or it was given up


async def push_device(request: web.Request) -> web.Response:
    server = request.app[MDM]
    device_id = _device_id(request)
    row = await server.pusher.push(device_id, "admin")
    return json_response(_times(row.public()), status=PUSH_STATUS.get(row.action, PUSH_NOT_SENT))


async def queue_command(request: web.Request) -> web.Response:
    server = request.app[MDM]
    device_id = _device_id(request)
    body = await parse_body(request, CommandBody)
    command = server.store.queue(
        device_id, body.verb, body.loc_uri, body.data, body.format, server.clock.now()
    )
    server.log.info("mdm.command_queued", device_id=device_id, command_id=command.id)
    push = await server.pusher.push(device_id, "command") if body.push else None
    return json_response(
        {
            "command": _times(command.public()),
            "push": _times(push.public()) if push else None,
        },
        status=201,
    )


async def get_command(request: web.Request) -> web.Response:
    server = request.app[MDM]
    device_id = _device_id(request)
    try:
        command_id = int(request.match_info["command_id"])
    except ValueError:
        raise api_error(404, "command ids are integers") from None
    command = server.store.command(command_id)
    if command is None or command.device_id != device_id:
        raise api_error(404, f"device {device_id!r} has no command {command_id}")
    return json_response(_times(command.public()))


async def enrollment_token(request: web.Request) -> web.Response:
    """The Federated token devices present (the ``enroll_token`` hook): what a sign-in page
    would have handed a browser [MDE2 3.2]."""
    config = request.app[MDM].config
    if config.enroll_policy != "Federated" or config.enroll_token is None:
        raise api_error(404, "this server does not use Federated enrollment with --enroll-token")
    return json_response({"token": config.enroll_token})


ADMIN_OPENAPI_PATH = "/admin/openapi.json"
_DEVICE = {"type": "object", "required": ["device_id"]}
_PUSH = {"type": "object", "required": ["device_id", "action"]}
ADMIN = [
    Operation(
        "GET",
        "/admin/devices",
        list_devices,
        "Every enrolled device, with its channel and its last push",
        {200: ("", {"type": "object", "required": ["devices"]})},
    ),
    Operation(
        "GET",
        "/admin/devices/{device_id}",
        get_device,
        "One device, with its commands and pushes",
        {200: ("The device", _DEVICE)},
        errors=(404,),
    ),
    Operation(
        "PUT",
        "/admin/devices/{device_id}",
        register_device,
        "Allow a device to enroll (with --devices, only listed or registered ones may)",
        {
            200: ("It was allowed already", {"type": "object", "required": ["device_id"]}),
            201: ("Now allowed", {"type": "object", "required": ["device_id"]}),
        },
        errors=(400,),
    ),
    Operation(
        "POST",
        "/admin/devices/{device_id}/push",
        push_device,
        "Push the device now; the body says what came of it, the status sums it up",
        {
            200: ("WNS accepted it (delivered, or dropped: offline without cache)", _PUSH),
            202: ("It goes out later (Retry-After, back-off, or one in flight)", _PUSH),
            409: ("The device has no usable ChannelURI", _PUSH),
            429: ("The per-device hourly push limit", _PUSH),
            502: ("WNS refused it, was unreachable, or the server gave up", _PUSH),
        },
        errors=(404,),
    ),
    Operation(
        "POST",
        "/admin/devices/{device_id}/commands",
        queue_command,
        "Queue an OMA-DM command; by default push the device so it goes out now",
        {201: ("The command, and the push", {"type": "object", "required": ["command"]})},
        body=CommandBody,
        errors=(404,),
    ),
    Operation(
        "GET",
        "/admin/devices/{device_id}/commands/{command_id}",
        get_command,
        "One command: its state, the device's Status and Results",
        {200: ("The command", {"type": "object", "required": ["id", "state"]})},
        errors=(404,),
    ),
    Operation(
        "GET",
        "/admin/enrollment/token",
        enrollment_token,
        "The Federated enrollment token (what a sign-in page would hand a device)",
        {200: ("", {"type": "object", "required": ["token"]})},
        errors=(404,),
    ),
]
ADMIN = [dataclasses.replace(op, secured=True, tag="admin") for op in ADMIN]


def admin_document(operations: list[Operation]) -> dict[str, Any]:
    return document(
        "dmemu reference MDM server: admin API",
        "Operate the reference server as an MDM console (or a hooks file) does: devices, "
        "pushes, OMA-DM commands; errors are `{error, details}`. The OMA-DM endpoint "
        f"({OMADM_PATH}) and the MS-MDE2 enrollment services speak SyncML and SOAP, not this.",
        operations,
        secured_by="adminToken",
    )
