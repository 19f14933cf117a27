"""What the reference MDM server is told at start: its WNS app, its push policy, its gates.

Owns: :class:`MdmConfig` (plain data, one comment per field), the DMClient node paths the
server writes, built from its ProviderID [DMC], and what its settings mean (the token check,
builds that may fail to renew).
Must not: parse files or command lines (``cli.py``) or hold state.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from emulator.clock import DAY
from emulator.wns.models import App

#: The server's poll schedule [DMC] (protocol.md 1.4): 15 min x 4, then hourly x 4, then once
#: a day for ever. Never all intervals or all counts 0 [MDE2] (conformance E1); the long-run
#: interval is not below 1440 minutes [MDE2].
DEFAULT_POLL = (
    ("IntervalForFirstSetOfRetries", "15"),
    ("NumberOfFirstRetries", "4"),
    ("IntervalForSecondSetOfRetries", "60"),
    ("NumberOfSecondRetries", "4"),
    ("IntervalForRemainingScheduledRetries", "1440"),
    ("NumberOfRemainingScheduledRetries", "0"),
)


@dataclass(frozen=True, slots=True)
class MdmConfig:
    app: App  # WNS credentials (Package SID, secret) and the PFN devices are given [DMC]
    provider_id: str = "dmemu"  # DMClient ProviderID of this server's enrollment [DMC]
    # WNS token endpoint [WNSOV] (a URL, not a secret)
    token_url: str = "https://login.live.com/accesstoken.srf"  # noqa: S105
    trusted_hosts: tuple[str, ...] = (".notify.windows.com",)  # B5: where pushes may go
    wns_ca_file: str | None = None  # CA to trust for a fake WNS serving TLS (else the system)
    push_ttl_s: int | None = None  # X-WNS-TTL on pushes; None: WNS's cache period [WNSHDR]
    pushes_per_hour: int = 12  # per device, absent failures (conformance D4)
    max_push_attempts: int = 5  # sends per push before giving up on 406/5xx (D2)
    backoff_base_s: int = 30  # first retry wait without Retry-After; doubles per attempt
    proactive_reset_after_ms: int = 20 * DAY  # C7: re-set PFN on 8.1/1511 past this channel age
    poll: tuple[tuple[str, str], ...] = DEFAULT_POLL  # Poll node values set at enrollment
    allowed_devices: frozenset[str] | None = None  # None: any device may enroll
    device_token: str | None = None  # when set, devices must send ``Bearer <token>``
    admin_token: str | None = None  # when set, the admin API needs ``Bearer <token>``
    # enrollment [MDE2]: the AuthPolicy Discovery answers (OnPremise | Federated)
    enroll_policy: str = "OnPremise"
    enroll_password: str | None = None  # OnPremise: the password every user must give
    enroll_token: str | None = None  # Federated: the token devices must present
    # the in-process server of a seeded run derives its CA key from this label (the same
    # certificates on every machine); None: a random key, made once and kept in the store
    ca_key_label: str | None = None
    #: added to every response, on the server's own clock (``dmemu mdm --latency``): a
    #: server that answers in milliseconds, not microseconds
    latency_ms: int = 0
    # an unfinished session is forgotten after this (generous: under a fast real-time clock
    # (--rate) an exchange of a few real milliseconds spans minutes of emulated time)
    session_idle_ms: int = DAY

    @property
    def dmclient(self) -> str:
        return f"./Device/Vendor/MSFT/DMClient/Provider/{self.provider_id}"

    @property
    def push_node(self) -> str:
        return f"{self.dmclient}/Push"

    @property
    def poll_node(self) -> str:
        return f"{self.dmclient}/Poll"


WRONG_TOKEN = "the Bearer token is not the one this server was started with"  # noqa: S105


def bearer_problem(authorization: str, token: str | None) -> str | None:
    """Why ``Authorization`` does not carry ``Bearer <token>`` (the scheme in any letter
    case, RFC 7235; the token compared in constant time), or None when it does or no token
    is required."""
    if token is None:
        return None
    if not authorization.strip():
        return "an Authorization: Bearer <token> header is required"
    scheme, _, credential = authorization.strip().partition(" ")
    if scheme.lower() != "bearer":
        return f"the Authorization scheme is {scheme!r}, not Bearer"
    if not hmac.compare_digest(credential.strip().encode(), token.encode()):
        return WRONG_TOKEN
    return None


def renewal_may_fail(swv: str | None) -> bool:
    """Builds that "may fail to automatically renew" their channel [PUSH][KB3170699]:
    Windows Phone 8.1 and Windows 10 before 1607 (build 14393). Unknown builds are not."""
    if not swv:
        return False
    parts = swv.split(".")
    try:
        major = int(parts[0])
        build = int(parts[2]) if len(parts) > 2 else 0
    except ValueError:
        return False
    return major < 10 or (major == 10 and build < 14393)
