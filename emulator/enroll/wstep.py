"""The RequestSecurityToken exchange (MS-WSTEP as MS-MDE2 profiles it [MDE2 3.4]): the
certificate request and the provisioning document that comes back.

Owns: the device's RequestSecurityToken (a base64 PKCS#10 BinarySecurityToken and the
AdditionalContext items Windows sends [MDE2 3.4.4.1.1.1]), reading a server's
RequestSecurityTokenResponseCollection (the base64 wap-provisioningdoc [MDE2 3.4.4.1.1.3]),
and, for the reference server, reading a request and writing a response.
Must not: do I/O, sign anything, or read the provisioning document (``provisioning.py``).
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from xml.sax.saxutils import escape, quoteattr

from emulator.enroll.security import BASE64, MS_ENROLLMENT, Credentials, read_credentials
from emulator.enroll.soap import (
    ACTION_RST,
    ACTION_RSTRC,
    NS_AC,
    NS_WSSE,
    NS_WST,
    NS_WSTEP,
    SoapError,
    child,
    children,
    descendant,
    envelope,
    header,
    payload_or_fault,
    request_payload,
    text,
)

TOKEN_TYPE = f"{MS_ENROLLMENT}/DeviceEnrollmentToken"
ISSUE = "http://docs.oasis-open.org/ws-sx/ws-trust/200512/Issue"
PKCS10 = "http://schemas.microsoft.com/windows/pki/2009/01/enrollment#PKCS10"
PROVISION_DOC = f"{MS_ENROLLMENT}/DeviceEnrollmentProvisionDoc"


@dataclass(frozen=True, slots=True)
class TokenRequest:
    csr_der: bytes
    context: tuple[tuple[str, str], ...]  # (Name, Value), repeated names allowed (MAC)
    message_id: str = ""
    credentials: Credentials | None = None

    def value(self, name: str) -> str | None:
        return next((v for n, v in self.context if n == name), None)

    def to_bytes(self, to: str) -> bytes:
        items = "".join(
            f"<ac:ContextItem Name={quoteattr(n)}><ac:Value>{escape(v)}</ac:Value></ac:ContextItem>"
            for n, v in self.context
        )
        csr = base64.b64encode(self.csr_der).decode()
        payload = (
            f'<wst:RequestSecurityToken xmlns:wst="{NS_WST}" xmlns:wsse="{NS_WSSE}" '
            f'xmlns:ac="{NS_AC}"><wst:TokenType>{TOKEN_TYPE}</wst:TokenType>'
            f"<wst:RequestType>{ISSUE}</wst:RequestType>"
            f'<wsse:BinarySecurityToken ValueType="{PKCS10}" EncodingType="{BASE64}">{csr}'
            f"</wsse:BinarySecurityToken><ac:AdditionalContext>{items}</ac:AdditionalContext>"
            f"</wst:RequestSecurityToken>"
        )
        security = self.credentials.security_header() if self.credentials else ""
        return envelope(ACTION_RST, payload, to=to, msg_id=self.message_id, security=security)

    @classmethod
    def from_bytes(cls, body: bytes) -> TokenRequest:
        root, payload = request_payload(body, "RequestSecurityToken")
        token = child(payload, "BinarySecurityToken")
        if token is None:
            raise SoapError("RequestSecurityToken has no BinarySecurityToken (the CSR)", body)
        try:
            csr = base64.b64decode((token.text or "").strip(), validate=True)
        except binascii.Error:
            raise SoapError("the CSR BinarySecurityToken is not base64", body) from None
        context = child(payload, "AdditionalContext")
        pairs = tuple(
            (item.get("Name", ""), text(item, "Value") or "")
            for item in (children(context, "ContextItem") if context is not None else ())
        )
        return cls(csr, pairs, text(header(root, "MessageID")) or "", read_credentials(root))


def token_response(provisioning_doc: bytes, relates_to: str | None) -> bytes:
    """The RequestSecurityTokenResponseCollection carrying the provisioning document."""
    doc = base64.b64encode(provisioning_doc).decode()
    payload = (
        f'<RequestSecurityTokenResponseCollection xmlns="{NS_WST}">'
        f"<RequestSecurityTokenResponse><TokenType>{TOKEN_TYPE}</TokenType>"
        f'<DispositionMessage xmlns="{NS_WSTEP}"/><RequestedSecurityToken>'
        f'<BinarySecurityToken ValueType="{PROVISION_DOC}" EncodingType="{BASE64}" '
        f'xmlns="{NS_WSSE}">{doc}</BinarySecurityToken></RequestedSecurityToken>'
        f'<RequestID xmlns="{NS_WSTEP}">0</RequestID></RequestSecurityTokenResponse>'
        f"</RequestSecurityTokenResponseCollection>"
    )
    return envelope(ACTION_RSTRC, payload, relates_to=relates_to)


def read_token_response(body: bytes) -> bytes:
    """The provisioning document in a RequestSecurityTokenResponseCollection
    [MDE2 3.4.4.1.1.3]. Raises SoapError / FaultError."""
    payload = payload_or_fault(body, "RequestSecurityTokenResponseCollection")
    response = child(payload, "RequestSecurityTokenResponse")
    requested = child(response, "RequestedSecurityToken")
    token = descendant(requested, "BinarySecurityToken") if requested is not None else None
    if token is None:
        raise SoapError("no RequestedSecurityToken/BinarySecurityToken in the response", body)
    value_type = token.get("ValueType", "").strip()
    if value_type and value_type != PROVISION_DOC:
        raise SoapError(f"BinarySecurityToken ValueType {value_type!r} is not a ProvisionDoc", body)
    try:
        return base64.b64decode("".join((token.text or "").split()), validate=True)
    except binascii.Error:
        raise SoapError("the provisioning BinarySecurityToken is not base64", body) from None
