"""How a well-behaved MDM server sends raw pushes through WNS.

Owns: the access-token cache (refreshed ahead of expiry), one token refresh and one resend
after a 401 [WNSOV], raw-push headers [RAW][WNSHDR], what each response status means for the
channel (stop on 404/410, wait on 406/503 Retry-After), and refusing ChannelURIs outside the
trusted WNS hosts [WNSOV]. Used by the reference server and by ``dmemu demo``.
Must not: retry in a loop or sleep; callers decide when to try again (``retry_at``).

The decision table is :func:`verdict` (pure); :class:`WnsSender` is the thin HTTP driver.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

import aiohttp
from multidict import CIMultiDict
from yarl import URL

from emulator.clock import MINUTE, SECOND, Clock
from emulator.control.keys import held_header
from emulator.retry_after import retry_after_ms
from emulator.wns.models import App

REFRESH_AHEAD_MS = 5 * MINUTE  # refresh 5 min before expiry, as Fleet does [FLEET-WNS]
DEFAULT_EXPIRES_S = 86_400  # when the token response omits expires_in [FLEET-WNS]


@dataclass(frozen=True, slots=True)
class PushResult:
    status: int  # final HTTP status (0 when nothing was sent)
    wns_status: str | None  # X-WNS-Status (or the older X-WNS-NotificationStatus)
    msg_id: str | None  # X-WNS-Msg-ID
    action: str  # "delivered" | "dropped" | "stop" | "retry" | "fix" | "refused"
    description: str  # X-WNS-Error-Description or our reason
    retry_at: int | None = None  # from Retry-After: emulated ms before which nothing is resent
    token_requests: int = 0  # token requests this push caused


def verdict(status: int) -> str:
    """What a sender must do after a notification response [WNSHDR] 2.6."""
    if status == 200:
        return "delivered"
    if status in (404, 410):
        return "stop"  # channel unknown or expired: never send to it again
    if status in (406, 500, 503):
        return "retry"  # later, honouring Retry-After
    return "fix"  # 400/403/405/413: resending unchanged cannot help (D3)


class WnsSender:
    def __init__(
        self,
        session: aiohttp.ClientSession,
        clock: Clock,
        *,
        token_url: str,
        client_id: str,
        client_secret: str,
        trusted_hosts: tuple[str, ...] = (".notify.windows.com",),
        ttl_s: int | None = None,
    ) -> None:
        self.session = session
        self.clock = clock
        self.token_url = token_url
        self.client_id = client_id  # ms-app://<Package SID>
        self.client_secret = client_secret
        self.trusted_hosts = trusted_hosts  # host suffixes or exact host[:port] values
        self.ttl_s = ttl_s
        self._token: str | None = None
        self._token_expires = 0

    @classmethod
    def to_local_wns(
        cls,
        session: aiohttp.ClientSession,
        clock: Clock,
        app: App,
        wns_url: str,
        *,
        client_secret: str | None = None,
    ) -> WnsSender:
        """A sender for ``app`` aimed at a fake WNS served at ``wns_url``: its token endpoint,
        and its host as the one trusted channel host."""
        return cls(
            session,
            clock,
            token_url=f"{wns_url}/accesstoken.srf",
            client_id=app.client_id,
            client_secret=app.secret if client_secret is None else client_secret,
            trusted_hosts=(urlsplit(wns_url).netloc,),
        )

    def trusted(self, channel_uri: str) -> bool:
        """[WNSOV] check the domain before sending; HTTPS unless a trusted host says http."""
        parts = urlsplit(channel_uri)
        netloc, host = parts.netloc.lower(), (parts.hostname or "").lower()
        for trusted in self.trusted_hosts:
            t = trusted.lower()
            if t.startswith("."):
                if host.endswith(t) and parts.scheme == "https":
                    return True
            elif netloc == t or host == t:
                return True
        return False

    def token_form(self) -> dict[str, str]:
        """The client-credentials form [WNSOV][WNSHDR] (conformance A1)."""
        return {
            "grant_type": "client_credentials",
            "client_id": self.client_id,
            "client_secret": self.client_secret,
            "scope": "notify.windows.com",
        }

    def push_headers(self, token: str) -> dict[str, str]:
        """A raw push's headers [RAW][WNSHDR] (conformance B2, B4)."""
        headers = {
            "Authorization": f"Bearer {token}",
            "Content-Type": "application/octet-stream",
            "X-WNS-Type": "wns/raw",
            "X-WNS-Cache-Policy": "cache",  # [PUSH] so an offline device gets it on reconnect
        }
        if self.ttl_s is not None:
            headers["X-WNS-TTL"] = str(self.ttl_s)
        return headers

    async def token(self, *, force: bool = False) -> tuple[str, int]:
        """A cached token, or a fresh one: (token, token requests made)."""
        now = self.clock.now()
        if not force and self._token and now < self._token_expires - REFRESH_AHEAD_MS:
            return self._token, 0
        async with self.session.post(
            self.token_url, data=self.token_form(), headers=held_header(self.clock)
        ) as resp:
            body = await resp.json(content_type=None)
            if resp.status != 200 or not isinstance(body, dict) or "access_token" not in body:
                raise TokenError(resp.status, body)
        self._token = str(body["access_token"])
        expires_s = int(body.get("expires_in", DEFAULT_EXPIRES_S))
        self._token_expires = now + expires_s * SECOND
        return self._token, 1

    async def push(self, channel_uri: str, payload: bytes = b"dmemu") -> PushResult:
        """Send one raw push; refresh the token and resend once on 401."""
        if not self.trusted(channel_uri):
            return PushResult(0, None, None, "refused", "ChannelURI is not on a trusted WNS host")
        token, requests = await self.token()
        status, headers = await self._post(channel_uri, payload, token)
        if status == 401:  # expired or revoked: one refresh, one resend [WNSOV]
            token, more = await self.token(force=True)
            requests += more
            status, headers = await self._post(channel_uri, payload, token)
        wns_status = headers.get("X-WNS-Status") or headers.get("X-WNS-NotificationStatus")
        action = verdict(status)
        if action == "delivered" and wns_status == "dropped":
            action = "dropped"
        retry_at = None  # without Retry-After the caller's back-off decides
        if action == "retry" and "Retry-After" in headers:
            retry_at = self.clock.now() + retry_after_ms(headers.get("Retry-After"))
        return PushResult(
            status=status,
            wns_status=wns_status,
            msg_id=headers.get("X-WNS-Msg-ID"),
            action=action,
            description=headers.get("X-WNS-Error-Description", ""),
            retry_at=retry_at,
            token_requests=requests,
        )

    async def _post(self, uri: str, payload: bytes, token: str) -> tuple[int, CIMultiDict[str]]:
        headers = self.push_headers(token)
        headers.update(held_header(self.clock))
        # encoded=True: POST to the ChannelURI exactly as the device reported it [WNSOV].
        async with self.session.post(URL(uri, encoded=True), data=payload, headers=headers) as resp:
            await resp.read()
            return resp.status, resp.headers.copy()  # case-insensitive


class TokenError(Exception):
    def __init__(self, status: int, body: object) -> None:
        super().__init__(f"token request failed with HTTP {status}: {body!r}")
        self.status = status
        self.body = body
