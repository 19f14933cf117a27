"""Typed application keys and HTTP constants shared by the drivers and the control API."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from emulator.clock import Clock

if TYPE_CHECKING:
    from emulator.wns.service import WnsService

CLOCK: web.AppKey[Clock] = web.AppKey("dmemu_clock")
WNS: web.AppKey[WnsService] = web.AppKey("dmemu_wns")

#: Sent by in-world clients (tasks that hold the clock busy while awaiting a response), so a
#: server that waits on the clock for that request can release the client's unit as well.
HELD_HEADER = "X-Dmemu-Held"


def held_header(clock: Clock) -> dict[str, str]:
    """The header an in-world client adds to its requests (empty outside the world)."""
    return {HELD_HEADER: "1"} if clock.holding() else {}
