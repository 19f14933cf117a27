"""The ``/_emulator`` HTTP API: inspection and control under one reserved prefix.

Like moto's ``/moto-api`` and LocalStack's ``/_aws``: the CLI and the tests drive the emulator
through the same routes. Each world component adds its own routes module here.
"""

from __future__ import annotations

from aiohttp import web

from emulator.clock import Clock
from emulator.control import clock_routes, wns_routes
from emulator.control.keys import CLOCK, WNS
from emulator.wns.service import WnsService

PREFIX = "/_emulator"


def add_control_routes(
    app: web.Application, clock: Clock, *, wns: WnsService | None = None
) -> None:
    """Add the control API under ``/_emulator`` to ``app`` (routes, not a sub-application)."""
    app[CLOCK] = clock
    clock_routes.add_routes(app, PREFIX)
    if wns is not None:
        app[WNS] = wns
        wns_routes.add_routes(app, PREFIX)
