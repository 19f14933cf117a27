"""The Discover exchange [MDE2 3.1]: which enrollment services a server offers, and how.

Owns: the device's Discover request (EmailAddress, RequestVersion, DeviceType,
ApplicationVersion, OSEdition and the AuthPolicies it supports [MDE2 3.1.4.1.1.1]), reading
a server's DiscoverResponse, and, for the reference server, reading a request and writing
the response [MDE2 3.1.4.1.1.2].
Must not: do I/O, or decide what a device does with the answer (``flow.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit
from xml.sax.saxutils import escape

from emulator.enroll.soap import (
    ACTION_DISCOVER,
    NS_ENROLL_DISCOVERY,
    SoapError,
    child,
    children,
    envelope,
    header,
    payload_or_fault,
    request_payload,
    text,
)

DISCOVERY_PATH = "/EnrollmentServer/Discovery.svc"
AUTH_POLICIES = ("OnPremise", "Federated", "Certificate")


def discovery_url(email: str) -> str:
    """The URL Windows derives from a work e-mail address: EnterpriseEnrollment.<domain>
    [MDE2 3.1.5.1]."""
    domain = email.rpartition("@")[2].strip().lower()
    if not domain or "." not in domain:
        raise ValueError(f"{email!r} has no domain to derive the discovery URL from")
    return f"https://enterpriseenrollment.{domain}{DISCOVERY_PATH}"


@dataclass(frozen=True, slots=True)
class DiscoverRequest:
    email: str
    request_version: str = "4.0"
    device_type: str = "CIMClient_Windows"
    application_version: str = "10.0.19045.0"
    os_edition: str = "48"  # Windows 10/11 Pro
    auth_policies: tuple[str, ...] = ("OnPremise", "Federated")
    message_id: str = ""

    def to_bytes(self, to: str) -> bytes:
        policies = "".join(f"<AuthPolicy>{escape(p)}</AuthPolicy>" for p in self.auth_policies)
        payload = (
            f'<Discover xmlns="{NS_ENROLL_DISCOVERY}"><request>'
            f"<EmailAddress>{escape(self.email)}</EmailAddress>"
            f"<RequestVersion>{escape(self.request_version)}</RequestVersion>"
            f"<DeviceType>{escape(self.device_type)}</DeviceType>"
            f"<ApplicationVersion>{escape(self.application_version)}</ApplicationVersion>"
            f"<OSEdition>{escape(self.os_edition)}</OSEdition>"
            f"<AuthPolicies>{policies}</AuthPolicies>"
            f"</request></Discover>"
        )
        return envelope(ACTION_DISCOVER, payload, to=to, msg_id=self.message_id)

    @classmethod
    def from_bytes(cls, body: bytes) -> DiscoverRequest:
        root, payload = request_payload(body, "Discover")
        request = child(payload, "request")
        if request is None:
            raise SoapError("Discover has no request element", body)
        policies = child(request, "AuthPolicies")
        return cls(
            email=text(request, "EmailAddress") or "",
            request_version=text(request, "RequestVersion") or "1.0",
            device_type=text(request, "DeviceType") or "",
            application_version=text(request, "ApplicationVersion") or "",
            os_edition=text(request, "OSEdition") or "",
            auth_policies=tuple((p.text or "").strip() for p in children(policies, "AuthPolicy"))
            if policies is not None
            else (),
            message_id=text(header(root, "MessageID")) or "",
        )


@dataclass(frozen=True, slots=True)
class DiscoverResult:
    auth_policy: str  # OnPremise | Federated | Certificate
    policy_url: str  # EnrollmentPolicyServiceUrl (MS-XCEP)
    enrollment_url: str  # EnrollmentServiceUrl (MS-WSTEP)
    enrollment_version: str = "4.0"
    auth_url: str | None = None  # AuthenticationServiceUrl (Federated)

    def to_bytes(self, relates_to: str | None) -> bytes:
        auth = (
            f"<AuthenticationServiceUrl>{escape(self.auth_url)}</AuthenticationServiceUrl>"
            if self.auth_url
            else ""
        )
        payload = (
            f'<DiscoverResponse xmlns="{NS_ENROLL_DISCOVERY}"><DiscoverResult>'
            f"<AuthPolicy>{escape(self.auth_policy)}</AuthPolicy>"
            f"<EnrollmentVersion>{escape(self.enrollment_version)}</EnrollmentVersion>"
            f"<EnrollmentPolicyServiceUrl>{escape(self.policy_url)}</EnrollmentPolicyServiceUrl>"
            f"<EnrollmentServiceUrl>{escape(self.enrollment_url)}</EnrollmentServiceUrl>"
            f"{auth}</DiscoverResult></DiscoverResponse>"
        )
        return envelope(f"{ACTION_DISCOVER}Response", payload, relates_to=relates_to)

    @classmethod
    def from_bytes(cls, body: bytes) -> DiscoverResult:
        """Raises :class:`SoapError`, or :class:`FaultError` for a fault."""
        payload = payload_or_fault(body, "DiscoverResponse")
        result = child(payload, "DiscoverResult")
        if result is None:
            raise SoapError("DiscoverResponse has no DiscoverResult", body)
        policy = text(result, "AuthPolicy") or ""
        if policy not in AUTH_POLICIES:
            raise SoapError(f"AuthPolicy {policy!r} is none of {', '.join(AUTH_POLICIES)}", body)
        urls = {}
        for name in ("EnrollmentPolicyServiceUrl", "EnrollmentServiceUrl"):
            value = text(result, name) or ""
            if urlsplit(value).scheme not in ("http", "https"):
                raise SoapError(f"{name} {value!r} is not an http(s) URL", body)
            urls[name] = value
        auth_url = text(result, "AuthenticationServiceUrl") or None
        if policy == "Federated" and not auth_url:
            raise SoapError("AuthPolicy Federated without an AuthenticationServiceUrl", body)
        return cls(
            auth_policy=policy,
            policy_url=urls["EnrollmentPolicyServiceUrl"],
            enrollment_url=urls["EnrollmentServiceUrl"],
            enrollment_version=text(result, "EnrollmentVersion") or "",
            auth_url=auth_url,
        )
