"""One device's enrollment as a sans-I/O flow: Discover, GetPolicies, RequestSecurityToken,
then the provisioning document [MDE2 3.1-3.6].

Owns: the order of the exchanges and what each answer must be for the device to go on;
the AdditionalContext a Windows device sends; checking that the certificate that comes back
is for the key the device asked with; and turning every way a server can fail (HTTP error,
SOAP Fault, malformed or truncated XML, a wrong certificate) into :class:`EnrollFailed`
with the stage, the reason and the offending bytes.
Must not: do I/O. The flow is a generator: it yields an :class:`HttpRequest` and is sent the
:class:`HttpResponse` (or yields :class:`TokenNeeded` and is sent the Federated token);
its return value is the :class:`Enrolled` result. ``driver.py`` runs it over aiohttp.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import NamedTuple, TypeVar

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa

from emulator.enroll.discovery import DiscoverRequest, DiscoverResult
from emulator.enroll.keys import certificate_request
from emulator.enroll.policy import Policy, get_policies_request
from emulator.enroll.provisioning import Provisioned, read_document
from emulator.enroll.security import Credentials
from emulator.enroll.soap import (
    EXCERPT_BYTES,
    SOAP_CONTENT_TYPE,
    FaultError,
    SoapError,
    message_id,
)
from emulator.enroll.wstep import TokenRequest, read_token_response

ENROLL_RETRY_FIRST_MS = 5 * 60 * 1000
ENROLL_RETRY_MAX_MS = 24 * 3600 * 1000


def enroll_retry_ms(attempt: int) -> int:
    """When a failed enrollment is tried again: 5 minutes after the first failure, doubling
    to at most a day (section 0: the sources give no schedule; 5 minutes is the period of
    Windows' scheduled automatic enrollment task)."""
    return min(ENROLL_RETRY_FIRST_MS << min(attempt - 1, 20), ENROLL_RETRY_MAX_MS)


T = TypeVar("T")


class HttpRequest(NamedTuple):
    stage: str
    method: str
    url: str
    body: bytes = b""
    #: Certificate policy: the TLS client certificate (cert, key) the request goes with
    client_cert: tuple[str, str] | None = None

    @property
    def headers(self) -> dict[str, str]:
        if self.method == "GET":
            return {"User-Agent": USER_AGENT}
        return {
            "Content-Type": f"{SOAP_CONTENT_TYPE}; charset=utf-8",
            "User-Agent": USER_AGENT,
        }


class HttpResponse(NamedTuple):
    status: int
    content_type: str
    body: bytes


class TokenNeeded(NamedTuple):
    """Federated: the token the authentication service would give (no browser runs here)."""

    auth_url: str


USER_AGENT = "ENROLLClient"  # the enrollment client's User-Agent [MDE2 2.1]


@dataclass(frozen=True, slots=True)
class EnrollSettings:
    """How a device enrolls: where, with which policy and credentials."""

    discovery_url: str
    email: str
    policy: str = "OnPremise"  # what the device offers first: OnPremise | Federated | Certificate
    username: str = ""  # OnPremise; default: the e-mail address
    password: str = field(default="", repr=False)
    token: str | None = field(default=None, repr=False)  # Federated; None: ask the hook
    client_cert: tuple[str, str] | None = None  # Certificate: (cert PEM file, key PEM file)

    @property
    def offered(self) -> tuple[str, ...]:
        """AuthPolicies the device lists in Discover: its own policy first."""
        if self.policy == "Certificate":
            return ("Certificate", "OnPremise", "Federated")
        return (self.policy, *(p for p in ("OnPremise", "Federated") if p != self.policy))


class DeviceFacts(NamedTuple):
    """What the device says about itself in AdditionalContext [MDE2 3.4.4.1.1.1]."""

    device_id: str
    locale: str
    os_version: str  # e.g. 10.0.19045.2006
    os_edition: str = "48"

    def context(self) -> tuple[tuple[str, str], ...]:
        digest = hashlib.sha256(self.device_id.encode()).hexdigest()
        mac = ":".join(["02", *(digest[i : i + 2] for i in range(0, 10, 2))]).upper()
        return (
            ("UXInitiated", "false"),
            ("HWDevID", digest.upper()),
            ("Locale", self.locale),
            ("TargetedUserLoggedIn", "true"),
            ("OSEdition", self.os_edition),
            ("DeviceName", f"DESKTOP-{digest[:7].upper()}"),
            ("MAC", mac),
            ("DeviceID", self.device_id),
            ("EnrollmentType", "Full"),
            ("DeviceType", "CIMClient_Windows"),
            ("OSVersion", self.os_version),
            ("ApplicationVersion", self.os_version),
        )


@dataclass(frozen=True, slots=True)
class Enrolled:
    provisioned: Provisioned
    auth_policy: str
    key: rsa.RSAPrivateKey

    @property
    def thumbprint(self) -> str:
        return self.provisioned.client_thumbprint


class EnrollFailed(Exception):
    """Why enrollment stopped: ``stage`` (discovery, policy, enrollment), ``reason`` (a short
    kind: ``soap-fault``, ``http-<status>``, ``malformed``, ``certificate-mismatch``,
    ``unsupported-policy``, ``no-token``, ``unreachable``, ``timeout``, ``tls``), what happened, and
    the server's bytes."""

    def __init__(
        self,
        stage: str,
        reason: str,
        detail: str,
        excerpt: str = "",
        fault: dict[str, str | None] | None = None,
    ) -> None:
        super().__init__(f"{stage}: {detail}")
        self.stage = stage
        self.reason = reason
        self.detail = detail
        self.excerpt = excerpt
        self.fault = fault or {}


Flow = Generator[HttpRequest | TokenNeeded, HttpResponse | str, Enrolled]


def enrollment(settings: EnrollSettings, facts: DeviceFacts, key: rsa.RSAPrivateKey) -> Flow:
    """The whole enrollment of one device (see the module docstring for how to drive it)."""
    url = settings.discovery_url
    got = yield HttpRequest("discovery", "GET", url)  # the availability probe [MDE2 3.1.4]
    assert isinstance(got, HttpResponse)
    if not 200 <= got.status < 300:
        raise _http_failure("discovery", got)
    discover = DiscoverRequest(
        email=settings.email,
        application_version=facts.os_version,
        os_edition=facts.os_edition,
        auth_policies=settings.offered,
        message_id=message_id(),
    )
    got = yield HttpRequest("discovery", "POST", url, discover.to_bytes(url))
    found = _read("discovery", got, DiscoverResult.from_bytes)
    if found.auth_policy not in settings.offered:
        raise EnrollFailed(
            "discovery",
            "unsupported-policy",
            f"the server asks for AuthPolicy {found.auth_policy}, the device offered "
            f"{', '.join(settings.offered)}",
        )
    credentials = yield from _credentials(settings, found)
    cert = settings.client_cert if found.auth_policy == "Certificate" else None
    got = yield HttpRequest(
        "policy",
        "POST",
        found.policy_url,
        get_policies_request(found.policy_url, message_id(), credentials),
        cert,
    )
    policy = _read("policy", got, Policy.from_bytes)
    if key.key_size < policy.min_key_bits:
        raise EnrollFailed(
            "policy",
            "unsupported-policy",
            f"the policy asks for a {policy.min_key_bits}-bit key; the pool's are {key.key_size}",
        )
    request = TokenRequest(
        certificate_request(facts.device_id, key, policy.hash_name),
        facts.context(),
        message_id(),
        credentials,
    )
    got = yield HttpRequest(
        "enrollment", "POST", found.enrollment_url, request.to_bytes(found.enrollment_url), cert
    )
    document = _read("enrollment", got, read_token_response)
    try:
        provisioned = read_document(document)
    except SoapError as exc:
        problem = f"provisioning document: {exc.problem}"
        raise EnrollFailed("enrollment", "malformed", problem, exc.excerpt) from None
    _check_certificate(provisioned, key, document)
    return Enrolled(provisioned, found.auth_policy, key)


def _credentials(
    settings: EnrollSettings, found: DiscoverResult
) -> Generator[TokenNeeded, HttpResponse | str, Credentials]:
    if found.auth_policy == "OnPremise":
        return Credentials("OnPremise", settings.username or settings.email, settings.password)
    if found.auth_policy == "Federated":
        token = settings.token
        if token is None:
            assert found.auth_url is not None  # DiscoverResult checks it
            answer = yield TokenNeeded(found.auth_url)
            token = answer if isinstance(answer, str) else ""
        if not token:
            raise EnrollFailed(
                "discovery",
                "no-token",
                f"AuthPolicy Federated ({found.auth_url}): no token in the scenario and "
                "no enroll_token hook answered one",
            )
        return Credentials("Federated", token=token)
    if settings.client_cert is None:
        raise EnrollFailed(
            "discovery",
            "unsupported-policy",
            "the server asks for AuthPolicy Certificate and the device has no certificate",
        )
    return Credentials("Certificate")


def _read(stage: str, got: HttpResponse | str, parse: Callable[[bytes], T]) -> T:
    """The answer parsed, or EnrollFailed: a SOAP Fault (whatever the HTTP status, as SOAP
    1.2 over HTTP sends faults with 400 or 500), another HTTP error, or malformed XML."""
    assert isinstance(got, HttpResponse)
    try:
        return parse(got.body)
    except FaultError as exc:
        f = exc.fault
        fields = {"code": f.code, "subcode": f.subcode, "error_type": f.error_type}
        fields["hresult"] = f.hresult
        raise EnrollFailed(stage, "soap-fault", f.describe(), exc.excerpt, fields) from None
    except SoapError as exc:
        if got.status != 200:
            raise _http_failure(stage, got) from None
        raise EnrollFailed(stage, "malformed", exc.problem, exc.excerpt) from None


def _http_failure(stage: str, got: HttpResponse) -> EnrollFailed:
    return EnrollFailed(
        stage,
        f"http-{got.status}",
        f"HTTP {got.status} ({got.content_type or 'no Content-Type'})",
        got.body[:EXCERPT_BYTES].decode("utf-8", "replace"),
    )


def _check_certificate(provisioned: Provisioned, key: rsa.RSAPrivateKey, raw: bytes) -> None:
    """The certificate must be for the key the device sent in its request."""
    excerpt = raw[:EXCERPT_BYTES].decode("utf-8", "replace")
    try:
        cert = x509.load_der_x509_certificate(provisioned.client_cert)
    except ValueError as exc:
        raise EnrollFailed(
            "enrollment", "malformed", f"the client certificate is not DER X.509 ({exc})", excerpt
        ) from None
    public = cert.public_key()
    if (
        not isinstance(public, rsa.RSAPublicKey)
        or public.public_numbers() != key.public_key().public_numbers()
    ):
        raise EnrollFailed(
            "enrollment",
            "certificate-mismatch",
            f"the certificate {provisioned.client_thumbprint} (subject "
            f"{cert.subject.rfc4514_string()}) is not for the key in the device's request",
            excerpt,
        )
