"""The aiohttp driver of the fake WNS: the one boundary where protocol errors become responses.

Owns: routes (``POST /accesstoken.srf``, ``POST /?token=...``), reading bodies within limits,
turning :mod:`emulator.wns.errors` into the exact status and headers of [WNSHDR], applying
injected latency on the clock, recording every exchange, and adding the ``/_emulator`` API.
Every route runs under :func:`emulator.control.common.guard` (busy clock, emulated Date, no
traceback escapes).
Must not: judge requests (the service does) or read time except through the clock.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from emulator.clock import Clock
from emulator.control import add_control_routes, control_operations
from emulator.control.common import guard, read_body
from emulator.control.keys import HELD_HEADER
from emulator.health import ClockCollector, add_health_routes
from emulator.openapi import Operation, Query, document
from emulator.serving import add_direct_route
from emulator.wns import names
from emulator.wns import notify as notify_types
from emulator.wns.errors import NotifyError, OAuthError, PayloadTooLarge
from emulator.wns.metrics import WnsCollector, request_counts, wns_ready
from emulator.wns.models import RAW_LIMIT_BYTES
from emulator.wns.service import Exchange, WnsService
from emulator.wns.tokens import MAX_FORM_BYTES

#: Bodies larger than this are never read into memory; the request is refused from its
#: Content-Length (413 for notifications, 400 for the token form).
READ_LIMIT = 64 * 1024


def make_wns_app(service: WnsService, clock: Clock) -> web.Application:
    """The fake WNS as an aiohttp application, with its ``/_emulator`` control API."""
    app = web.Application(client_max_size=READ_LIMIT)
    endpoints = _Endpoints(service, clock)
    # The protocol endpoints are direct routes, answered ahead of the router when served
    # (see emulator.serving); both are bound to their service and clock, so a request does
    # not look them up in the application.
    add_direct_route(app, "/", guard(endpoints.notify, _crash, clock))
    add_direct_route(app, "/accesstoken.srf", guard(endpoints.token, _crash, clock))
    health = add_health_routes(
        app,
        ready=lambda: wns_ready(service),
        collectors=[WnsCollector(service, clock), ClockCollector(clock)],
        served=[lambda: request_counts(service)],
    )
    operations = protocol_operations(endpoints) + health + control_operations(wns=True)
    add_control_routes(app, clock, wns=service, document=wns_document(operations))
    return app


def wns_document(operations: list[Operation]) -> dict[str, Any]:
    return document(
        "dmemu fake WNS",
        "The Windows Push Notification Services as an MDM server sees them (the token "
        "endpoint and ChannelURIs [WNSHDR]), and the `/_emulator` control API that steers "
        "them and the clock. Control API errors are `{error, details}`; the token endpoint's "
        "are OAuth 2.0 errors; a refused push has no body, its reason is in "
        "`X-WNS-Error-Description`.",
        operations,
    )


def _enum(*values: str) -> dict[str, Any]:
    return {"type": "string", "enum": list(values)}


def protocol_operations(endpoints: _Endpoints) -> list[Operation]:
    refused = {
        status: (text, None)
        for status, text in (
            (400, "A malformed, conflicting or repeated header, or an empty payload"),
            (401, "The access token is missing, invalid, expired or revoked"),
            (403, "The token belongs to another app"),
            (404, "No such ChannelURI"),
            (405, "Not POST"),
            (406, "The channel's push rate is exceeded (Retry-After)"),
            (410, "The channel expired or was revoked, or its PFN is blocked"),
            (413, "The payload is over 5000 bytes"),
        )
    }
    token = {
        "type": "object",
        "required": ["access_token", "token_type", "expires_in"],
        "properties": {
            "access_token": {"type": "string"},
            "token_type": {"const": "bearer"},
            "expires_in": {"type": "integer"},
        },
    }
    oauth_error = {"$ref": "#/components/schemas/OAuthError"}
    return [
        Operation(
            "POST",
            "/accesstoken.srf",
            endpoints.token,
            "OAuth 2.0 client credentials: an access token for an app [WNSHDR 2.1]",
            {200: ("The token", token), 400: ("Any wrong field", oauth_error)},
            content={
                "application/x-www-form-urlencoded": {
                    "type": "object",
                    "required": ["grant_type", "client_id", "client_secret", "scope"],
                    "properties": {
                        "grant_type": {"const": "client_credentials"},
                        "client_id": {"type": "string", "description": "ms-app://<Package SID>"},
                        "client_secret": {"type": "string"},
                        "scope": {"const": "notify.windows.com"},
                    },
                }
            },
            tag="WNS",
        ),
        Operation(
            "POST",
            "/",
            endpoints.notify,
            "A push to a ChannelURI (`/?token=...`) [WNSHDR 2.3]",
            {200: ("Accepted: X-WNS-Status received, cached or dropped", None), **refused},
            content={"application/octet-stream": {"type": "string", "format": "binary"}},
            query=(Query("token", "the channel's token, as the ChannelURI gives it"),),
            headers=(
                Query("Authorization", "Bearer <access token>"),
                Query("X-WNS-Type", "the notification type", _enum(*notify_types.TYPES)),
                Query(
                    "X-WNS-Cache-Policy",
                    "keep it for an offline device",
                    _enum("cache", "no-cache"),
                ),
                Query(
                    "X-WNS-TTL", "seconds it may wait", {"type": "string", "pattern": "^[0-9]+$"}
                ),
                Query("X-WNS-RequestForStatus", "answer the connection", _enum("true", "false")),
            ),
            tag="WNS",
        ),
    ]


def _crash() -> web.Response:
    return web.Response(
        status=500, headers={names.ERROR_DESCRIPTION: "Internal emulator error (see its log)."}
    )


class _Endpoints:
    """``POST <ChannelURI>`` and ``POST /accesstoken.srf`` of one fake WNS."""

    __slots__ = ("clock", "service")

    def __init__(self, service: WnsService, clock: Clock) -> None:
        self.service = service
        self.clock = clock

    async def notify(self, request: web.Request) -> web.Response:
        ex = Exchange()
        body, declared, too_big = await read_body(request, READ_LIMIT)
        now = self.clock.now()
        headers: dict[str, str]
        try:
            if too_big:
                ex.channel = None
                raise PayloadTooLarge(
                    f"The notification payload exceeds the {RAW_LIMIT_BYTES} byte size limit."
                )
            self.service.notify(
                request.method,
                request.raw_path.partition("?")[2],
                request.headers,
                body,
                declared_length=declared,
                now=now,
                ex=ex,
            )
            status = 200
            headers = ex.accepted or {}
        except NotifyError as err:
            status = err.status
            headers = {names.ERROR_DESCRIPTION: err.description, **err.extra_headers()}
            if err.wns_status:
                headers[names.STATUS] = headers[names.NOTIFICATION_STATUS] = err.wns_status
            ex.outcome = err.wns_status or f"error: {err.description}"
        headers[names.DEBUG_TRACE] = ex.debug_trace
        headers[names.MS_CV] = ex.ms_cv
        if ex.latency_ms:
            await self._delay(request, ex.latency_ms)
        self.service.record("notify", request, body, status, ex, headers, now)
        return web.Response(status=status, headers=headers)

    async def token(self, request: web.Request) -> web.Response:
        service = self.service
        ex = Exchange()
        body, _, too_big = await read_body(request, MAX_FORM_BYTES)
        now = self.clock.now()
        try:
            if too_big:
                raise OAuthError("invalid_request", f"request body exceeds {MAX_FORM_BYTES} bytes")
            token = service.token(
                request.method, request.headers.get("Content-Type"), body, now, ex
            )
            status = 200
            payload = {
                "access_token": token.value,
                "token_type": "bearer",  # [WNSHDR] "Always returned as bearer"
                "expires_in": service.tokens.expires_in_s(token, now),
            }
        except OAuthError as err:
            status = err.status
            payload = {"error": err.error, "error_description": err.description}
            ex.outcome = f"error: {err.error}"
        # [WNSHDR] Cache-Control: no-store; Pragma as RFC 6749 5.1 (docs/protocol-decisions.md)
        headers = {"Cache-Control": "no-store", "Pragma": "no-cache"}
        if ex.latency_ms:
            await self._delay(request, ex.latency_ms)
        service.record("token", request, body, status, ex, headers, now)
        return web.Response(
            status=status,
            headers=headers,
            body=json.dumps(payload).encode("utf-8"),
            content_type="application/json",
        )

    async def _delay(self, request: web.Request, latency_ms: int) -> None:
        """Wait out injected latency on the emulated clock. While waiting, an in-world
        client's hold is released too (see ``Scheduler.parked``)."""
        held = 1 if request.headers.get(HELD_HEADER) == "1" else 0
        await self.clock.sleep(latency_ms, peer_units=held)
