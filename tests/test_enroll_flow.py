"""The device's enrollment flow, sans-I/O: each server failure becomes a clear EnrollFailed
(stage, reason, the server's bytes), never an exception of another kind."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from emulator.clock import DEFAULT_EPOCH_MS
from emulator.enroll.discovery import DiscoverResult
from emulator.enroll.flow import (
    DeviceFacts,
    Enrolled,
    EnrollFailed,
    EnrollSettings,
    Flow,
    HttpRequest,
    HttpResponse,
    TokenNeeded,
    enroll_retry_ms,
    enrollment,
)
from emulator.enroll.keys import KeyPool
from emulator.enroll.policy import Policy
from emulator.enroll.provisioning import write_document
from emulator.enroll.soap import fault_envelope
from emulator.enroll.wstep import TokenRequest, token_response
from emulator.mdm.ca import EnrollmentCa
from emulator.mdm.store import MdmStore

URL = "https://enterpriseenrollment.contoso.com/EnrollmentServer/Discovery.svc"
SOAP = "application/soap+xml"
Answer = Callable[[HttpRequest], HttpResponse]


class Server:
    """Answers like a working server; ``broken`` replaces one stage's answer."""

    def __init__(self, policy: str = "OnPremise") -> None:
        self.policy = policy
        self.ca = EnrollmentCa(MdmStore(), DEFAULT_EPOCH_MS, key_label="flow-test-ca")
        self.broken: dict[tuple[str, str], Answer] = {}
        self.seen: list[HttpRequest] = []
        self.issued_for: bytes | None = None  # swap in another request's key

    def __call__(self, request: HttpRequest) -> HttpResponse:
        self.seen.append(request)
        broken = self.broken.get((request.stage, request.method))
        if broken is not None:
            return broken(request)
        if request.method == "GET":
            return HttpResponse(200, "text/html", b"")
        if request.stage == "discovery":
            auth = "https://sts.contoso.com/auth" if self.policy == "Federated" else None
            found = DiscoverResult(
                self.policy, "https://m/Policy.svc", "https://m/Enroll.svc", auth_url=auth
            )
            return HttpResponse(200, SOAP, found.to_bytes("urn:uuid:1"))
        if request.stage == "policy":
            return HttpResponse(200, SOAP, Policy().to_bytes("urn:uuid:2"))
        asked = TokenRequest.from_bytes(request.body)
        der = self.ca.issue(self.issued_for or asked.csr_der, "dev-1", DEFAULT_EPOCH_MS, 2048, "u")
        doc = write_document(self.ca.der, der, "https://m/omadm", "Contoso", ())
        return HttpResponse(200, SOAP, token_response(doc, None))


def drive(flow: Flow, server: Server, token: str = "") -> Enrolled:
    step = next(flow)
    try:
        while True:
            answer: HttpResponse | str = token if isinstance(step, TokenNeeded) else server(step)
            step = flow.send(answer)
    except StopIteration as done:
        result: Enrolled = done.value
        return result


FACTS = DeviceFacts("dev-1", "en-US", "10.0.19045.2006")
SETTINGS = EnrollSettings(URL, "ann@contoso.com", password="pw")
KEY = KeyPool(2).key(0)


def test_enrolls_against_a_working_server() -> None:
    """GET then POST Discovery, GetPolicies, RequestSecurityToken [MDE2 3.1-3.4]; the
    certificate is for the device's key; the document's address and ProviderID come back."""
    server = Server()
    result = drive(enrollment(SETTINGS, FACTS, KEY), server)
    assert [(r.stage, r.method) for r in server.seen] == [
        ("discovery", "GET"),
        ("discovery", "POST"),
        ("policy", "POST"),
        ("enrollment", "POST"),
    ]
    assert result.provisioned.server_url == "https://m/omadm"
    assert result.provisioned.provider_id == "Contoso"
    assert result.auth_policy == "OnPremise"
    context = dict(TokenRequest.from_bytes(server.seen[-1].body).context)
    assert context["DeviceID"] == "dev-1"
    assert context["EnrollmentType"] == "Full"
    assert context["OSVersion"] == "10.0.19045.2006"


def test_federated_asks_for_the_token() -> None:
    """Federated [MDE2 3.2]: no browser runs, so the flow asks its driver for the token
    (the scenario's or the enroll_token hook's); none at all is a clear failure."""
    server = Server("Federated")
    settings = EnrollSettings(URL, "ann@contoso.com", policy="Federated")
    assert drive(enrollment(settings, FACTS, KEY), server, token="t0k").auth_policy == "Federated"
    with pytest.raises(EnrollFailed) as caught:
        drive(enrollment(settings, FACTS, KEY), Server("Federated"), token="")
    assert caught.value.reason == "no-token"


def _status(status: int, ctype: str, body: bytes) -> Answer:
    return lambda request: HttpResponse(status, ctype, body)


AUTH_FAULT = fault_envelope(
    "http://schemas.microsoft.com/windows/pki/2009/01/enrollment/RSTRC/wstep",
    "urn:uuid:3",
    "Authentication",
    "User not recognized",
    "InvalidEnrollmentData",
)


@pytest.mark.parametrize(
    ("where", "answer", "stage", "reason"),
    [
        (
            ("discovery", "GET"),
            _status(404, "text/html", b"<h1>Not Found</h1>"),
            "discovery",
            "http-404",
        ),
        (
            ("policy", "POST"),
            _status(401, "text/html", b"<h1>401 Unauthorized</h1>"),
            "policy",
            "http-401",
        ),
        (("enrollment", "POST"), _status(500, SOAP, AUTH_FAULT), "enrollment", "soap-fault"),
        (("enrollment", "POST"), _status(500, "text/plain", b"boom"), "enrollment", "http-500"),
        (
            ("discovery", "POST"),
            _status(200, SOAP, b"<s:Envelope xmlns:s="),
            "discovery",
            "malformed",
        ),
        (("policy", "POST"), _status(200, SOAP, AUTH_FAULT[:300]), "policy", "malformed"),
    ],
)
def test_server_failures_are_clear(
    where: tuple[str, str], answer: Answer, stage: str, reason: str
) -> None:
    """A SOAP Fault with an enrollment error code, HTTP 401/404/500 and truncated XML each
    stop the flow with the stage, a reason a user can act on and the server's bytes."""
    server = Server()
    server.broken[where] = answer
    with pytest.raises(EnrollFailed) as caught:
        drive(enrollment(SETTINGS, FACTS, KEY), server)
    failed = caught.value
    assert (failed.stage, failed.reason) == (stage, reason)
    assert failed.excerpt  # the offending bytes, as text
    if reason == "soap-fault":
        assert failed.fault == {
            "code": "Receiver",
            "subcode": "Authentication",
            "error_type": "InvalidEnrollmentData",
            "hresult": "0x80180002",
        }


def test_a_certificate_for_another_key_is_refused() -> None:
    """The certificate that comes back must be for the key in the device's request."""
    from emulator.enroll.keys import certificate_request

    server = Server()
    server.issued_for = certificate_request("dev-1", KeyPool(2).key(1), "sha256")
    with pytest.raises(EnrollFailed) as caught:
        drive(enrollment(SETTINGS, FACTS, KEY), server)
    assert caught.value.reason == "certificate-mismatch"


def test_a_policy_the_device_did_not_offer_is_refused() -> None:
    """The device offered OnPremise and Federated; a server asking Certificate of a device
    without one cannot be followed."""
    with pytest.raises(EnrollFailed) as caught:
        drive(enrollment(SETTINGS, FACTS, KEY), Server("Certificate"))
    assert caught.value.reason == "unsupported-policy"


def test_retry_schedule() -> None:
    """Section 0: 5 minutes after the first failure, doubling, at most a day."""
    minutes = [enroll_retry_ms(n) // 60_000 for n in (1, 2, 3, 9, 10, 50)]
    assert minutes == [5, 10, 20, 1280, 1440, 1440]
