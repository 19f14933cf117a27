"""The reference MDM server assembled: store, OMA-DM endpoint, pusher, WNS sender, socket.

Owns: building the parts from an :class:`~emulator.mdm.config.MdmConfig`, the aiohttp client
session its WNS sender uses (trusting a local CA file when the fake WNS serves TLS), and
serving it on a real socket for ``dmemu mdm``, ``dmemu run`` and loopback tests.
Must not: parse user input (``cli.py``) or judge protocol (the parts do).
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

import aiohttp
from aiohttp import web
from aiohttp.abc import AbstractResolver

from emulator.clock import Clock
from emulator.logs import get_logger
from emulator.mdm.app import OMADM_PATH, make_mdm_app
from emulator.mdm.ca import EnrollmentCa
from emulator.mdm.config import MdmConfig
from emulator.mdm.omadm import OmaDmEndpoint
from emulator.mdm.pusher import Pusher
from emulator.mdm.store import MdmStore
from emulator.mdm.wns_sender import WnsSender
from emulator.serving import listen


class ReferenceServer:
    """Everything the reference server is, without a socket (tests mount its app)."""

    def __init__(
        self,
        config: MdmConfig,
        clock: Clock,
        *,
        db: str | Path = ":memory:",
        resolver: AbstractResolver | None = None,
    ) -> None:
        self.config = config
        self.clock = clock
        self.log = get_logger("mdm", clock)
        self.store = MdmStore(db)
        self.endpoint = OmaDmEndpoint(config, self.store, self.log)
        self.ca = EnrollmentCa(self.store, clock.now(), config.ca_key_label)
        context: ssl.SSLContext | bool = (
            ssl.create_default_context(cafile=config.wns_ca_file) if config.wns_ca_file else True
        )
        self.http = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=context, limit=64, resolver=resolver),
            timeout=aiohttp.ClientTimeout(total=30),
        )
        sender = WnsSender(
            self.http,
            clock,
            token_url=config.token_url,
            client_id=config.app.client_id,
            client_secret=config.app.secret,
            trusted_hosts=config.trusted_hosts,
            ttl_s=config.push_ttl_s,
        )
        self.pusher = Pusher(config, self.store, clock, sender, self.log)

    def app(self) -> web.Application:
        return make_mdm_app(self)

    async def close(self) -> None:
        self.pusher.cancel_all()
        await self.http.close()
        self.store.close()


@dataclass
class RunningMdm:
    server: ReferenceServer
    runner: web.AppRunner
    url: str  # base URL actually served, e.g. http://127.0.0.1:41200
    port: int

    @property
    def omadm_url(self) -> str:
        """The management URL devices enroll with (ManagementServiceAddress [DMC-2017])."""
        return f"{self.url}{OMADM_PATH}"

    async def stop(self) -> None:
        await self.runner.cleanup()
        await self.server.close()


async def start_mdm(
    server: ReferenceServer,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    ssl_context: ssl.SSLContext | None = None,
    require_client_cert: bool = True,
) -> RunningMdm:
    """Serve ``server`` on ``host:port`` (0 = any free port), over TLS with ``ssl_context``.
    Raises OSError if it cannot.

    Over TLS the context is set to ask for a client certificate from the server's
    enrollment CA, and the OMA-DM endpoint then serves only devices presenting the one it
    issued them [MDE2][MSMDM 3.1] (``require_client_cert``; off for a run whose fleet has
    devices assumed enrolled): a certificate of another CA fails the TLS handshake."""
    if ssl_context is not None:
        ssl_context.verify_mode = ssl.CERT_OPTIONAL
        ssl_context.load_verify_locations(cadata=server.ca.pem.decode())
        server.endpoint.require_client_cert = require_client_cert
    served = await listen(server.app(), host, port, ssl_context)
    return RunningMdm(server, served.runner, served.url, served.port)
