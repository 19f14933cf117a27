"""A trap listener: a loopback host that is *not* WNS, recording whatever is sent to it.

Owns: serving any method on any path with 200 and keeping each request (time on the clock,
method, target, headers with secrets redacted, body size), so a server that pushes to a
ChannelURI outside the trusted WNS domain is caught with the request as evidence
(conformance B5 [WNSOV]). Must not: answer like WNS (a careful server never gets here).
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass

from aiohttp import web

from emulator.clock import Clock
from emulator.logs import redact
from emulator.serving import listen

MAX_BODY = 64 * 1024
#: where the trap listens: another loopback address than WNS's where the system has one
#: (Linux routes all of 127.0.0.0/8 to lo), else WNS's own with another port
TRAP_HOSTS = ("127.0.0.2", "127.0.0.1")


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

    async def start(
        self, hosts: tuple[str, ...] = TRAP_HOSTS, ssl_context: ssl.SSLContext | None = None
    ) -> str:
        """Listen on the first of ``hosts`` that can be bound: by default 127.0.0.2, an
        address other than the fake WNS's (127.0.0.1), so a server that trusts the WNS host
        by name (the production rule is a domain check [WNSOV]) is not caught for it."""
        for i, host in enumerate(hosts):
            app = web.Application()
            app.router.add_route("*", "/{tail:.*}", self._record)
            try:
                served = await listen(app, host, ssl_context=ssl_context)
            except OSError:
                if i + 1 == len(hosts):
                    raise
                continue
            self._runner, self.url = served.runner, served.url
            break
        return self.url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
