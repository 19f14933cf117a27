"""The fake WNS service: the sans-I/O core that answers token and notification requests.

Owns: the order in which a request is judged (method, faults, auth, channel, app scope,
channel life, headers, payload, throttle), the success headers' values (Msg-ID, Debug-Trace,
MS-CV), handing deliveries to subscribers, and the record of every request served.
Must not: import aiohttp or read time; ``now`` comes in with every call.

Order of checks for ``POST <ChannelURI>`` (the first failure answers):
405 method -> injected fault -> 401 auth -> 404 channel -> 403 app scope -> 410 blocked /
revoked / expired -> 400 headers -> 413 payload -> 406 throttle -> 200 received|dropped.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import random
from collections import Counter, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from urllib.parse import parse_qs

from emulator.clock import Clock
from emulator.logs import get_logger
from emulator.wns import names
from emulator.wns.channels import (
    DEFAULT_CACHE_PERIOD_MS,
    DEFAULT_CHANNEL_TTL_MS,
    DEFAULT_RATE_LIMIT,
    ChannelRefused,
    ChannelRegistry,
)
from emulator.wns.errors import (
    ChannelNotFound,
    Forbidden,
    InjectedFault,
    OAuthError,
    Unauthorized,
)
from emulator.wns.faults import FaultBook
from emulator.wns.models import (
    AccessToken,
    App,
    Channel,
    Delivery,
    HeaderList,
    Push,
    RequestLine,
    RequestRecord,
    new_record,
)
from emulator.wns.notify import HeaderView, check_method, collect, kept, parse_notification
from emulator.wns.tokens import DEFAULT_TOKEN_TTL_MS, TokenService

Subscriber = Callable[[Channel, Delivery], None]

#: X-WNS-Status of an accepted push, by what WNS did with it [WNSHDR].
ACCEPTED_STATUS = {"live": "received", "cached": "received", "dropped": "dropped"}

#: Descriptions for injected statuses, in the words of [WNSHDR] 2.6.
FAULT_TEXT = {
    400: "One or more headers were specified incorrectly or conflict with another header.",
    401: "The cloud service did not present a valid authentication ticket.",
    403: "The cloud service is not authorized to send a notification to this URI.",
    404: "The channel URI is not valid or is not recognized by WNS.",
    406: "The cloud service exceeded its throttle limit.",
    410: "The channel expired.",
    413: "The notification payload exceeds the 5000 byte size limit.",
    500: "An internal failure caused notification delivery to fail.",
    503: "The server is currently unavailable.",
}


@dataclass(frozen=True, slots=True)
class WnsConfig:
    """Everything a fake WNS instance is configured with."""

    apps: tuple[App, ...]
    base_url: str = "http://127.0.0.1"  # public base of ChannelURIs (scheme://host[:port])
    seed: int = 0  # RNG seed: tokens, ChannelURIs and Msg-IDs are reproducible
    token_ttl_ms: int = DEFAULT_TOKEN_TTL_MS  # 24 h [QS]
    channel_ttl_ms: int = DEFAULT_CHANNEL_TTL_MS  # 30 days [PUSH]
    cache_period_ms: int = DEFAULT_CACHE_PERIOD_MS  # offline cache lifetime (section 0)
    renewal: str = "new"  # "new" URI on renewal, or "extend" the same URI
    rate_limit: tuple[int, int] | None = DEFAULT_RATE_LIMIT  # per channel: pushes per window ms
    record_limit: int = 10_000  # requests kept for inspection (oldest dropped first)
    blocked_pfns: tuple[str, ...] = ()


class Exchange:
    """What the core learned about one request, for the response headers and the record.

    One is made per request, so it is a plain class whose fields default at class level:
    making one runs no ``__init__``.
    """

    ms_cv: str = ""  # MS-CV echoed or generated [WNSHDR]
    debug_trace: str = ""  # X-WNS-Debug-Trace
    channel: Channel | None = None
    sid: str | None = None
    msg_id: str | None = None
    outcome: str = ""
    latency_ms: int = 0  # injected delay to apply before answering
    accepted: dict[str, str] | None = None  # the headers of a 200, once a push is accepted
    headers: HeaderList | None = None  # the request's headers for its record, once collected


class WnsService:
    """One fake WNS: apps, tokens, channels, faults, records."""

    def __init__(self, config: WnsConfig, clock: Clock) -> None:
        self.config = config
        self.clock = clock
        #: (kind, method, status, outcome) -> requests served since start, one increment per
        #: request on the hot path; /metrics derives its families from it (a reset keeps it:
        #: what /metrics counts only grows). An error outcome is kept as "error" alone, so
        #: what a sender writes into a header cannot grow it.
        self.served: Counter[tuple[str, str, int, str]] = Counter()
        self.log = get_logger("wns", clock)
        self.apps = {app.sid: app for app in config.apps}
        self.subscribers: dict[str, Subscriber] = {}
        self.fleet_subscriber: Subscriber | None = None  # devices without their own callback
        self.records: deque[RequestRecord] = deque(maxlen=config.record_limit)
        #: told of every request served, as it is recorded (a run streaming its log)
        self.on_record: Callable[[RequestRecord], None] | None = None
        self.base_url = config.base_url  # of ChannelURIs: the served URL once listening
        self.base_for: dict[str, str] = {}  # devices whose ChannelURIs name another host
        self._build()

    def _build(self) -> None:
        seed = self.config.seed
        self.tokens = TokenService(
            self.config.apps,
            random.Random(f"{seed}:tokens"),
            self.config.token_ttl_ms,
            key=f"dmemu-run:{seed}".encode(),
        )
        self.registry = ChannelRegistry(
            self.config.apps,
            seed,
            base_url=self.base_url,
            base_for=self.base_for,
            channel_ttl_ms=self.config.channel_ttl_ms,
            cache_period_ms=self.config.cache_period_ms,
            renewal=self.config.renewal,
            rate_limit=self.config.rate_limit,
        )
        for pfn in self.config.blocked_pfns:
            self.registry.block(pfn)
        self.faults = FaultBook()
        self._ids = random.Random(f"{seed}:ids")
        self._cv_base = base64.b64encode(self._ids.randbytes(12)).decode("ascii")
        self._seq = 0
        self.tokens_served = 0  # token requests among the _seq served

    def reset(self) -> None:
        """Forget tokens, channels, faults and records; keep apps, subscribers and where
        ChannelURIs point (the served URL or --public-url, trap hosts)."""
        self.records.clear()
        self._build()
        self.log.info("wns.reset")

    def set_base_url(self, base_url: str) -> None:
        """Set the ChannelURI base once the listening port is known (``--port 0``)."""
        self.base_url = self.registry.base_url = base_url.rstrip("/")

    # -- token endpoint -------------------------------------------------------------------
    def token(
        self, method: str, content_type: str | None, body: bytes, now: int, ex: Exchange
    ) -> AccessToken:
        """``POST /accesstoken.srf`` [WNSHDR] 2.1-2.2; raises :class:`OAuthError`."""
        self._start(ex, None)
        if method != "POST":
            raise OAuthError("invalid_request", f"use POST, not {method}", status=405)
        ex.sid = self._sid_of_form(body)
        latency, fault = self.faults.take("token", ex.sid, None)
        ex.latency_ms = latency
        if fault is not None and fault.status is not None:
            raise OAuthError(
                "temporarily_unavailable" if fault.status >= 500 else "invalid_request",
                fault.description or FAULT_TEXT.get(fault.status, "injected fault"),
                status=fault.status,
            )
        token = self.tokens.issue(content_type, body, now)
        ex.sid = token.sid
        ex.outcome = "issued"
        self.log.info("wns.token_issued", sid=token.sid, expires_ms=token.expires_ms)
        return token

    def _sid_of_form(self, body: bytes) -> str | None:
        try:
            client_id = parse_qs(body.decode("utf-8"), max_num_fields=32).get("client_id", [""])[0]
        except (UnicodeDecodeError, ValueError):
            return None
        app = self.tokens.apps_by_client_id.get(client_id)
        return app.sid if app else None

    # -- notification endpoint ------------------------------------------------------------
    def notify(
        self,
        method: str,
        raw_query: str,
        headers: HeaderView,
        body: bytes,
        *,
        declared_length: int | None,
        now: int,
        ex: Exchange,
    ) -> Push:
        """``POST <ChannelURI>`` [WNSHDR] 2.4-2.6; raises a :class:`NotifyError`.

        Every accepted push is in :attr:`records` (with its Msg-ID and outcome), so it is not
        logged again here: this is the hot path of every sender.
        """
        layout, values = collect(headers)
        ex.headers = kept(layout.names, values)
        self._start(ex, values[layout.ms_cv_at])
        check_method(method)
        channel = self.registry.find_by_query(raw_query)
        ex.channel = channel
        ex.sid = channel.sid if channel else None
        if self.faults.faults:
            self._take_fault(ex, channel)
        token = self._authenticate(values[layout.authorization_at], now)
        if channel is None:
            raise ChannelNotFound("The channel URI is not valid or is not recognized by WNS.")
        if token.sid != channel.sid:
            raise Forbidden(
                "The cloud service is not authorized to send a notification to this URI: "
                "the access token belongs to another app."
            )
        self.registry.check_usable(channel, now)
        rules = parse_notification(layout, values, body, declared_length=declared_length)
        self.registry.check_rate(channel, now)
        ttl_s = rules.ttl_s
        push = Push(
            self._msg_id(channel),
            rules.wns_type,
            body,
            now,
            rules.cache,
            None if ttl_s is None else now + ttl_s * 1000,
            rules.priority,
        )
        how, connection, delivery = self.registry.accept(channel, push, now)
        ex.msg_id = msg_id = push.msg_id
        status = ACCEPTED_STATUS[how]
        ex.outcome = "cached" if how == "cached" else status
        accepted: dict[str, str] = {
            names.MSG_ID: msg_id,
            names.STATUS: status,
            names.NOTIFICATION_STATUS: status,
        }
        ex.accepted = accepted
        if how == "dropped":
            accepted[names.ERROR_DESCRIPTION] = (
                "Device is offline; toast notifications are not stored."
                if push.wns_type == "wns/toast"
                else "Device is offline and X-WNS-Cache-Policy is no-cache"  # [WASDK-3677]
            )
        if rules.request_status:
            accepted[names.DEVICE_CONNECTION_STATUS] = connection
        if delivery is not None:
            self._hand_over(channel, delivery)
        return push

    def _take_fault(self, ex: Exchange, channel: Channel | None) -> None:
        """Apply the injected faults matching this notification: latency, then a status."""
        latency, fault = self.faults.take("notify", ex.sid, channel.id if channel else None)
        ex.latency_ms = latency
        if fault is not None and fault.status is not None:
            raise InjectedFault(
                fault.status,
                fault.description or FAULT_TEXT.get(fault.status, "Injected fault."),
                retry_after_s=fault.retry_after_s,
            )

    def _authenticate(self, authorization: str | None, now: int) -> AccessToken:
        if not authorization:
            raise Unauthorized("The Authorization header is missing.", token_presented=False)
        credential = _bearer_credential(authorization)
        if not credential:
            raise Unauthorized("The Authorization header must be 'Bearer <access token>'.")
        token = self.tokens.resolve(credential, now)
        if token is None:
            known = self.tokens.known(credential)
            if known is None:
                raise Unauthorized("The access token is invalid.")
            if known.revoked:
                raise Unauthorized("The access token has been revoked.")
            raise Unauthorized("Token expired.")
        return token

    # -- devices (the sans-I/O API device agents use) --------------------------------------
    def request_channel(self, device_id: str, pfn: str, now: int) -> Channel:
        """Register (or renew) a device's channel for ``pfn``; raises ChannelRefused."""
        try:
            channel = self.registry.request_channel(device_id, pfn, now)
        except ChannelRefused as exc:
            self.log.info("wns.channel_refused", device_id=device_id, pfn=pfn, reason=exc.reason)
            raise
        self.log.info(
            "wns.channel_issued",
            device_id=device_id,
            channel_id=channel.id,
            channel_uri=channel.uri,
            expires_ms=channel.expires_ms,
        )
        return channel

    def registration_delay(self, pfn: str) -> int:
        """How long WNS takes to answer a device's registration for ``pfn`` (ms): the
        latency of the ``register`` faults that match it (the control API's fault book)."""
        if not self.faults.faults:
            return 0
        app = self.registry.app_for(pfn)
        latency, _ = self.faults.take("register", app.sid if app else None, None)
        return latency

    def revoke_channel(self, channel: Channel) -> None:
        self.registry.revoke(channel)
        self.log.info("wns.channel_revoked", device_id=channel.device_id, channel_id=channel.id)

    def forget_channel(self, channel: Channel) -> None:
        self.registry.forget(channel)
        self.log.info("wns.channel_forgotten", device_id=channel.device_id, channel_id=channel.id)

    def subscribe(self, device_id: str, subscriber: Subscriber | None) -> None:
        """Register the callback that receives this device's pushes (None removes it)."""
        if subscriber is None:
            self.subscribers.pop(device_id, None)
        else:
            self.subscribers[device_id] = subscriber

    def set_connection(self, device_id: str, status: str, now: int) -> int:
        """Change a device's WNS connection; returns how many cached pushes were delivered."""
        delivered = self.registry.set_connection(device_id, status, now)
        self.log.info(
            "wns.connection", device_id=device_id, status=status, from_cache=len(delivered)
        )
        for channel, delivery in delivered:
            self._hand_over(channel, delivery)
        return len(delivered)

    def _hand_over(self, channel: Channel, delivery: Delivery) -> None:
        subscriber = self.subscribers.get(channel.device_id) or self.fleet_subscriber
        if subscriber is None:
            return
        try:
            subscriber(channel, delivery)
        except Exception:  # a faulty device must not fail the sender's request
            self.log.exception(
                "wns.subscriber_failed", device_id=channel.device_id, msg_id=delivery.push.msg_id
            )

    @property
    def requests_served(self) -> int:
        """Requests served since start (tokens and notifications), even past the record limit."""
        return self._seq

    @property
    def notifications_served(self) -> int:
        """Pushes served since start (what a run's summary counts as sent)."""
        return self._seq - self.tokens_served

    # -- records --------------------------------------------------------------------------
    def record(
        self,
        kind: str,
        request: RequestLine,
        body: bytes,
        status: int,
        ex: Exchange,
        response_headers: Mapping[str, str],
        now: int,
    ) -> RequestRecord:
        """Keep a request (``kind`` "token" or "notify") served from ``now`` (its start, before
        any injected latency) for inspection: references only on the hot path (the caller
        must not mutate ``response_headers`` afterwards); redacted when shown. A notification's
        headers are the pairs :func:`~emulator.wns.notify.kept` shares between requests."""
        self._seq += 1
        if kind == "token":
            self.tokens_served += 1
        self.served[(kind, request.method, status, ex.outcome.partition(":")[0])] += 1
        channel = ex.channel
        record: RequestRecord = new_record(
            (
                self._seq,
                now,
                kind,
                request.method,
                request.raw_path,
                ex.headers or tuple(request.headers.items()),
                body,
                status,
                ex.outcome,
                ex.msg_id,
                None if channel is None else channel.id,
                ex.sid,
                response_headers,
            )
        )
        self.records.append(record)
        if self.on_record is not None:
            self.on_record(record)
        return record

    # -- ids ------------------------------------------------------------------------------
    def _start(self, ex: Exchange, ms_cv: str | None) -> None:
        ex.ms_cv = ms_cv or self._new_cv()
        # %-formatting: ~1k instructions cheaper per push than a format spec (callgrind)
        ex.debug_trace = "DMEMU%08d" % (self._seq + 1)  # noqa: UP031

    def _msg_id(self, channel: Channel) -> str:
        """[WNSHDR] alphanumeric, at most 16 characters: from the channel's own stream (the
        n-th push it accepted), so a device's Msg-IDs do not depend on other devices."""
        channel.pushes += 1
        key = f"{self.config.seed}:msg:{channel.token}:{channel.pushes}".encode()
        return hashlib.blake2b(key, digest_size=8).hexdigest().upper()

    def _new_cv(self) -> str:
        # A correlation vector is "<base>.<extension>" [WNSHDR]: one random base per service
        # and the request number as extension gives each response its own value cheaply.
        return f"{self._cv_base}.{self._seq + 1}"


@functools.lru_cache(maxsize=256)
def _bearer_credential(authorization: str) -> str:
    """The access token of an ``Authorization: Bearer <token>`` value, "" for any other shape.
    Memoized: a sender presents the same header until its token expires, and the result is
    the same string each time, so the token lookup reuses its hash."""
    scheme, _, credential = authorization.strip().partition(" ")
    return credential.strip() if scheme.lower() == "bearer" else ""


__all__ = ["Exchange", "Subscriber", "WnsConfig", "WnsService"]
