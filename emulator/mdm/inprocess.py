"""The built-in server reached in process, without sockets (``dmemu run --transport memory``).

Owns: a device :class:`~emulator.device.session.Transport` that hands each SyncML message
(the same bytes, through the same codec) to the reference server's OMA-DM endpoint as its
HTTP route would (:func:`emulator.mdm.app.serve_message`), so a run against the built-in
server pays for no HTTP. Pushes still go to the fake WNS over loopback HTTP, and devices
still enroll over HTTPS; without TLS on this path the endpoint cannot see client
certificates, so a run on it does not require them.
Must not: change what the server decides.
"""

from __future__ import annotations

from ssl import SSLContext

from emulator.device.session import Reply
from emulator.mdm.app import serve_message
from emulator.mdm.server import ReferenceServer
from emulator.syncml import MAX_MESSAGE_BYTES


class InProcessTransport:
    def __init__(self, server: ReferenceServer) -> None:
        self.server = server

    async def post(
        self, url: str, headers: dict[str, str], body: bytes, tls: SSLContext | None = None
    ) -> Reply:
        content_type = headers.get("Content-Type", "").split(";")[0].strip().lower()
        return serve_message(
            self.server,
            content_type,
            body,
            too_big=len(body) > MAX_MESSAGE_BYTES,
            authorization=headers.get("Authorization", ""),
            origin=headers.get("UserAgentOrigin"),
            client_cert=None,
            remote="in-process",
        )
