"""Typed application keys shared by the HTTP drivers and the control API."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from emulator.clock import Clock

if TYPE_CHECKING:
    from emulator.wns.service import WnsService

CLOCK: web.AppKey[Clock] = web.AppKey("dmemu_clock")
WNS: web.AppKey[WnsService] = web.AppKey("dmemu_wns")
