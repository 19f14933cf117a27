"""The aiohttp driver: a device session's messages as real HTTP POSTs to an MDM server.

Owns: one shared aiohttp client session for the fleet (keep-alive, bounded connections), the
server authentication options of issue 3 (none, Basic, Bearer, TLS client certificate
[MSMDM 3.1][SRV]), a response size limit (one byte over the SyncML limit, so the codec
reports the oversize body as the server's fault), and mapping network failures to
:class:`TransportError` ("unreachable", "timeout").
Must not: interpret SyncML or decide retries (the session runner and the agent do).
"""

from __future__ import annotations

import asyncio
import ssl
from collections import OrderedDict
from dataclasses import dataclass

import aiohttp
from aiohttp.abc import AbstractResolver

from emulator.device.session import Reply, TransportError
from emulator.serving import read_capped, request_once_more
from emulator.syncml import MAX_MESSAGE_BYTES

DEVICE_CLIENTS = 32  # enrolled devices whose connection is kept alive between messages


@dataclass(frozen=True, slots=True)
class ServerAuth:
    kind: str = "none"  # none | basic | bearer | cert
    user: str = ""
    password: str = ""  # never logged
    token: str = ""  # never logged
    cert_file: str | None = None  # client certificate (PEM) for "cert"
    key_file: str | None = None
    ca_file: str | None = None  # trust for the server's certificate


def parse_auth(text: str, ca_file: str | None = None) -> ServerAuth:
    """``none``, ``basic:USER:PASSWORD``, ``bearer:TOKEN`` or ``cert:CERT.pem[:KEY.pem]``
    (the ``--device-auth`` option); raises ValueError with what is wrong."""
    kind, _, rest = text.partition(":")
    if kind == "none" and not rest:
        return ServerAuth("none", ca_file=ca_file)
    if kind == "basic":
        user, sep, password = rest.partition(":")
        if not user or not sep:
            raise ValueError("basic needs basic:USER:PASSWORD")
        return ServerAuth("basic", user=user, password=password, ca_file=ca_file)
    if kind == "bearer" and rest:
        return ServerAuth("bearer", token=rest, ca_file=ca_file)
    if kind == "cert" and rest:
        cert, _, key = rest.partition(":")
        return ServerAuth("cert", cert_file=cert, key_file=key or cert, ca_file=ca_file)
    raise ValueError(
        f"{text!r}: use none, basic:USER:PASSWORD, bearer:TOKEN or cert:CERT.pem[:KEY.pem]"
    )


def server_ssl(auth: ServerAuth) -> ssl.SSLContext | bool:
    """TLS toward the server: the system's trust, or ``--server-ca``; with ``cert:`` the
    device's client certificate [MSMDM 3.1]."""
    if auth.ca_file is None and auth.kind != "cert":
        return True
    context = ssl.create_default_context(cafile=auth.ca_file)
    if auth.kind == "cert" and auth.cert_file:
        context.load_cert_chain(auth.cert_file, auth.key_file)
    return context


class HttpTransport:
    def __init__(
        self,
        auth: ServerAuth = ServerAuth(),
        *,
        timeout_s: float = 30.0,
        connections: int = 256,
        resolver: AbstractResolver | None = None,
    ) -> None:
        self.auth = auth
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)
        self.connections = connections
        self.resolver = resolver  # stable names for loopback servers (emulator.loopback)
        self._session: aiohttp.ClientSession | None = None
        #: enrolled devices' own clients (their TLS context, hence their connection), the
        #: most recently used kept: see :meth:`_device_client`
        self._device_clients: OrderedDict[int, tuple[ssl.SSLContext, aiohttp.ClientSession]]
        self._device_clients = OrderedDict()
        self._headers: dict[str, str] = {}
        if auth.kind == "basic":
            self._headers["Authorization"] = aiohttp.encode_basic_auth(auth.user, auth.password)
        elif auth.kind == "bearer":
            self._headers["Authorization"] = f"Bearer {auth.token}"

    def client(self) -> aiohttp.ClientSession:
        """The one HTTP client for the server under test: device sessions, and the reach
        probe and hook calls of a run, so all trust the same CA and present the same client
        certificate."""
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(
                limit=self.connections, ssl=server_ssl(self.auth), resolver=self.resolver
            )
            self._session = aiohttp.ClientSession(connector=connector, timeout=self.timeout)
        return self._session

    async def post(
        self, url: str, headers: dict[str, str], body: bytes, tls: ssl.SSLContext | None = None
    ) -> Reply:
        async def read(resp: aiohttp.ClientResponse) -> Reply:
            return Reply(
                resp.status, dict(resp.headers), await read_capped(resp, MAX_MESSAGE_BYTES + 1)
            )

        client = self.client() if tls is None else await self._device_client(tls)
        try:
            return await request_once_more(
                client, "POST", url, read, data=body, headers={**headers, **self._headers}
            )
        except TimeoutError as exc:
            raise TransportError("timeout", f"no answer from {url}") from exc
        except (aiohttp.ClientError, OSError, asyncio.IncompleteReadError) as exc:
            raise TransportError("unreachable", f"{type(exc).__name__}: {exc}") from exc

    async def _device_client(self, tls: ssl.SSLContext) -> aiohttp.ClientSession:
        """The client of one enrolled device: its own connection, kept alive across the
        messages of its session, for the last DEVICE_CLIENTS devices. One shared pool would
        keep an idle TLS connection per device (aiohttp's limit counts only connections in
        use), ~1.5 MB each with the server's side: 3 GB for a 1,000-device fleet."""
        key = id(tls)
        found = self._device_clients.get(key)
        if found is not None and found[0] is tls and not found[1].closed:
            self._device_clients.move_to_end(key)
            return found[1]
        connector = aiohttp.TCPConnector(limit=2, ssl=tls, resolver=self.resolver)
        client = aiohttp.ClientSession(connector=connector, timeout=self.timeout)
        self._device_clients[key] = (tls, client)
        while len(self._device_clients) > DEVICE_CLIENTS:
            _, (_, oldest) = self._device_clients.popitem(last=False)
            await oldest.close()
        return client

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
        while self._device_clients:
            _, (_, client) = self._device_clients.popitem()
            await client.close()
