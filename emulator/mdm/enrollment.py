"""The reference server's enrollment services [MDE2 3.1-3.6]: Discovery, Policy, Enrollment.

Owns: the three SOAP endpoints under ``/EnrollmentServer/`` and the Federated
authentication page; checking credentials per the server's AuthPolicy (OnPremise: a
UsernameToken, with ``--enroll-password`` the password must match; Federated: a
DeviceEnrollmentUserToken equal to ``--enroll-token``); who may enroll (the device list);
signing the device's certificate (``ca.py``) and answering the provisioning document with
this server's OMA-DM address, ProviderID and poll schedule. Every refusal is the SOAP Fault
a device understands [MDE2 2.2.10] and a log line with the offending bytes.
Must not: run OMA-DM sessions (``omadm.py``) or read the clock other than the app's.
"""

from __future__ import annotations

import hmac
from typing import TYPE_CHECKING

from aiohttp import web

from emulator.control.common import read_body
from emulator.enroll.discovery import DISCOVERY_PATH, DiscoverRequest, DiscoverResult
from emulator.enroll.keys import thumbprint
from emulator.enroll.policy import Policy, PolicyRequest
from emulator.enroll.provisioning import write_document
from emulator.enroll.security import Credentials
from emulator.enroll.soap import (
    ACTION_DISCOVER,
    ACTION_GET_POLICIES,
    ACTION_RSTRC,
    EXCERPT_BYTES,
    MAX_SOAP_BYTES,
    SOAP_CONTENT_TYPE,
    SoapError,
    fault_envelope,
)
from emulator.enroll.wstep import TokenRequest, token_response
from emulator.mdm.ca import CertificateRefused
from emulator.mdm.omadm import MAX_DEVICE_ID
from emulator.serving import Handler

if TYPE_CHECKING:
    from emulator.mdm.server import ReferenceServer

POLICY_PATH = "/EnrollmentServer/Policy.svc"
ENROLLMENT_PATH = "/EnrollmentServer/Enrollment.svc"
AUTH_PATH = "/EnrollmentServer/Authenticate"
POLICY = Policy(min_key_bits=2048, hash_name="sha256")


class Declined(Exception):
    """A request answered with a SOAP Fault: subcode, reason, HTTP status."""

    def __init__(self, subcode: str, reason: str, status: int = 500) -> None:
        super().__init__(reason)
        self.subcode = subcode
        self.reason = reason
        self.status = status


def routes(server: ReferenceServer) -> list[tuple[str, str, Handler]]:
    """(method, path, handler) of the enrollment services (mounted by ``app.py``)."""
    service = EnrollmentService(server)
    return [
        ("GET", DISCOVERY_PATH, service.discovery_probe),
        ("POST", DISCOVERY_PATH, service.discover),
        ("POST", POLICY_PATH, service.policies),
        ("POST", ENROLLMENT_PATH, service.enroll),
        ("GET", AUTH_PATH, service.authenticate_page),
    ]


class EnrollmentService:
    def __init__(self, server: ReferenceServer) -> None:
        self.server = server

    # -- Discovery ----------------------------------------------------------------------
    async def discovery_probe(self, request: web.Request) -> web.Response:
        """The device's GET before Discover: 200 says the service is there [MDE2 3.1.4]."""
        return web.Response(text="")

    async def discover(self, request: web.Request) -> web.Response:
        body = await self._body(request, ACTION_DISCOVER)
        if isinstance(body, web.Response):
            return body
        try:
            asked = DiscoverRequest.from_bytes(body)
        except SoapError as exc:
            return self._fault(request, ACTION_DISCOVER, None, _malformed(exc), body)
        base = _base(request)
        policy = self.server.config.enroll_policy
        result = DiscoverResult(
            auth_policy=policy,
            policy_url=f"{base}{POLICY_PATH}",
            enrollment_url=f"{base}{ENROLLMENT_PATH}",
            auth_url=f"{base}{AUTH_PATH}" if policy == "Federated" else None,
        )
        return _soap(result.to_bytes(asked.message_id or None))

    # -- Policy -------------------------------------------------------------------------
    async def policies(self, request: web.Request) -> web.Response:
        action = ACTION_GET_POLICIES
        body = await self._body(request, action)
        if isinstance(body, web.Response):
            return body
        try:
            asked = PolicyRequest.from_bytes(body)
            self._authenticate(asked.credentials)
        except SoapError as exc:
            return self._fault(request, action, None, _malformed(exc), body)
        except Declined as exc:
            return self._fault(request, action, None, exc, body)
        return _soap(POLICY.to_bytes(asked.message_id or None))

    # -- Enrollment ---------------------------------------------------------------------
    async def enroll(self, request: web.Request) -> web.Response:
        server = self.server
        body = await self._body(request, ACTION_RSTRC)
        if isinstance(body, web.Response):
            return body
        relates: str | None = None
        try:
            asked = TokenRequest.from_bytes(body)
            relates = asked.message_id or None
            user = self._authenticate(asked.credentials)
            device_id = asked.value("DeviceID") or ""
            if not 0 < len(device_id) <= MAX_DEVICE_ID or any(c.isspace() for c in device_id):
                raise Declined("MessageFormat", "AdditionalContext has no usable DeviceID", 400)
            allowed = server.endpoint.allowed
            if allowed is not None and device_id not in allowed:
                raise Declined("Authorization", f"device {device_id!r} may not enroll here")
            now = server.clock.now()
            try:
                der = server.ca.issue(asked.csr_der, device_id, now, POLICY.min_key_bits, user)
            except CertificateRefused as exc:
                raise Declined("CertificateRequest", str(exc)) from None
        except SoapError as exc:
            return self._fault(request, ACTION_RSTRC, relates, _malformed(exc), body)
        except Declined as exc:
            return self._fault(request, ACTION_RSTRC, relates, exc, body)
        base = _base(request)
        document = write_document(
            server.ca.der,
            der,
            f"{base}/ManagementServer/MDM.svc",
            server.config.provider_id,
            server.config.poll,
        )
        server.log.info(
            "mdm.enrollment_issued",
            device_id=device_id,
            thumbprint=thumbprint(der),
            auth_policy=server.config.enroll_policy,
            user=user,
        )
        return _soap(token_response(document, relates))

    async def authenticate_page(self, request: web.Request) -> web.Response:
        """Federated: where a browser would sign in. No browser runs under dmemu, so the page
        says how a token is had instead (the scenario's ``token`` or the admin API)."""
        return web.Response(
            text=(
                "<!doctype html><title>dmemu enrollment sign-in</title>"
                "<p>dmemu's reference server takes the token it was started with "
                "(--enroll-token). Devices get it from their scenario's enroll.token or "
                "from GET /admin/enrollment/token (the enroll_token hook).</p>"
            ),
            content_type="text/html",
        )

    # -- shared -------------------------------------------------------------------------
    def _authenticate(self, credentials: Credentials | None) -> str:
        """Who is enrolling, per this server's AuthPolicy; raises Declined."""
        config = self.server.config
        policy = config.enroll_policy
        if credentials is None or credentials.policy != policy:
            got = credentials.policy if credentials else "no wsse:Security token"
            raise Declined("InvalidSecurity", f"this server wants {policy} credentials, not {got}")
        if policy == "OnPremise":
            if not credentials.username:
                raise Declined("Authentication", "the UsernameToken has no Username")
            if config.enroll_password is not None and not hmac.compare_digest(
                credentials.password.encode(), config.enroll_password.encode()
            ):
                raise Declined("Authentication", f"wrong password for {credentials.username}")
            return credentials.username
        if config.enroll_token is not None and not hmac.compare_digest(
            credentials.token.encode(), config.enroll_token.encode()
        ):
            raise Declined("Authentication", "the federated token is not valid")
        if not credentials.token:
            raise Declined("Authentication", "the federated token is empty")
        return "federated"

    async def _body(self, request: web.Request, action: str) -> bytes | web.Response:
        if request.content_type != SOAP_CONTENT_TYPE:
            wrong = request.content_type
            return self._refuse(
                request, 415, f"Content-Type must be {SOAP_CONTENT_TYPE}, not {wrong!r}"
            )
        body, _, too_big = await read_body(request, MAX_SOAP_BYTES)
        if too_big:
            return self._refuse(request, 413, f"request over {MAX_SOAP_BYTES} bytes")
        return body

    def _refuse(self, request: web.Request, status: int, reason: str) -> web.Response:
        self.server.log.warning(
            "mdm.enrollment_refused", path=request.path, status=status, reason=reason
        )
        return web.Response(status=status, text=reason)

    def _fault(
        self,
        request: web.Request,
        action: str,
        relates: str | None,
        declined: Declined,
        body: bytes,
    ) -> web.Response:
        self.server.log.warning(
            "mdm.enrollment_declined",
            path=request.path,
            subcode=declined.subcode,
            reason=declined.reason,
            excerpt=body[:EXCERPT_BYTES].decode("utf-8", "replace"),
        )
        fault = fault_envelope(action, relates, declined.subcode, declined.reason)
        return _soap(fault, declined.status)


def _malformed(exc: SoapError) -> Declined:
    return Declined("MessageFormat", exc.problem, 400)


def _base(request: web.Request) -> str:
    """The origin the device used (so a device behind a name or a proxy port keeps it)."""
    return f"{request.scheme}://{request.host}"


def _soap(body: bytes, status: int = 200) -> web.Response:
    return web.Response(body=body, status=status, content_type=SOAP_CONTENT_TYPE, charset="utf-8")
