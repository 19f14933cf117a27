"""The reference server's enrollment services and its mutual TLS [MDE2][MSMDM 3.1]: what a
device gets for each kind of request, and that a server over TLS serves only devices with
the certificate it issued them (issue 18)."""

from __future__ import annotations

import ssl
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import trustme
from aiohttp.test_utils import TestClient
from structlog.testing import capture_logs

from emulator.clock import VirtualClock
from emulator.enroll.discovery import DISCOVERY_PATH, DiscoverRequest, DiscoverResult
from emulator.enroll.driver import Enroller
from emulator.enroll.flow import DeviceFacts, EnrollSettings
from emulator.enroll.identity import Identities
from emulator.enroll.keys import KeyPool, certificate_request
from emulator.enroll.policy import get_policies_request
from emulator.enroll.security import Credentials
from emulator.enroll.soap import FaultError, payload_or_fault
from emulator.enroll.wstep import TokenRequest
from emulator.mdm.app import OMADM_PATH
from emulator.mdm.config import MdmConfig
from emulator.mdm.enrollment import ENROLLMENT_PATH, POLICY_PATH
from emulator.mdm.server import ReferenceServer, start_mdm
from emulator.tls import server_context
from tests.conftest import APP_A
from tests.test_mdm_endpoints import package1

AiohttpClient = Callable[..., Awaitable[TestClient[Any, Any]]]
SOAP = {"Content-Type": "application/soap+xml; charset=utf-8"}
KEYS = KeyPool(2)


def _token_request(device_id: str, creds: Credentials | None, csr: bytes | None = None) -> bytes:
    csr = csr or certificate_request(device_id, KEYS.key(0), "sha256")
    context = (("DeviceID", device_id), ("EnrollmentType", "Full"))
    return TokenRequest(csr, context, "urn:uuid:9", creds).to_bytes("https://x")


def _fault_of(body: bytes) -> tuple[str, str]:
    with pytest.raises(FaultError) as caught:
        payload_or_fault(body, "RequestSecurityTokenResponseCollection")
    return caught.value.fault.subcode, caught.value.fault.reason


async def test_discovery_answers_the_servers_policy_and_urls(
    make_client: Callable[..., Awaitable[TestClient[Any, Any]]],
) -> None:
    """GET answers 200 (the device's availability probe); POST Discover answers the
    AuthPolicy and the Policy and Enrollment service URLs on the origin the device used,
    and for Federated the AuthenticationServiceUrl [MDE2 3.1.4]."""
    client = await make_client(enroll_policy="Federated", enroll_token="t")
    assert (await client.get(DISCOVERY_PATH)).status == 200
    request = DiscoverRequest("ann@contoso.com", message_id="urn:uuid:1")
    resp = await client.post(DISCOVERY_PATH, data=request.to_bytes("x"), headers=SOAP)
    assert resp.status == 200
    found = DiscoverResult.from_bytes(await resp.read())
    base = str(client.make_url("")).rstrip("/")
    assert found.auth_policy == "Federated"
    assert found.policy_url == f"{base}{POLICY_PATH}"
    assert found.enrollment_url == f"{base}{ENROLLMENT_PATH}"
    assert found.auth_url is not None


@pytest.mark.parametrize(
    ("config", "body", "status", "subcode"),
    [
        ({}, b"<not xml", 400, "MessageFormat"),
        ({}, _token_request("dev-1", None), 500, "InvalidSecurity"),
        (
            {"enroll_password": "right"},
            _token_request("dev-1", Credentials("OnPremise", "ann", "wrong")),
            500,
            "Authentication",
        ),
        (
            {"allowed_devices": frozenset({"dev-2"})},
            _token_request("dev-1", Credentials("OnPremise", "ann", "x")),
            500,
            "Authorization",
        ),
        (
            {},
            _token_request("dev-1", Credentials("OnPremise", "ann", "x"), csr=b"\x30\x03junk"),
            500,
            "CertificateRequest",
        ),
        (
            {"enroll_policy": "Federated", "enroll_token": "good"},
            _token_request("dev-1", Credentials("Federated", token="bad")),
            500,
            "Authentication",
        ),
    ],
)
async def test_enrollment_declines_with_the_fault_a_device_understands(
    make_client: Callable[..., Awaitable[TestClient[Any, Any]]],
    config: dict[str, Any],
    body: bytes,
    status: int,
    subcode: str,
) -> None:
    """[MDE2 2.2.10]: malformed XML (MessageFormat), no credentials (InvalidSecurity), a
    wrong password or token (Authentication), a device not on the list (Authorization), a
    request that is not a valid PKCS#10 (CertificateRequest); each with a log line holding
    the offending bytes, and the server goes on serving."""
    client = await make_client(**config)
    with capture_logs() as logs:
        resp = await client.post(ENROLLMENT_PATH, data=body, headers=SOAP)
    assert resp.status == status
    assert resp.content_type == "application/soap+xml"
    assert _fault_of(await resp.read())[0] == subcode
    declined = [e for e in logs if e["event"] == "mdm.enrollment_declined"]
    assert declined[0]["subcode"] == subcode
    assert declined[0]["excerpt"] == body[:400].decode("utf-8", "replace")
    assert (await client.get(DISCOVERY_PATH)).status == 200


async def test_wrong_content_type_is_415(
    make_client: Callable[..., Awaitable[TestClient[Any, Any]]],
) -> None:
    """A SOAP 1.2 service takes application/soap+xml only (what WCF answers otherwise)."""
    client = await make_client()
    body = get_policies_request("x", "urn:uuid:1", Credentials("OnPremise", "a", "b"))
    resp = await client.post(POLICY_PATH, data=body, headers={"Content-Type": "text/xml"})
    assert resp.status == 415


async def test_ca_is_made_once_and_kept_in_the_store(tmp_path: Path, clock: VirtualClock) -> None:
    """The CA is generated on first start and kept in the SQLite store: a restart signs
    with the same CA, and the certificates it issued still name their devices."""
    db = tmp_path / "mdm.sqlite"
    first = ReferenceServer(MdmConfig(app=APP_A), clock, db=db)
    der = first.ca.issue(
        certificate_request("dev-1", KEYS.key(0), "sha256"), "dev-1", clock.now(), 2048, "u"
    )
    pem = first.ca.pem
    await first.close()
    again = ReferenceServer(MdmConfig(app=APP_A), clock, db=db)
    try:
        assert again.ca.pem == pem
        from emulator.enroll.keys import thumbprint

        assert again.store.certificates[thumbprint(der)] == "dev-1"
    finally:
        await again.close()


async def test_omadm_over_tls_serves_only_the_certificate_issued_to_the_device(
    tmp_path: Path, clock: VirtualClock
) -> None:
    """Served over TLS, the OMA-DM endpoint requires the client certificate this server
    issued at enrollment, tied to the DeviceID [MSMDM 3.1]: no certificate, or the
    certificate of another device, gets 403 and a log line; a certificate of another CA is
    refused in the TLS handshake; the enrolled device's own certificate is served."""
    server = ReferenceServer(MdmConfig(app=APP_A, ca_key_label="tls-test-ca"), clock)
    context, ca_file = server_context(["127.0.0.1"], tmp_path / "tls")
    running = await start_mdm(server, ssl_context=context)
    identities = Identities(str(ca_file))
    url = f"{running.url}{OMADM_PATH}"
    headers = {"Content-Type": "application/vnd.syncml.dm+xml"}
    try:
        trusting = aiohttp.TCPConnector(ssl=ssl.create_default_context(cafile=str(ca_file)))
        async with aiohttp.ClientSession(connector=trusting) as http:
            enroller = Enroller(http, KEYS, 0, ca_file=str(ca_file))
            settings = EnrollSettings(f"{running.url}{DISCOVERY_PATH}", "ann@contoso.com")
            for device_id in ("dev-1", "dev-2"):
                facts = DeviceFacts(device_id, "en-US", "10.0.19045.1")
                enrolled = await enroller.enroll(settings, facts)
                identities.install(device_id, enrolled)

            async def post(device_id: str, tls: ssl.SSLContext | None) -> int:
                trust = tls or ssl.create_default_context(cafile=str(ca_file))
                async with http.post(
                    url, data=package1(device_id), headers=headers, ssl=trust
                ) as resp:
                    return resp.status

            with capture_logs() as logs:
                assert await post("dev-1", None) == 403
                assert await post("dev-1", identities.context("dev-2")) == 403
                assert await post("dev-1", identities.context("dev-1")) == 200
            refused = [e for e in logs if e["event"] == "mdm.request_refused"]
            assert "required" in refused[0]["reason"]
            assert "issued to dev-2" in refused[1]["reason"]

            other = trustme.CA()
            foreign = ssl.create_default_context(cafile=str(ca_file))
            other.issue_cert("dev-1").configure_cert(foreign)
            with pytest.raises(aiohttp.ClientError):
                await post("dev-1", foreign)
    finally:
        identities.close()
        await running.stop()
