"""The aiohttp driver of enrollment: runs :func:`emulator.enroll.flow.enrollment` over HTTP.

Owns: sending each request of the flow on the run's HTTP client (so it trusts what the
devices trust, ``--server-ca``), with a timeout and a response size cap; a TLS client
certificate for the Certificate policy; asking for a Federated token (the scenario's, or
the ``enroll_token`` hook's answer); and mapping network failures to
:class:`~emulator.enroll.flow.EnrollFailed` ("unreachable", "timeout", "tls": the server's
certificate is not trusted, or it refused the device's).
Must not: decide anything about the protocol (the flow does) or touch device state.
"""

from __future__ import annotations

import asyncio
import functools
import ssl
from collections.abc import Awaitable, Callable

import aiohttp

from emulator.enroll.flow import (
    DeviceFacts,
    Enrolled,
    EnrollFailed,
    EnrollSettings,
    HttpRequest,
    HttpResponse,
    TokenNeeded,
    enrollment,
)
from emulator.enroll.keys import KeyPool
from emulator.enroll.soap import MAX_SOAP_BYTES
from emulator.serving import read_capped

#: asks for a Federated token: (device id, AuthenticationServiceUrl) -> token or None
TokenSource = Callable[[str, str], Awaitable[str | None]]


class Enroller:
    def __init__(
        self,
        http: aiohttp.ClientSession,
        pool: KeyPool,
        seed: int,
        *,
        token_source: TokenSource | None = None,
        ca_file: str | None = None,
        timeout_s: float = 30.0,
    ) -> None:
        self.http = http
        self.pool = pool
        self.seed = seed
        self.token_source = token_source
        self.ca_file = ca_file  # trust for the Certificate policy's own TLS context
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)

    async def enroll(self, settings: EnrollSettings, facts: DeviceFacts) -> Enrolled:
        """Enroll one device; raises :class:`EnrollFailed` whatever goes wrong."""
        flow = enrollment(settings, facts, self.pool.for_device(self.seed, facts.device_id))
        try:
            step = next(flow)
            while True:
                if isinstance(step, TokenNeeded):
                    token = None
                    if self.token_source is not None:
                        token = await self.token_source(facts.device_id, step.auth_url)
                    step = flow.send(token or "")
                else:
                    step = flow.send(await self._send(step))
        except StopIteration as done:
            result: Enrolled = done.value
            return result

    async def _send(self, request: HttpRequest) -> HttpResponse:
        extra: dict[str, object] = {}
        if request.client_cert is not None:
            extra["ssl"] = _client_context(self.ca_file, *request.client_cert)
        try:
            async with self.http.request(
                request.method,
                request.url,
                data=request.body or None,
                headers=request.headers,
                timeout=self.timeout,
                **extra,  # type: ignore[arg-type]
            ) as resp:
                body = await read_capped(resp, MAX_SOAP_BYTES + 1)
                return HttpResponse(resp.status, resp.content_type, body)
        except TimeoutError:
            raise EnrollFailed(request.stage, "timeout", f"no answer from {request.url}") from None
        except aiohttp.ClientSSLError as exc:  # before ClientError: it is one
            raise EnrollFailed(request.stage, "tls", f"{request.url}: TLS failed: {exc}") from None
        except (aiohttp.ClientError, OSError, asyncio.IncompleteReadError, ValueError) as exc:
            raise EnrollFailed(
                request.stage, "unreachable", f"{request.url}: {type(exc).__name__}: {exc}"
            ) from None


@functools.lru_cache(maxsize=8)
def _client_context(ca_file: str | None, cert: str, key: str) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=ca_file)
    context.load_cert_chain(cert, key)
    return context
