"""Serving an aiohttp application on a real socket: the one way dmemu listens.

Owns: runner set-up and clean-up on failure, learning the port when 0 was asked for, the
base URL (IPv6 hosts bracketed, https with a TLS context), and stopping a standalone server
on SIGINT/SIGTERM. Must not: build applications.
"""

from __future__ import annotations

import asyncio
import signal
import ssl
from dataclasses import dataclass

from aiohttp import web


@dataclass(frozen=True, slots=True)
class Listening:
    runner: web.AppRunner  # clean it up to stop serving
    url: str  # e.g. http://127.0.0.1:43121
    port: int


async def listen(
    app: web.Application,
    host: str = "127.0.0.1",
    port: int = 0,
    ssl_context: ssl.SSLContext | None = None,
) -> Listening:
    """Serve ``app`` on ``host:port`` (0 = any free port). Raises OSError if it cannot."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port, ssl_context=ssl_context)
    try:
        await site.start()
    except OSError:
        await runner.cleanup()
        raise
    sockets = getattr(site._server, "sockets", None) or []
    actual = sockets[0].getsockname()[1] if sockets else port
    scheme = "https" if ssl_context else "http"
    url_host = f"[{host}]" if ":" in host else host
    return Listening(runner, f"{scheme}://{url_host}:{actual}", actual)


def stop_on_signal() -> asyncio.Event:
    """An event set by SIGINT or SIGTERM (call it before start-up, from the running loop)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop
