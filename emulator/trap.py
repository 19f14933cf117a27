"""A trap listener: a loopback host that is *not* WNS, recording whatever is sent to it.

Owns: serving any method on any path with 200 and keeping each request (time on the clock,
method, target, headers with secrets redacted, body size), so a server that pushes to a
ChannelURI outside the trusted WNS domain is caught with the request as evidence
(conformance B5 [WNSOV]). Must not: answer like WNS (a careful server never gets here).
"""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from emulator.clock import Clock
from emulator.logs import redact
from emulator.serving import listen

MAX_BODY = 64 * 1024


@dataclass(frozen=True, slots=True)
class TrapRequest:
    t_ms: int
    method: str
    target: str
    headers: dict[str, str]  # Authorization redacted
    body_bytes: int


class Trap:
    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.requests: list[TrapRequest] = []
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def _record(self, request: web.Request) -> web.Response:
        with self.clock.busy():
            body = await request.content.read(MAX_BODY)
            headers = redact(dict(request.headers))
            self.requests.append(
                TrapRequest(self.clock.now(), request.method, request.path_qs, headers, len(body))
            )
            return web.Response(text="trap: this host is not WNS")

    async def start(self, host: str = "127.0.0.1") -> str:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._record)
        served = await listen(app, host)
        self._runner, self.url = served.runner, served.url
        return self.url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
