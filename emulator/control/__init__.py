"""The ``/_emulator`` HTTP API: inspection and control under one reserved prefix.

Like moto's ``/moto-api`` and LocalStack's ``/_aws``: the CLI and the tests drive the emulator
through the same routes. Each world component adds its own routes module here.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from aiohttp import web

from emulator.clock import Clock
from emulator.control import clock_routes, wns_routes
from emulator.control.common import api_error, guard, json_response
from emulator.control.keys import CLOCK, WNS
from emulator.openapi import Operation, add_operations, serve_document
from emulator.wns.service import WnsService

PREFIX = "/_emulator"
OPENAPI_PATH = f"{PREFIX}/openapi.json"


def control_operations(*, wns: bool) -> list[Operation]:
    """The control API's operations, under the prefix, tagged."""
    tables = [("clock", clock_routes.OPERATIONS)] + (
        [("wns", wns_routes.OPERATIONS)] if wns else []
    )
    return [
        dataclasses.replace(op, path=PREFIX + op.path, tag=f"control: {tag}")
        for tag, table in tables
        for op in table
    ]


def add_control_routes(
    app: web.Application,
    clock: Clock,
    *,
    wns: WnsService | None = None,
    document: dict[str, Any] | None = None,
) -> None:
    """Add the control API under ``/_emulator`` to ``app`` (routes, not a sub-application),
    and ``document`` (the OpenAPI document of the whole app) at ``/_emulator/openapi.json``."""
    app[CLOCK] = clock
    if wns is not None:
        app[WNS] = wns
    add_operations(app, control_operations(wns=wns is not None), guard)
    if document is not None:
        app.router.add_get(OPENAPI_PATH, guard(serve_document(document)))
    app.router.add_get(PREFIX, guard(index))
    app.router.add_get(f"{PREFIX}/", guard(index))
    app.router.add_route("*", PREFIX + "/{tail:.*}", guard(unknown))


def _routes(app: web.Application) -> list[dict[str, str]]:
    out = []
    for route in app.router.routes():
        path = route.resource.canonical if route.resource is not None else ""
        if path.startswith(PREFIX + "/") and "{tail" not in path and route.method != "HEAD":
            out.append({"method": route.method, "path": path})
    return out


async def index(request: web.Request) -> web.Response:
    """``GET /_emulator/``: every route of the control API."""
    return json_response({"routes": _routes(request.app)})


async def unknown(request: web.Request) -> web.Response:
    """A path under the prefix no route takes: 405 with Allow when the path exists for
    other methods, else a 404 listing the routes (JSON, as every control API error)."""
    allowed: set[str] = set()
    for resource in request.app.router.resources():
        if "{tail" in resource.canonical:
            continue
        _, methods = await resource.resolve(request)
        allowed |= methods
    if allowed:
        raise web.HTTPMethodNotAllowed(request.method, sorted(allowed))
    raise api_error(
        404,
        f"no control route {request.method} {request.path}",
        [f"{r['method']} {r['path']}" for r in _routes(request.app)],
    )
