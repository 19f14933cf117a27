"""State of the fake WNS as plain records (moto's ``models.py``).

Owns: the data each store keeps, with a comment per field.
Must not: validate requests, decide outcomes, or do I/O.
"""

from __future__ import annotations

import functools
from collections.abc import ItemsView, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol
from urllib.parse import parse_qs

from emulator.logs import redact, redact_authorization


class HeaderPairs(Protocol):
    """Request headers that list as (name, value) pairs: aiohttp's CIMultiDictProxy fits."""

    def items(self) -> ItemsView[str, str]: ...


class RequestLine(Protocol):
    """What a record keeps of a request besides its body: aiohttp's Request fits."""

    @property
    def method(self) -> str: ...

    @property
    def raw_path(self) -> str: ...

    @property
    def headers(self) -> HeaderPairs: ...


HeaderList = tuple[tuple[str, str], ...]  # headers as received: (name, value), in order

RAW_LIMIT_BYTES = 5000  # [WNSHDR] 413 "exceeds the 5000 byte size limit"; section 0


@dataclass(frozen=True, slots=True)
class App:
    """An app registered with WNS: what a sender authenticates as and what devices use."""

    sid: str  # Package SID, bare form "S-1-15-2-..."
    secret: str  # client_secret; never logged or reported
    pfn: str  # Package Family Name devices register with (DMClient Push/PFN [DMC])

    @property
    def client_id(self) -> str:
        """The token request's client_id: ``ms-app://<SID>`` [WNSOV][FLEET-WNS]."""
        return f"ms-app://{self.sid}"


@dataclass(slots=True)
class AccessToken:
    """A bearer token issued by ``/accesstoken.srf``."""

    value: str  # the opaque bearer string
    sid: str  # app it was issued to: notifications are scoped to its channels
    issued_ms: int  # emulated time of issue
    expires_ms: int  # after this, notify answers 401 [QS] "expires after 24 hours"
    revoked: bool = False  # revoked through the control API (provokes 401 early)


@dataclass(slots=True)
class Push:
    """One notification WNS accepted for a channel."""

    msg_id: str  # X-WNS-Msg-ID returned to the sender [WNSHDR]
    wns_type: str  # wns/raw | wns/toast | wns/tile | wns/badge
    payload: bytes  # the body as sent (raw pushes for MDM carry no meaning [PUSH])
    received_ms: int  # when WNS accepted it
    cache: bool  # X-WNS-Cache-Policy resolved against the type's default
    expires_ms: int | None  # from X-WNS-TTL; None = no TTL given (cache period applies)
    priority: int  # X-WNS-PRIORITY, defaulted per type [PRIO]

    def summary(self) -> dict[str, Any]:
        return {
            "msg_id": self.msg_id,
            "type": self.wns_type,
            "bytes": len(self.payload),
            "received_ms": self.received_ms,
            "cache": self.cache,
            "expires_ms": self.expires_ms,
            "priority": self.priority,
        }


@dataclass(slots=True)
class Delivery:
    """A push handed to the device over its persistent connection."""

    push: Push
    delivered_ms: int  # when the device got it
    via: str  # "live" (device connected) or "cache" (delivered on reconnect)


@dataclass(slots=True)
class Endpoint:
    """A device's persistent connection to WNS (Battery Saver / Data Sense drop it [PUSH])."""

    device_id: str
    status: str = "connected"  # connected | disconnected | tempdisconnected [WNSHDR]


@dataclass(slots=True)
class Channel:
    """A ChannelURI: issued per (device, PFN), valid 30 days [PUSH][WNSOV]."""

    id: str  # short handle for the control API ("ch-" and 12 hex digits)
    token: str  # the decoded value of the URI's `token` query parameter
    uri: str  # the ChannelURI exactly as handed to the device (opaque to senders)
    sid: str  # app that owns it (via its PFN): only that app's tokens may push [WNSHDR] 403
    pfn: str  # Package Family Name it was registered with
    device_id: str  # the device whose connection receives its pushes
    endpoint: Endpoint  # that device's connection, shared by all its channels
    issued_ms: int  # emulated time of issue
    expires_ms: int  # issue + channel TTL; pushes after it get 410 [WNSHDR]
    revoked: bool = False  # revoked (PFN deleted/replaced, or by the control API): 410
    superseded_by: str | None = None  # id of the channel a renewal replaced it with
    cached: dict[str, Push] = field(default_factory=dict)  # one per type, newest wins [RAW]
    delivered: list[Delivery] = field(default_factory=list)  # newest last, bounded
    recent: list[int] = field(default_factory=list)  # accepted-push times in the rate window
    pushes: int = 0  # pushes accepted so far: the Msg-ID stream's position

    def state(self, now: int, blocked: bool) -> str:
        if blocked:
            return "blocked"
        if self.revoked:
            return "revoked"
        if now >= self.expires_ms:
            return "expired"
        if self.superseded_by is not None:
            return "superseded"
        return "active"


class RequestRecord(NamedTuple):
    """One request the fake WNS served. Kept raw (cheap on the hot path); every view of it
    goes through :meth:`as_json`, which redacts secrets, so none leaves the process.

    A NamedTuple, built by :func:`new_record` from a plain tuple: one is made per request.
    """

    seq: int  # order of arrival
    t_ms: int  # emulated time it was served
    kind: str  # "token" | "notify"
    method: str
    target: str  # path and query as received
    headers: HeaderList  # request headers as received, often shared (redacted on output)
    body: bytes  # request body as received, at most the read limit (redacted on output)
    status: int  # HTTP status answered
    outcome: str  # received / dropped / cached / channelthrottled / error text
    msg_id: str | None  # X-WNS-Msg-ID on success
    channel_id: str | None  # resolved channel, when known
    sid: str | None  # app, when known
    response_headers: Mapping[str, str]  # as answered

    def as_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "t_ms": self.t_ms,
            "kind": self.kind,
            "method": self.method,
            "target": self.target,
            "headers": {
                str(k): (redact_authorization(v) if k.lower() == "authorization" else v)
                for k, v in self.headers
            },
            "body_bytes": len(self.body),
            "body": shown_body(self.kind, self.body),
            "status": self.status,
            "outcome": self.outcome,
            "msg_id": self.msg_id,
            "channel_id": self.channel_id,
            "sid": self.sid,
            "response_headers": dict(self.response_headers),
        }


#: ``new_record((seq, t_ms, ...))``: a RequestRecord from a tuple of all its fields, in order,
#: without the keyword-argument ``__new__`` (what ``namedtuple._make`` does, minus a call).
new_record = functools.partial(tuple.__new__, RequestRecord)


def shown_body(kind: str, body: bytes) -> str:
    """A body for people: the token form with its secret redacted, or the push payload."""
    if kind == "token":
        try:
            form = parse_qs(body.decode("utf-8"), keep_blank_values=True, max_num_fields=32)
        except (UnicodeDecodeError, ValueError):
            return f"<unparsable form, {len(body)} bytes>"
        shown = redact({k: v[0] if len(v) == 1 else v for k, v in form.items()})
        return "&".join(f"{k}={v}" for k, v in shown.items())
    text = body[:RAW_LIMIT_BYTES].decode("latin-1")
    return text if len(body) <= RAW_LIMIT_BYTES else text + f"... ({len(body)} bytes)"
