"""Starting and stopping a fake WNS on a real socket (CLI, demo, benchmarks, loopback tests).

Owns: the aiohttp runner and site, learning the port when 0 was asked for, and pointing the
ChannelURI base at the address actually served. Must not: parse user input.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass

from aiohttp import web

from emulator.clock import Clock
from emulator.serving import listen
from emulator.wns.app import make_wns_app
from emulator.wns.service import WnsConfig, WnsService


@dataclass
class RunningWns:
    runner: web.AppRunner
    service: WnsService
    clock: Clock
    url: str  # base URL actually served, e.g. http://127.0.0.1:43121
    port: int

    @property
    def token_url(self) -> str:
        return f"{self.url}/accesstoken.srf"

    async def stop(self) -> None:
        await self.runner.cleanup()


async def start_wns(
    config: WnsConfig,
    clock: Clock,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    ssl_context: ssl.SSLContext | None = None,
    public_url: str | None = None,
) -> RunningWns:
    """Serve a fake WNS on ``host:port`` (0 = any free port). Raises OSError if it cannot."""
    service = WnsService(config, clock)
    served = await listen(make_wns_app(service, clock), host, port, ssl_context)
    service.set_base_url(public_url or served.url)
    return RunningWns(
        runner=served.runner, service=service, clock=clock, url=served.url, port=served.port
    )
