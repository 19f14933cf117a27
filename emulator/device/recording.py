"""A transport that keeps every SyncML exchange a device had, for judges and tests.

Owns: wrapping any :class:`~emulator.device.session.Transport`, parsing both sides of each
exchange once, and keeping the server's raw reply when it was not SyncML (as evidence).
Must not: change what is sent or answered.
"""

from __future__ import annotations

from dataclasses import dataclass
from ssl import SSLContext

from emulator.clock import Clock
from emulator.device.session import Reply, Transport
from emulator.syncml import Message, SyncMLError, parse


@dataclass(frozen=True, slots=True)
class Exchange:
    """One device message and the server's reply, as the device saw them."""

    device_id: str
    session_id: str
    t_ms: int  # emulated time the reply arrived
    sent: Message
    status: int  # HTTP status of the reply
    reply: Message | None  # None when the reply was not SyncML
    raw_reply: bytes  # kept only when ``reply`` is None (the evidence), else b""


class RecordingTransport:
    def __init__(self, clock: Clock, inner: Transport) -> None:
        self.clock = clock
        self.inner = inner
        self.exchanges: list[Exchange] = []

    async def post(
        self, url: str, headers: dict[str, str], body: bytes, tls: SSLContext | None = None
    ) -> Reply:
        reply = await self.inner.post(url, headers, body, tls)
        sent = parse(body)
        try:
            answer: Message | None = parse(reply.body) if reply.status == 200 else None
        except SyncMLError:
            answer = None
        self.exchanges.append(
            Exchange(
                sent.header.source,
                sent.header.session_id,
                self.clock.now(),
                sent,
                reply.status,
                answer,
                b"" if answer is not None else reply.body[:4096],
            )
        )
        return reply
