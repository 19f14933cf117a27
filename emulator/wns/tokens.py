"""The token service behind ``POST /accesstoken.srf`` (OAuth 2.0 client credentials).

Owns: parsing and validating the form a sender posts, issuing bearer tokens that expire on the
emulated clock, and resolving a presented bearer token to its app.
Must not: do I/O or know about channels.

A token carries its app, issue and expiry times and a MAC keyed by the run (its seed and the
apps' secrets), so a token issued by one shard of a run is honoured by every other shard's
fake WNS without asking it (emulator.shards); revoking an app's tokens revokes those issued
before that instant wherever they were issued.

Rules ([WNSHDR] 2.1-2.2, [WNSOV], protocol.md section 0):
* body ``application/x-www-form-urlencoded`` with ``grant_type=client_credentials``,
  ``client_id=ms-app://<Package SID>``, ``client_secret``, ``scope=notify.windows.com``;
* success: ``access_token``, ``token_type: bearer``, ``expires_in`` (seconds);
* any failure: 400 with an RFC 6749 error code in JSON.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import random
import struct
from collections.abc import Iterable
from urllib.parse import parse_qs

from emulator.clock import DAY, SECOND
from emulator.wns.errors import OAuthError
from emulator.wns.models import AccessToken, App

FORM_TYPE = "application/x-www-form-urlencoded"
SCOPE = "notify.windows.com"
REQUIRED = ("grant_type", "client_id", "client_secret", "scope")
MAX_FORM_BYTES = 4096  # a real token form is ~200 bytes; anything huge is refused
DEFAULT_TOKEN_TTL_MS = DAY  # [QS] "your cached access token expires after 24 hours"
#: app index, issued_ms, expires_ms, nonce; then the MAC: 72 bytes, the length of real ones
_PAYLOAD = struct.Struct(">BqqB22s")
_MAC_BYTES = 72 - _PAYLOAD.size


def media_type(content_type: str | None) -> str:
    """``"Application/X-WWW-Form-Urlencoded; charset=UTF-8"`` -> the bare lower-case type."""
    return (content_type or "").split(";", 1)[0].strip().lower()


class TokenService:
    """Issues and checks bearer tokens for the configured apps."""

    def __init__(
        self,
        apps: Iterable[App],
        rng: random.Random,
        ttl_ms: int = DEFAULT_TOKEN_TTL_MS,
        *,
        key: bytes = b"",
    ):
        self.apps = list(apps)
        self.apps_by_client_id = {app.client_id: app for app in self.apps}
        self.rng = rng  # seeded: tokens are reproducible run to run
        self.ttl_ms = ttl_ms
        #: the run's MAC key: every fake WNS of a run (one per shard) shares it
        self.key = hashlib.sha256(key + b"".join(a.secret.encode() for a in self.apps)).digest()
        self.tokens: dict[str, AccessToken] = {}
        self.revoked_before: dict[str, int] = {}  # sid -> tokens issued before are revoked
        self._issued_since_prune = 0

    def issue(self, content_type: str | None, body: bytes, now: int) -> AccessToken:
        """Validate a token request and issue a token, or raise :class:`OAuthError`."""
        form = self.parse_form(content_type, body)
        if form["grant_type"] != "client_credentials":
            raise OAuthError(
                "unsupported_grant_type",
                f"grant_type {form['grant_type']!r} is not supported; use client_credentials",
            )
        if form["scope"] != SCOPE:
            raise OAuthError("invalid_scope", f"scope must be {SCOPE!r}, not {form['scope']!r}")
        app = self.apps_by_client_id.get(form["client_id"])
        if app is None:
            hint = ""
            if not form["client_id"].startswith("ms-app://"):
                hint = " (client_id is the Package SID in the form ms-app://S-1-15-2-...)"
            raise OAuthError("invalid_client", f"unknown client_id{hint}")
        if form["client_secret"] != app.secret:
            raise OAuthError("invalid_client", "client_secret does not match the client_id")
        expires = now + self.ttl_ms
        token = AccessToken(
            value=self._new_value(self.apps.index(app), now, expires),
            sid=app.sid,
            issued_ms=now,
            expires_ms=expires,
        )
        self.tokens[token.value] = token
        self._prune(now)
        return token

    @staticmethod
    def parse_form(content_type: str | None, body: bytes) -> dict[str, str]:
        if media_type(content_type) != FORM_TYPE:
            raise OAuthError(
                "invalid_request",
                f"Content-Type must be {FORM_TYPE}, not {content_type or 'missing'!r}",
            )
        if len(body) > MAX_FORM_BYTES:
            raise OAuthError("invalid_request", f"request body exceeds {MAX_FORM_BYTES} bytes")
        try:
            text = body.decode("utf-8")
            fields = parse_qs(
                text, keep_blank_values=True, strict_parsing=bool(text), max_num_fields=32
            )
        except (UnicodeDecodeError, ValueError) as exc:
            raise OAuthError("invalid_request", f"body is not a valid form: {exc}") from None
        for name, values in fields.items():
            if len(values) > 1:  # RFC 6749 3.2: parameters MUST NOT be included more than once
                raise OAuthError("invalid_request", f"parameter {name!r} is repeated")
        form = {name: values[0] for name, values in fields.items()}
        for name in REQUIRED:
            if not form.get(name):
                raise OAuthError(
                    "invalid_request", f"The request is missing a required parameter: {name}"
                )
        return form

    def resolve(self, value: str, now: int) -> AccessToken | None:
        """The live token for ``value``; None if unknown, expired or revoked."""
        token = self.known(value)
        if token is None or token.revoked or now >= token.expires_ms:
            return None
        return token

    def known(self, value: str) -> AccessToken | None:
        """The token ``value`` names: issued here, or by another shard of the run (its MAC
        checks out); None for anything else."""
        token = self.tokens.get(value)
        if token is None:
            token = self._verify(value)
            if token is not None:
                self.tokens[value] = token
        return token

    def revoke(self, sid: str | None = None, now: int | None = None) -> int:
        """Revoke every token (of one app when ``sid`` is given). Returns how many this
        service knew; with ``now``, tokens issued elsewhere before it are revoked too."""
        count = 0
        for token in self.tokens.values():
            if not token.revoked and (sid is None or token.sid == sid):
                token.revoked = True
                count += 1
        if now is not None:
            for app in self.apps:
                if sid is None or app.sid == sid:
                    self.revoked_before[app.sid] = now
        return count

    def expires_in_s(self, token: AccessToken, now: int) -> int:
        return max(0, (token.expires_ms - now) // SECOND)

    def _new_value(self, app: int, issued_ms: int, expires_ms: int) -> str:
        # Real tokens are base64 with '+', '/' and '=' (e.g. "EgAcAQMAAAAALYAAY/c+Huwi...").
        payload = _PAYLOAD.pack(app, issued_ms, expires_ms, 1, self.rng.randbytes(22))
        mac = hmac.digest(self.key, payload, "sha256")[:_MAC_BYTES]
        return base64.b64encode(payload + mac).decode("ascii")

    def _verify(self, value: str) -> AccessToken | None:
        """A token another shard of this run issued, rebuilt from its value."""
        try:
            raw = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            return None
        if len(raw) != _PAYLOAD.size + _MAC_BYTES:
            return None
        payload, mac = raw[: _PAYLOAD.size], raw[_PAYLOAD.size :]
        if not hmac.compare_digest(mac, hmac.digest(self.key, payload, "sha256")[:_MAC_BYTES]):
            return None
        app, issued, expires, _version, _nonce = _PAYLOAD.unpack(payload)
        if app >= len(self.apps):
            return None
        sid = self.apps[app].sid
        revoked = issued < self.revoked_before.get(sid, issued)
        return AccessToken(value, sid, issued, expires, revoked=revoked)

    def _prune(self, now: int) -> None:
        self._issued_since_prune += 1
        if self._issued_since_prune < 1024:
            return
        self._issued_since_prune = 0
        self.tokens = {v: t for v, t in self.tokens.items() if t.expires_ms > now}
