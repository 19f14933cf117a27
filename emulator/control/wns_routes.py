"""``/_emulator/wns/...``: inspect and steer the fake WNS.

Routes (JSON in and out; errors as ``{"error", "details"}``):

* ``GET    /wns/apps``                          configured apps (no secrets)
* ``GET    /wns/requests?kind=&channel_id=&limit=``  recorded token/notify requests
* ``DELETE /wns/requests``                      forget recorded requests
* ``POST   /wns/channels``  ``{"pfn", "device_id"?, "connected"?}``  issue a channel (201)
* ``GET    /wns/channels?device_id=&uri=``      list channels
* ``GET    /wns/channels/{id}``                 one channel
* ``POST   /wns/channels/{id}/renew``           renew (new URI, or same URI extended)
* ``POST   /wns/channels/{id}/revoke``          revoke (pushes then get 410)
* ``GET    /wns/channels/{id}/pushes``          delivered and cached pushes
* ``PUT    /wns/devices/{device_id}/connection``  ``{"status"}`` drop or restore a connection
* ``POST   /wns/pfns/{pfn}/block`` / ``DELETE`` the same: block or unblock a PFN
* ``POST   /wns/tokens/revoke``  ``{"sid"?}``   revoke issued access tokens
* ``POST   /wns/faults`` / ``GET`` / ``DELETE`` / ``DELETE /wns/faults/{id}``
* ``POST   /reset``                             forget tokens, channels, faults, records
"""

from __future__ import annotations

from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, model_validator

from emulator.clock import DAY, iso
from emulator.control.common import api_error, json_response, parse_body
from emulator.control.keys import CLOCK, WNS
from emulator.openapi import OBJECT, Operation, Query
from emulator.wns.channels import ChannelRefused
from emulator.wns.models import Channel
from emulator.wns.service import WnsService


class ChannelBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    pfn: str = Field(min_length=1, max_length=256)
    device_id: str | None = Field(None, min_length=1, max_length=128)
    connected: bool = True


class ConnectionBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    status: Literal["connected", "disconnected", "tempdisconnected"]


class RevokeTokensBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    sid: str | None = None


class FaultBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    #: notify: pushes; token: /accesstoken.srf; register: devices asking for a channel
    #: (latency only: a registration slower than the device's timeout is not read in the
    #: session that set the PFN, section 0)
    target: Literal["notify", "token", "register"] = "notify"
    status: int | None = Field(None, ge=400, le=599)
    count: int | None = Field(None, ge=1)
    sid: str | None = None
    channel_id: str | None = None
    retry_after_s: int | None = Field(None, ge=0, le=86_400)
    latency_ms: int = Field(0, ge=0, le=DAY)
    description: str | None = Field(None, max_length=500)

    @model_validator(mode="after")
    def _does_something(self) -> FaultBody:
        if self.status is None and self.latency_ms == 0:
            raise ValueError("a fault needs a status, a latency_ms, or both")
        if self.target == "register" and (self.status is not None or self.channel_id):
            raise ValueError("a register fault takes latency_ms (and sid, count) only")
        return self


def channel_json(service: WnsService, channel: Channel, now: int) -> dict[str, Any]:
    return {
        "id": channel.id,
        "channel_uri": channel.uri,
        "pfn": channel.pfn,
        "sid": channel.sid,
        "device_id": channel.device_id,
        "issued_at": iso(channel.issued_ms),
        "expires_at": iso(channel.expires_ms),
        "expires_ms": channel.expires_ms,
        "state": service.registry.state(channel, now),
        "superseded_by": channel.superseded_by,
        "connection": channel.endpoint.status,
        "cached": [p.summary() for p in channel.cached.values()],
        "delivered": len(channel.delivered),
    }


def _service(request: web.Request) -> tuple[WnsService, int]:
    return request.app[WNS], request.app[CLOCK].now()


def _channel(request: web.Request) -> Channel:
    service, _ = _service(request)
    channel = service.registry.by_id.get(request.match_info["id"])
    if channel is None:
        raise api_error(404, f"no channel {request.match_info['id']!r}")
    return channel


async def list_apps(request: web.Request) -> web.Response:
    service, _ = _service(request)
    apps = [
        {
            "sid": a.sid,
            "client_id": a.client_id,
            "pfn": a.pfn,
            "blocked": service.registry.is_blocked(a.pfn),
        }
        for a in service.apps.values()
    ]
    return json_response({"apps": apps})


async def list_requests(request: web.Request) -> web.Response:
    service, _ = _service(request)
    kind = request.query.get("kind")
    channel_id = request.query.get("channel_id")
    try:
        limit = int(request.query.get("limit", "1000"))
    except ValueError:
        raise api_error(400, "limit must be an integer") from None
    rows = [
        r.as_json()
        for r in service.records
        if (kind is None or r.kind == kind) and (channel_id is None or r.channel_id == channel_id)
    ]
    return json_response({"requests": rows[-limit:] if limit > 0 else []})


async def clear_requests(request: web.Request) -> web.Response:
    service, _ = _service(request)
    count = len(service.records)
    service.records.clear()
    return json_response({"cleared": count})


async def create_channel(request: web.Request) -> web.Response:
    service, now = _service(request)
    body = await parse_body(request, ChannelBody)
    device_id = body.device_id or f"device-{len(service.registry.endpoints) + 1:04d}"
    try:
        channel = service.request_channel(device_id, body.pfn, now)
    except ChannelRefused as exc:
        raise api_error(422, str(exc), [exc.reason]) from None
    if not body.connected:
        service.set_connection(device_id, "disconnected", now)
    return json_response(channel_json(service, channel, now), status=201)


async def list_channels(request: web.Request) -> web.Response:
    service, now = _service(request)
    device_id = request.query.get("device_id")
    uri = request.query.get("uri")
    rows = [
        channel_json(service, c, now)
        for c in service.registry.by_id.values()
        if (device_id is None or c.device_id == device_id) and (uri is None or c.uri == uri)
    ]
    return json_response({"channels": rows})


async def get_channel(request: web.Request) -> web.Response:
    service, now = _service(request)
    return json_response(channel_json(service, _channel(request), now))


async def renew_channel(request: web.Request) -> web.Response:
    service, now = _service(request)
    old = _channel(request)
    try:
        channel = service.request_channel(old.device_id, old.pfn, now)
    except ChannelRefused as exc:
        raise api_error(422, str(exc), [exc.reason]) from None
    return json_response(channel_json(service, channel, now))


async def revoke_channel(request: web.Request) -> web.Response:
    service, now = _service(request)
    channel = _channel(request)
    service.revoke_channel(channel)
    return json_response(channel_json(service, channel, now))


async def channel_pushes(request: web.Request) -> web.Response:
    service, now = _service(request)
    channel = _channel(request)
    delivered = [
        {
            **d.push.summary(),
            "delivered_ms": d.delivered_ms,
            "delivered_at": iso(d.delivered_ms),
            "via": d.via,
            "payload": d.push.payload.decode("latin-1"),
        }
        for d in channel.delivered
    ]
    cached = [
        {
            **p.summary(),
            "alive": service.registry.cache_alive(p, now),
            "payload": p.payload.decode("latin-1"),
        }
        for p in channel.cached.values()
    ]
    return json_response({"channel_id": channel.id, "delivered": delivered, "cached": cached})


async def set_connection(request: web.Request) -> web.Response:
    service, now = _service(request)
    body = await parse_body(request, ConnectionBody)
    device_id = request.match_info["device_id"]
    if device_id not in service.registry.endpoints:
        raise api_error(404, f"no device {device_id!r} has a channel")
    delivered = service.set_connection(device_id, body.status, now)
    return json_response(
        {"device_id": device_id, "status": body.status, "delivered_from_cache": delivered}
    )


async def block_pfn(request: web.Request) -> web.Response:
    service, _ = _service(request)
    pfn = request.match_info["pfn"]
    if request.method == "DELETE":
        service.registry.unblock(pfn)
    else:
        service.registry.block(pfn)
    return json_response({"pfn": pfn, "blocked": service.registry.is_blocked(pfn)})


async def revoke_tokens(request: web.Request) -> web.Response:
    service, now = _service(request)
    body = await parse_body(request, RevokeTokensBody)
    if body.sid is not None and body.sid not in service.apps:
        raise api_error(404, f"no app with SID {body.sid!r}")
    return json_response({"revoked": service.tokens.revoke(body.sid, now)})


async def add_fault(request: web.Request) -> web.Response:
    service, _ = _service(request)
    body = await parse_body(request, FaultBody)
    if body.channel_id is not None and body.channel_id not in service.registry.by_id:
        raise api_error(404, f"no channel {body.channel_id!r}")
    if body.sid is not None and body.sid not in service.apps:
        raise api_error(404, f"no app with SID {body.sid!r}")
    fault = service.faults.add(**body.model_dump())
    return json_response(fault.as_json(), status=201)


async def list_faults(request: web.Request) -> web.Response:
    service, _ = _service(request)
    return json_response({"faults": [f.as_json() for f in service.faults.faults]})


async def clear_faults(request: web.Request) -> web.Response:
    service, _ = _service(request)
    return json_response({"cleared": service.faults.clear()})


async def remove_fault(request: web.Request) -> web.Response:
    service, _ = _service(request)
    if not service.faults.remove(request.match_info["id"]):
        raise api_error(404, f"no fault {request.match_info['id']!r}")
    return json_response({"removed": request.match_info["id"]})


async def reset(request: web.Request) -> web.Response:
    service, _ = _service(request)
    service.reset()
    return json_response({"reset": True})


CHANNEL = {
    "type": "object",
    "required": ["id", "channel_uri", "pfn", "device_id", "expires_at", "state"],
    "properties": {
        "id": {"type": "string"},
        "channel_uri": {"type": "string"},
        "pfn": {"type": "string"},
        "sid": {"type": "string"},
        "device_id": {"type": "string"},
        "issued_at": {"type": "string", "format": "date-time"},
        "expires_at": {"type": "string", "format": "date-time"},
        "expires_ms": {"type": "integer"},
        "state": {"enum": ["active", "superseded", "expired", "revoked", "blocked"]},
        "superseded_by": {"type": ["string", "null"]},
        "connection": {"type": "string"},
        "cached": {"type": "array"},
        "delivered": {"type": "integer"},
    },
}


def _list(key: str, item: dict[str, Any] = OBJECT) -> dict[str, Any]:
    return {
        "type": "object",
        "required": [key],
        "properties": {key: {"type": "array", "items": item}},
    }


def _count(key: str) -> dict[str, Any]:
    return {"type": "object", "required": [key], "properties": {key: {"type": "integer"}}}


_ONE_CHANNEL = {200: ("The channel", CHANNEL)}
OPERATIONS = [
    Operation(
        "GET", "/wns/apps", list_apps, "Configured apps (no secrets)", {200: ("", _list("apps"))}
    ),
    Operation(
        "GET",
        "/wns/requests",
        list_requests,
        "Recorded token and notification requests (headers redacted)",
        {200: ("The newest `limit` requests", _list("requests"))},
        query=(
            Query("kind", "token or notify", {"enum": ["token", "notify"]}),
            Query("channel_id", "only this channel's"),
            Query("limit", "at most this many, newest last (default 1000)"),
        ),
        errors=(400,),
    ),
    Operation(
        "DELETE",
        "/wns/requests",
        clear_requests,
        "Forget the recorded requests",
        {200: ("How many", _count("cleared"))},
    ),
    Operation(
        "POST",
        "/wns/channels",
        create_channel,
        "Issue a channel, as a device registering its PFN does",
        {201: ("The new channel", CHANNEL)},
        body=ChannelBody,
        errors=(422,),
    ),
    Operation(
        "GET",
        "/wns/channels",
        list_channels,
        "Every channel",
        {200: ("", _list("channels", CHANNEL))},
        query=(Query("device_id", "only this device's"), Query("uri", "only this ChannelURI")),
    ),
    Operation("GET", "/wns/channels/{id}", get_channel, "One channel", _ONE_CHANNEL, errors=(404,)),
    Operation(
        "POST",
        "/wns/channels/{id}/renew",
        renew_channel,
        "Renew a channel (a new URI, or the same one extended)",
        {200: ("The renewed channel", CHANNEL)},
        errors=(404, 422),
    ),
    Operation(
        "POST",
        "/wns/channels/{id}/revoke",
        revoke_channel,
        "Revoke a channel: pushes to it get 410",
        _ONE_CHANNEL,
        errors=(404,),
    ),
    Operation(
        "GET",
        "/wns/channels/{id}/pushes",
        channel_pushes,
        "A channel's delivered and cached pushes",
        {200: ("", {"type": "object", "required": ["channel_id", "delivered", "cached"]})},
        errors=(404,),
    ),
    Operation(
        "PUT",
        "/wns/devices/{device_id}/connection",
        set_connection,
        "Drop or restore a device's WNS connection (cached pushes go on reconnect)",
        {200: ("", {"type": "object", "required": ["device_id", "status"]})},
        body=ConnectionBody,
        errors=(404,),
    ),
    Operation(
        "POST",
        "/wns/pfns/{pfn}/block",
        block_pfn,
        "Block a PFN (410 Domain Blocked; registration refused)",
        {200: ("", {"type": "object", "required": ["pfn", "blocked"]})},
    ),
    Operation(
        "DELETE",
        "/wns/pfns/{pfn}/block",
        block_pfn,
        "Unblock a PFN",
        {200: ("", {"type": "object", "required": ["pfn", "blocked"]})},
    ),
    Operation(
        "POST",
        "/wns/tokens/revoke",
        revoke_tokens,
        "Revoke issued access tokens (of one app with `sid`)",
        {200: ("How many", _count("revoked"))},
        body=RevokeTokensBody,
        errors=(404,),
    ),
    Operation(
        "POST",
        "/wns/faults",
        add_fault,
        "Answer the next requests with a status and/or a latency on the emulated clock",
        {201: ("The fault", {"type": "object", "required": ["id"]})},
        body=FaultBody,
        errors=(404,),
    ),
    Operation("GET", "/wns/faults", list_faults, "Faults in force", {200: ("", _list("faults"))}),
    Operation(
        "DELETE", "/wns/faults", clear_faults, "Remove every fault", {200: ("", _count("cleared"))}
    ),
    Operation(
        "DELETE",
        "/wns/faults/{id}",
        remove_fault,
        "Remove one fault",
        {200: ("", {"type": "object", "required": ["removed"]})},
        errors=(404,),
    ),
    Operation(
        "POST",
        "/reset",
        reset,
        "Forget tokens, channels, faults and records",
        {200: ("", {"type": "object", "required": ["reset"]})},
    ),
]
