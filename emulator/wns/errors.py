"""Protocol errors of the fake WNS as typed exceptions (moto's ``exceptions.py``).

Owns: one exception type per way a request can fail, each carrying the HTTP status and the
headers the real service returns. They are raised by the sans-I/O core and turned into
responses at exactly one boundary (``app.py``).
Must not: build HTTP responses or import aiohttp.
"""

from __future__ import annotations


class OAuthError(Exception):
    """Token endpoint failure: 400 with ``{"error", "error_description"}`` JSON.

    [WNSHDR] 400 "The authentication failed. See the OAuth draft RFC for the response
    parameters"; protocol.md section 0 fixes the JSON shape (RFC 6749 section 5.2 codes).
    """

    status = 400

    def __init__(self, error: str, description: str, *, status: int = 400) -> None:
        super().__init__(f"{error}: {description}")
        self.error = error
        self.description = description
        self.status = status


class NotifyError(Exception):
    """Notification POST failure with the status and headers of [WNSHDR] section 2.6."""

    status = 500
    wns_status: str | None = None  # X-WNS-Status / X-WNS-NotificationStatus, when meaningful

    def __init__(self, description: str, *, retry_after_s: int | None = None) -> None:
        super().__init__(description)
        self.description = description
        self.retry_after_s = retry_after_s

    def extra_headers(self) -> dict[str, str]:
        headers: dict[str, str] = {}
        if self.retry_after_s is not None:
            headers["Retry-After"] = str(self.retry_after_s)
        return headers


class BadRequest(NotifyError):
    """400: one or more headers were specified incorrectly or conflict [WNSHDR]."""

    status = 400


class Unauthorized(NotifyError):
    """401: no valid authentication ticket [WNSHDR]; header per section 0 / RFC 6750."""

    status = 401

    def __init__(self, description: str, *, token_presented: bool = True) -> None:
        super().__init__(description)
        self.token_presented = token_presented

    def extra_headers(self) -> dict[str, str]:
        # RFC 6750 3.1: no error code when the request carried no credentials at all.
        if not self.token_presented:
            return {"WWW-Authenticate": 'Bearer realm="notify.windows.com"'}
        return {
            "WWW-Authenticate": (
                f'Bearer error="invalid_token", error_description="{self.description}"'
            )
        }


class Forbidden(NotifyError):
    """403: authenticated, but the token's app does not own this channel [WNSHDR]."""

    status = 403


class ChannelNotFound(NotifyError):
    """404: the channel URI is not valid or not recognized [WNSHDR]."""

    status = 404


class MethodNotAllowed(NotifyError):
    """405: only POST is allowed on a Windows channel [WNSHDR]."""

    status = 405

    def extra_headers(self) -> dict[str, str]:
        return {"Allow": "POST"}


class Throttled(NotifyError):
    """406: the sender exceeded the channel's throttle limit; wait for Retry-After [WNSHDR]."""

    status = 406
    wns_status = "channelthrottled"


class ChannelGone(NotifyError):
    """410: the channel expired or was revoked, or the PFN is blocked [WNSHDR]."""

    status = 410


class PayloadTooLarge(NotifyError):
    """413: the notification payload exceeds the 5000 byte size limit [WNSHDR]."""

    status = 413


class InjectedFault(NotifyError):
    """Any status forced by the fault-injection API (500, 503, 403 ...)."""

    def __init__(self, status: int, description: str, *, retry_after_s: int | None) -> None:
        super().__init__(description, retry_after_s=retry_after_s)
        self.status = status
        if status == 406:
            self.wns_status = "channelthrottled"
