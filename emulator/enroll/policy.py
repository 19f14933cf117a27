"""The GetPolicies exchange (MS-XCEP as MS-MDE2 profiles it [MDE2 3.3]): what key and hash
the server wants in the certificate request.

Owns: the device's GetPolicies request (with its WS-Security credentials), reading a
server's GetPoliciesResponse (minimal key length, the hash algorithm through its OID
reference), and, for the reference server, reading a request and writing a response.
Must not: do I/O or generate keys (``keys.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from xml.sax.saxutils import escape

from emulator.enroll.security import Credentials, read_credentials
from emulator.enroll.soap import (
    ACTION_GET_POLICIES,
    NS_XCEP,
    NS_XSI,
    SoapError,
    child,
    children,
    envelope,
    header,
    payload_or_fault,
    request_payload,
    text,
)

#: hash algorithm OIDs a policy may name, by the hash the CSR is signed with
HASH_OIDS = {
    "1.3.14.3.2.26": "sha1",
    "1.3.14.3.2.29": "sha1",  # sha1RSASign, the specification's example
    "1.2.840.113549.1.1.5": "sha1",
    "2.16.840.1.101.3.4.2.1": "sha256",
    "1.2.840.113549.1.1.11": "sha256",
    "2.16.840.1.101.3.4.2.2": "sha384",
    "2.16.840.1.101.3.4.2.3": "sha512",
}
SHA256_OID = "2.16.840.1.101.3.4.2.1"


def get_policies_request(to: str, msg_id: str, credentials: Credentials) -> bytes:
    payload = (
        f'<GetPolicies xmlns="{NS_XCEP}" xmlns:xsi="{NS_XSI}"><client>'
        f'<lastUpdate xsi:nil="true"/><preferredLanguage xsi:nil="true"/></client>'
        f'<requestFilter xsi:nil="true"/></GetPolicies>'
    )
    return envelope(
        ACTION_GET_POLICIES,
        payload,
        to=to,
        msg_id=msg_id,
        security=credentials.security_header(),
    )


@dataclass(frozen=True, slots=True)
class PolicyRequest:
    message_id: str
    credentials: Credentials | None

    @classmethod
    def from_bytes(cls, body: bytes) -> PolicyRequest:
        root, _ = request_payload(body, "GetPolicies")
        return cls(text(header(root, "MessageID")) or "", read_credentials(root))


@dataclass(frozen=True, slots=True)
class Policy:
    min_key_bits: int = 2048
    hash_name: str = "sha256"  # one of HASH_OIDS' values

    def to_bytes(self, relates_to: str | None, common_name: str = "dmemu") -> bytes:
        oid = next(o for o, h in HASH_OIDS.items() if h == self.hash_name)
        nil = 'xsi:nil="true"'
        payload = (
            f'<GetPoliciesResponse xmlns="{NS_XCEP}" xmlns:xsi="{NS_XSI}"><response>'
            f"<policyID/><policyFriendlyName {nil}/><nextUpdateHours {nil}/>"
            f"<policiesNotChanged {nil}/><policies><policy>"
            f"<policyOIDReference>0</policyOIDReference><cAs {nil}/><attributes>"
            f"<commonName>{escape(common_name)}</commonName><policySchema>3</policySchema>"
            f"<certificateValidity><validityPeriodSeconds>31536000</validityPeriodSeconds>"
            f"<renewalPeriodSeconds>3628800</renewalPeriodSeconds></certificateValidity>"
            f"<permission><enroll>true</enroll><autoEnroll>false</autoEnroll></permission>"
            f"<privateKeyAttributes><minimalKeyLength>{self.min_key_bits}</minimalKeyLength>"
            f"<keySpec {nil}/><keyUsageProperty {nil}/><permissions {nil}/>"
            f"<algorithmOIDReference {nil}/><cryptoProviders {nil}/></privateKeyAttributes>"
            f"<revision><majorRevision>101</majorRevision><minorRevision>0</minorRevision>"
            f"</revision><supersededPolicies {nil}/><privateKeyFlags {nil}/>"
            f"<subjectNameFlags {nil}/><enrollmentFlags {nil}/><generalFlags {nil}/>"
            f"<hashAlgorithmOIDReference>0</hashAlgorithmOIDReference>"
            f"<rARequirements {nil}/><keyArchivalAttributes {nil}/><extensions {nil}/>"
            f"</attributes></policy></policies></response><cAs {nil}/><oIDs><oID>"
            f"<value>{oid}</value><group>1</group><oIDReferenceID>0</oIDReferenceID>"
            f"<defaultName>{self.hash_name}</defaultName></oID></oIDs></GetPoliciesResponse>"
        )
        return envelope(f"{ACTION_GET_POLICIES}Response", payload, relates_to=relates_to)

    @classmethod
    def from_bytes(cls, body: bytes) -> Policy:
        """The first policy's key and hash requirements [MDE2 3.3.4.1.1.2]; absent values
        take MS-MDE2's defaults (RSA 2048, SHA-256). Raises SoapError / FaultError."""
        payload = payload_or_fault(body, "GetPoliciesResponse")
        policy = child(payload, "response", "policies", "policy")
        if policy is None:
            raise SoapError("GetPoliciesResponse has no response/policies/policy", body)
        attributes = child(policy, "attributes")
        bits_text = text(attributes, "privateKeyAttributes", "minimalKeyLength")
        try:
            bits = int(bits_text) if bits_text else 2048
        except ValueError:
            raise SoapError(f"minimalKeyLength {bits_text!r} is not a number", body) from None
        if not 1024 <= bits <= 4096:
            raise SoapError(f"minimalKeyLength {bits} is outside 1024..4096", body)
        hash_name = "sha256"
        reference = text(attributes, "hashAlgorithmOIDReference")
        if reference:
            oids = child(payload, "oIDs")
            if oids is None:  # some servers put oIDs inside response
                oids = child(payload, "response", "oIDs")
            values = {
                text(o, "oIDReferenceID"): text(o, "value")
                for o in (children(oids, "oID") if oids is not None else ())
            }
            oid = values.get(reference)
            if oid is None:
                raise SoapError(f"hashAlgorithmOIDReference {reference} names no oID", body)
            if oid not in HASH_OIDS:
                raise SoapError(f"hash algorithm OID {oid} is not one Windows signs with", body)
            hash_name = HASH_OIDS[oid]
        return cls(min_key_bits=bits, hash_name=hash_name)
