"""WS-Security tokens of the enrollment requests [MDE2 3.3.4.1.1.1][MDE2 3.4.4.1.1.1].

Owns: the credentials a device presents per AuthPolicy (OnPremise: a UsernameToken with the
password in text; Federated: a BinarySecurityToken of ValueType DeviceEnrollmentUserToken,
base64 of the token the authentication service gave; Certificate: nothing in the header, the
TLS client certificate speaks), writing them into a ``wsse:Security`` header and reading
them back on the server side.
Must not: check credentials (the server does) or log secrets.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from dataclasses import dataclass, field
from xml.etree.ElementTree import Element
from xml.sax.saxutils import escape

from emulator.enroll.soap import child, children, header, text

# URIs naming token types (not secrets, whatever ruff's S105 reads into "password")
_WSS = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss"
PASSWORD_TEXT = f"{_WSS}-username-token-profile-1.0#PasswordText"
MS_ENROLLMENT = "http://schemas.microsoft.com/5.0.0.0/ConfigurationManager/Enrollment"
USER_TOKEN = f"{MS_ENROLLMENT}/DeviceEnrollmentUserToken"
BASE64 = f"{_WSS}-wssecurity-secext-1.0.xsd#base64binary"


@dataclass(frozen=True, slots=True)
class Credentials:
    """What a device presents; secrets are kept out of ``repr`` (never logged)."""

    policy: str  # OnPremise | Federated | Certificate
    username: str = ""
    password: str = field(default="", repr=False)
    token: str = field(default="", repr=False)  # Federated: from the authentication service

    def security_header(self) -> str:
        """The inner XML of ``wsse:Security`` for this policy."""
        if self.policy == "OnPremise":
            return (
                f'<wsse:UsernameToken u:Id="uuid-{uuid.uuid4()}-1">'
                f"<wsse:Username>{escape(self.username)}</wsse:Username>"
                f'<wsse:Password wsse:Type="{PASSWORD_TEXT}">{escape(self.password)}'
                f"</wsse:Password></wsse:UsernameToken>"
            )
        if self.policy == "Federated":
            encoded = base64.b64encode(self.token.encode()).decode()
            return (
                f'<wsse:BinarySecurityToken ValueType="{USER_TOKEN}" EncodingType="{BASE64}">'
                f"{encoded}</wsse:BinarySecurityToken>"
            )
        return ""


def read_credentials(root: Element) -> Credentials | None:
    """The credentials in a request's ``wsse:Security`` header (None when it has none)."""
    security = header(root, "Security")
    if security is None:
        return None
    token = child(security, "UsernameToken")
    if token is not None:
        return Credentials(
            "OnPremise",
            username=text(token, "Username") or "",
            password=text(token, "Password") or "",
        )
    for binary in children(security, "BinarySecurityToken"):
        if binary.get("ValueType", "").strip() == USER_TOKEN:
            raw = (binary.text or "").strip()
            try:
                decoded = base64.b64decode(raw, validate=True).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError):
                decoded = raw  # some servers' tokens are sent as they are
            return Credentials("Federated", token=decoded)
    return None
