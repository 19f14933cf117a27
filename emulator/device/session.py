"""Running one OMA-DM session of a device over a transport: package 1 to the last reply.

Owns: package 1 (Alert 1201 + Alert 1224 LoginStatus + the DevInfo Replace [MSMDM 4],
section 0), the request headers Windows sends [MSMDM 2.1], the message loop through the
sans-I/O :class:`ClientSession`, HTTP 429 Retry-After [MSMDM 3.1.6], and turning every way a
server can misbehave (HTTP error, wrong content type, malformed XML, broken session rules)
into a recorded server fault with the offending bytes. The device is never harmed.
Must not: know whether the transport is HTTP or in memory, or decide what the device does
next (the agent does, from the returned :class:`SessionEnd`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from ssl import SSLContext
from typing import Any, NamedTuple, Protocol

from emulator.device.agent import ORIGIN, Device, SessionEnd
from emulator.device.csp import CspTree
from emulator.retry_after import retry_after_ms
from emulator.syncml import (
    CONTENT_TYPE,
    Alert,
    Item,
    Message,
    Meta,
    Replace,
    Results,
    SyncMLError,
    parse,
    serialize,
)
from emulator.syncml.codec import EXCERPT_BYTES
from emulator.syncml.session import ClientSession

USER_AGENT = "MSFT OMA DM Client/1.2.0.1"  # [MSMDM 2.1]
#: server faults that end the session at once: the reply is not SyncML the device can read
SESSION_BREAKING = ("content-type", "malformed")
MAX_RETRY_AFTER_MS = 24 * 3600 * 1000


class Reply(NamedTuple):
    status: int
    headers: Mapping[str, str]
    body: bytes


class TransportError(Exception):
    """The server could not be reached: ``kind`` is "unreachable" or "timeout"."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(detail)
        self.kind = kind
        self.detail = detail


class Transport(Protocol):
    async def post(
        self, url: str, headers: dict[str, str], body: bytes, tls: SSLContext | None = None
    ) -> Reply:
        """POST one message; ``tls``: the device's own TLS context (its enrollment client
        certificate [MSMDM 3.1]), for a device that enrolled."""
        ...


Emit = Callable[..., None]  # emit(event, **fields)


#: Package 1's Alerts, the same in every session (model objects are immutable, so shared).
CLIENT_INITIATED = Alert("1", "1201")  # for every trigger (section 0)
LOGIN_STATUS = Alert(
    "2", "1224", (Item(meta=Meta(type="com.microsoft/MDM/LoginStatus"), data="none"),)
)
_DEVINFO_AFTER_ID = ("Man", "Mod", "DmV", "Lang")


@functools.lru_cache(maxsize=256)  # a fleet has a few device models
def _devinfo_tail(values: tuple[str, ...]) -> tuple[Item, ...]:
    """DevInfo items after DevId, shared by every device reporting the same values."""
    return tuple(
        Item(source=f"./DevInfo/{key}", data=value)
        for key, value in zip(_DEVINFO_AFTER_ID, values, strict=True)
    )


def package1(device: Device, session: ClientSession) -> Message:
    """The session-opening message (protocol.md 3.4 and section 0)."""
    tail = _devinfo_tail(tuple(device.computed(key) for key in _DEVINFO_AFTER_ID))
    devid = Item(source="./DevInfo/DevId", data=device.computed("DevId"))
    return session.start((CLIENT_INITIATED, LOGIN_STATUS, Replace("3", (devid, *tail))))


def request_url(server_url: str) -> str:
    """``?mode=Machine&Platform=WoA`` [MSMDM 2.1]."""
    sep = "&" if "?" in server_url else "?"
    return f"{server_url}{sep}mode=Machine&Platform=WoA"


def request_headers(device: Device, trigger: str) -> dict[str, str]:
    headers = {
        "Content-Type": f"{CONTENT_TYPE}; charset=utf-8",
        "Accept": f"{CONTENT_TYPE}, application/octet-stream",
        "User-Agent": USER_AGENT,
    }
    if _version(device.group.app_version) >= 4.0:  # [MSMDM 3.1.7.2]
        headers["UserAgentOrigin"] = str(ORIGIN.get(trigger, 2))
    return headers


def _version(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return 0.0


async def run_session(
    device: Device,
    trigger: str,
    msg_id: str | None,
    transport: Transport,
    emit: Emit,
    settle: Callable[[CspTree], None] | None = None,
    tls: SSLContext | None = None,
) -> SessionEnd:
    """One full session; every failure becomes a :class:`SessionEnd`, never an exception.

    ``settle(tree)`` is called before the server reads Push/ChannelURI or Push/Status, and
    at the latest at the end of each server message, so a PFN it wrote takes effect while the
    session is open (section 0); a device whose ``pfn_hang`` struck then sends nothing more."""
    session = ClientSession(device.next_session_id(), device.device_id, device.group.server_url)
    ids: dict[str, Any] = {"session_id": session.session_id, "trigger": trigger}
    emit("session.start", msg_id=msg_id, **ids)
    url = request_url(device.group.server_url)  # the enrolled address [DMC-2017]
    headers = request_headers(device, trigger)
    tree = device.tree()
    if settle is not None:
        tree.before_push_read = functools.partial(settle, tree)
    message: Message | None = package1(device, session)
    nbytes = 0

    def end(ok: bool, outcome: str, retry_after: int | None = None) -> SessionEnd:
        emit("session.end", outcome=outcome, messages=session.next_msg_id - 1, bytes=nbytes, **ids)
        return SessionEnd(trigger, ok, outcome, retry_after, nbytes, frozenset(tree.touched))

    def fault(rule: str, detail: str, body: bytes = b"") -> None:
        emit(
            "session.server_fault",
            rule=rule,
            detail=detail,
            excerpt=body[:EXCERPT_BYTES].decode("utf-8", "replace"),
            **ids,
        )

    while message is not None:
        body = serialize(message)
        nbytes += len(body)
        try:
            reply = await transport.post(url, headers, body, tls)
        except TransportError as exc:
            emit("session.transport_error", kind=exc.kind, detail=exc.detail, **ids)
            return end(False, exc.kind)
        nbytes += len(reply.body)
        if reply.status == 429:
            wait = retry_after_ms(reply.headers.get("Retry-After"), cap_ms=MAX_RETRY_AFTER_MS)
            emit("session.throttled", retry_after_ms=wait, **ids)
            return end(False, "http-429", wait)
        if reply.status != 200:
            fault("http-status", f"HTTP {reply.status}", reply.body)
            return end(False, f"http-{reply.status}")
        ctype = reply.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if ctype != CONTENT_TYPE:
            fault(
                "content-type",
                f"Content-Type {ctype or '(none)'!r}, not {CONTENT_TYPE}",
                reply.body,
            )
            return end(False, "server-fault")
        try:
            parsed = parse(reply.body)
        except SyncMLError as exc:
            fault("malformed", f"{exc.path}: {exc.problem}", exc.excerpt or reply.body)
            return end(False, "server-fault")
        seen = len(session.faults)
        message = session.receive(parsed, tree.execute)
        for f in session.faults[seen:]:
            fault(f.rule, f.detail, reply.body)
        if settle is not None:
            settle(tree)  # a PFN this message wrote takes effect before the device answers
        if device.session_hung:  # pfn_hang [PUSH]: the device sends nothing more
            device.session_hung = False
            return end(False, "hung")
        if message is not None:
            _note_channel_report(device, message, emit, ids)
    return end(True, "ended")


def _note_channel_report(device: Device, message: Message, emit: Emit, ids: dict[str, Any]) -> None:
    """Log when the device tells the server a ChannelURI it has not told it before, so a
    renewal can be followed to the session that reported it [PUSH][KI]."""
    for cmd in message.commands:
        if isinstance(cmd, Results):
            for item in cmd.items:
                uri = item.data
                source = item.source or ""
                if uri and source.endswith("/Push/ChannelURI") and uri != device.reported_uri:
                    device.reported_uri = uri
                    emit("session.channel_reported", channel_uri=uri, **ids)
