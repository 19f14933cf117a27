"""Stable names for services on loopback ports, so a run's ChannelURIs do not depend on the
port the operating system handed out.

Owns: :class:`LoopbackNames`, an aiohttp resolver that maps fixed ``host[:port]`` names (e.g.
``wns.dmemu.test:80``) to the real loopback address and port, and falls back to the system
resolver for every other name. Like a hosts entry that can also carry a port.
Must not: serve anything.

Why: the event log of a scenario must be the same byte for byte in every run with the same
seed (architecture principle 6); ChannelURIs are in it, and a ChannelURI names WNS's host.
"""

from __future__ import annotations

import socket

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

WNS_NAME = "wns.dmemu.test"  # .test is reserved for testing (RFC 2606): never a real host
MDM_NAME = "mdm.dmemu.test"  # the built-in server, when devices enroll into it over HTTPS


class LoopbackNames(AbstractResolver):
    def __init__(self, names: dict[tuple[str, int], tuple[str, int]]) -> None:
        self.names = names  # (name, port as written) -> (address, real port)
        self._system = DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        target = self.names.get((host.lower(), port))
        if target is None:
            return await self._system.resolve(host, port, family)
        address, real_port = target
        return [
            ResolveResult(
                hostname=host,
                host=address,
                port=real_port,
                family=socket.AF_INET6 if ":" in address else socket.AF_INET,
                proto=0,
                flags=socket.AI_NUMERICHOST,
            )
        ]

    async def close(self) -> None:
        await self._system.close()
