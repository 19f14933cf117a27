"""The channel registry: ChannelURIs, device connections, delivery and the offline cache.

Owns: issuing channels per (device, PFN) with an opaque token and a 30-day life [PUSH][WNSOV],
renewal (new URI, or the same URI extended), revocation, blocked PFNs, the per-channel rate
window, each device's persistent connection, live delivery, and the one-per-type offline cache
with TTL and a cache period [RAW][WNSHDR].
Must not: authenticate senders, parse headers, call subscribers, or do I/O (the service calls
subscribers with the deliveries this returns).

Theory of operation
-------------------
A ChannelURI is ``<base>/?token=<t>`` where ``<t>`` is base64 with ``+ / =`` percent-encoded
in lower case, as real URIs are (``...?token=AwYAAABq7aWo%2bPaTY%2fjaw...``). Channels are
keyed by the *decoded* token, so equivalent encodings (``%2b`` / ``%2B``) reach the same
channel but a sender that decodes ``%2b`` to a literal ``+`` (a modified URI) gets 404.

A device has one connection (:class:`Endpoint`); every channel of the device holds it and
delivers through it. Offline: a push with cache policy ``cache`` replaces the channel's cached
push of the same type (newest wins, [RAW] "only one raw notification will be cached");
otherwise it is dropped.
On reconnect the cached pushes whose TTL and cache period have not run out are delivered.
"""

from __future__ import annotations

import base64
import hashlib
import math
from collections.abc import Iterable
from urllib.parse import parse_qs

from emulator.clock import DAY, SECOND
from emulator.wns.errors import ChannelGone, Throttled
from emulator.wns.models import App, Channel, Delivery, Endpoint, Push

DEFAULT_CHANNEL_TTL_MS = 30 * DAY  # [PUSH] "only valid for 30 days"
DEFAULT_CACHE_PERIOD_MS = 30 * DAY  # section 0: "a reasonable period", default 30 days
DEFAULT_RATE_LIMIT = (600, 60_000)  # per channel: pushes per window ms (section 0 decision)
CONNECTION_STATES = ("connected", "disconnected", "tempdisconnected")
DELIVERED_HISTORY = 100  # deliveries kept per channel for inspection


class ChannelRefused(Exception):
    """WNS will not register this PFN: unknown or blocked (the device shows Push/Status 3)."""

    def __init__(self, pfn: str, reason: str) -> None:
        super().__init__(f"PFN {pfn!r} refused: {reason}")
        self.pfn = pfn
        self.reason = reason  # "unknown_pfn" | "blocked_pfn"


def _as_issued(token: str) -> str:
    """A channel token as its ChannelURI spells it: base64 with lower-case percent-escapes."""
    return token.replace("+", "%2b").replace("/", "%2f").replace("=", "%3d")


def token_from_query(raw_query: str) -> str | None:
    """The decoded ``token`` parameter of a raw query string (``+`` means space, as in forms)."""
    try:
        values = parse_qs(raw_query, keep_blank_values=True, max_num_fields=16).get("token")
    except ValueError:
        return None
    if not values or len(values) != 1 or not values[0]:
        return None
    return values[0]


#: channel states that still take pushes (a superseded URI lives out its 30 days)
LIVE_STATES = frozenset({"active", "superseded"})


class ChannelRegistry:
    """All channels and device connections of one fake WNS."""

    def __init__(
        self,
        apps: Iterable[App],
        seed: int | str,
        *,
        base_url: str,
        channel_ttl_ms: int = DEFAULT_CHANNEL_TTL_MS,
        cache_period_ms: int = DEFAULT_CACHE_PERIOD_MS,
        renewal: str = "new",
        rate_limit: tuple[int, int] | None = None,
        base_for: dict[str, str] | None = None,
    ) -> None:
        if renewal not in ("new", "extend"):
            raise ValueError("renewal must be 'new' or 'extend'")
        #: by PFN in lower case: PFNs match whatever their letter case (section 0 [WP81BLOG])
        self.apps_by_pfn = {app.pfn.lower(): app for app in apps}
        #: ChannelURIs derive from (seed, device, its n-th channel): reproducible run to run,
        #: and a device's own whatever other devices do (or which shard serves them)
        self.seed = seed
        self.base_url = base_url.rstrip("/")
        self.channel_ttl_ms = channel_ttl_ms
        self.cache_period_ms = cache_period_ms
        self.renewal = renewal
        self.rate_limit = rate_limit  # (pushes, window ms) per channel, None = unlimited
        self.blocked: set[str] = set()  # PFNs blocked for abuse [PUSH], as canonical()
        self.channels: dict[str, Channel] = {}  # by decoded token
        self.by_query: dict[str, Channel] = {}  # by the URI's query exactly as issued (fast path)
        self.by_id: dict[str, Channel] = {}
        self.by_device: dict[str, list[Channel]] = {}  # issue order
        self.current: dict[tuple[str, str], Channel] = {}  # (device, pfn) -> newest channel
        self.endpoints: dict[str, Endpoint] = {}
        #: devices whose ChannelURIs name another host (a trap listener: conformance B5)
        self.base_for: dict[str, str] = {} if base_for is None else base_for

    # -- issuing --------------------------------------------------------------------------
    def request_channel(self, device_id: str, pfn: str, now: int) -> Channel:
        """A device asks for its channel for ``pfn`` (first time, or renewal).

        With a live channel already: renewal mode ``new`` issues a new URI and marks the old
        one superseded (it still works until its own expiry, as real URIs live 30 days);
        ``extend`` keeps the URI and moves its expiry to now + TTL.
        """
        app = self.app_for(pfn)
        if app is None:
            raise ChannelRefused(pfn, "unknown_pfn")
        if app.pfn in self.blocked:
            raise ChannelRefused(pfn, "blocked_pfn")
        old = self.current.get((device_id, app.pfn))
        live = old is not None and not old.revoked and now < old.expires_ms
        if old is not None and live and self.renewal == "extend":
            old.expires_ms = now + self.channel_ttl_ms
            return old
        channel = self._issue(app, device_id, now)
        if old is not None and live:
            old.superseded_by = channel.id
        self.current[(device_id, app.pfn)] = channel
        return channel

    def app_for(self, pfn: str) -> App | None:
        """The app a PFN names, whatever its letter case (section 0 [WP81BLOG])."""
        return self.apps_by_pfn.get(pfn.lower())

    def canonical(self, pfn: str) -> str:
        """A PFN as its app spells it (any letter case names the same app), else lower case."""
        app = self.app_for(pfn)
        return app.pfn if app is not None else pfn.lower()

    def block(self, pfn: str) -> None:
        self.blocked.add(self.canonical(pfn))

    def unblock(self, pfn: str) -> None:
        self.blocked.discard(self.canonical(pfn))

    def is_blocked(self, pfn: str) -> bool:
        return self.canonical(pfn) in self.blocked

    def _issue(self, app: App, device_id: str, now: int) -> Channel:
        nth = len(self.by_device.get(device_id, ()))
        stream = hashlib.shake_256(f"{self.seed}:channel:{device_id}:{nth}".encode()).digest(86)
        raw = base64.b64encode(b"\x03\x06\x00\x00" + stream[:80]).decode("ascii")
        encoded = _as_issued(raw)
        channel = Channel(
            id=f"ch-{stream[80:].hex()}",
            token=raw,
            uri=f"{self.base_for.get(device_id, self.base_url)}/?token={encoded}",
            sid=app.sid,
            pfn=app.pfn,
            device_id=device_id,
            endpoint=self.endpoint(device_id),
            issued_ms=now,
            expires_ms=now + self.channel_ttl_ms,
        )
        self.channels[channel.token] = channel
        self.by_query[f"token={encoded}"] = channel
        self.by_id[channel.id] = channel
        self.by_device.setdefault(device_id, []).append(channel)
        return channel

    def revoke(self, channel: Channel) -> None:
        channel.revoked = True
        channel.cached.clear()

    def forget(self, channel: Channel) -> None:
        """Drop every trace of a channel: pushes to its URI get 404, as to one never issued."""
        self.revoke(channel)
        self.channels.pop(channel.token, None)
        self.by_query.pop(f"token={_as_issued(channel.token)}", None)

    def find(self, token: str | None) -> Channel | None:
        return None if token is None else self.channels.get(token)

    def find_by_query(self, raw_query: str) -> Channel | None:
        """The channel a request's raw query names: the URI as issued (the common case, one
        dict lookup), else any equivalent percent-encoding of its token."""
        channel = self.by_query.get(raw_query)
        if channel is not None:
            return channel
        return self.find(token_from_query(raw_query))

    def state(self, channel: Channel, now: int) -> str:
        return channel.state(now, channel.pfn in self.blocked)

    # -- sending --------------------------------------------------------------------------
    def check_usable(self, channel: Channel, now: int) -> None:
        """410 for a blocked PFN, a revoked or an expired channel [WNSHDR]."""
        if channel.pfn in self.blocked:
            raise ChannelGone("Domain Blocked: the PFN of this channel is blocked by WNS.")
        if channel.revoked:
            raise ChannelGone("The channel has been revoked.")
        if now >= channel.expires_ms:
            raise ChannelGone("The channel expired.")

    def check_rate(self, channel: Channel, now: int) -> None:
        """406 with Retry-After once the channel's window is full [WNSHDR]."""
        if self.rate_limit is None:
            return
        limit, window = self.rate_limit
        recent = channel.recent
        horizon = now - window
        if recent and recent[0] <= horizon:
            channel.recent = recent = [t for t in recent if t > horizon]
        if len(recent) >= limit:
            wait_s = max(1, math.ceil((recent[0] + window - now) / SECOND))
            raise Throttled(
                f"The channel is throttled: more than {limit} notifications in "
                f"{window // SECOND} s.",
                retry_after_s=wait_s,
            )

    def accept(self, channel: Channel, push: Push, now: int) -> tuple[str, str, Delivery | None]:
        """Deliver live, cache, or drop a push that passed every check.

        Returns (how: "live" | "cached" | "dropped", the device's connection status, the live
        delivery to hand to its subscriber). Toasts are never cached [WNSOV].
        """
        if self.rate_limit is not None:
            channel.recent.append(now)
        status = channel.endpoint.status
        if status == "connected":
            return "live", status, self._delivered(channel, push, now, "live")
        if push.cache:
            channel.cached[push.wns_type] = push  # the newest replaces the older [RAW]
            return "cached", status, None
        return "dropped", status, None

    def _delivered(self, channel: Channel, push: Push, now: int, via: str) -> Delivery:
        delivery = Delivery(push, now, via)
        channel.delivered.append(delivery)
        if len(channel.delivered) > DELIVERED_HISTORY:
            del channel.delivered[: len(channel.delivered) - DELIVERED_HISTORY]
        return delivery

    # -- connections ----------------------------------------------------------------------
    def endpoint(self, device_id: str) -> Endpoint:
        endpoint = self.endpoints.get(device_id)
        if endpoint is None:
            endpoint = self.endpoints[device_id] = Endpoint(device_id)
        return endpoint

    def set_connection(
        self, device_id: str, status: str, now: int
    ) -> list[tuple[Channel, Delivery]]:
        """Change a device's connection; on (re)connect return the cached pushes delivered."""
        if status not in CONNECTION_STATES:
            raise ValueError(f"connection status must be one of {', '.join(CONNECTION_STATES)}")
        endpoint = self.endpoint(device_id)
        was = endpoint.status
        endpoint.status = status
        if status != "connected" or was == "connected":
            return []
        out: list[tuple[Channel, Delivery]] = []
        for channel in self.channels_of(device_id):
            if channel.cached and self.state(channel, now) in LIVE_STATES:
                for push in sorted(channel.cached.values(), key=lambda p: p.received_ms):
                    if self.cache_alive(push, now):
                        out.append((channel, self._delivered(channel, push, now, "cache")))
            channel.cached.clear()  # section 0: a cached push never crosses a dead channel
        return out

    def cache_alive(self, push: Push, now: int) -> bool:
        if push.expires_ms is not None and now >= push.expires_ms:
            return False
        return now < push.received_ms + self.cache_period_ms

    def channels_of(self, device_id: str) -> list[Channel]:
        return list(self.by_device.get(device_id, ()))
