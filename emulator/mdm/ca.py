"""The reference server's enrollment CA: made on first start, kept in the SQLite store, and
signing the certificate each device asks for [MDE2 3.4].

Owns: the CA (RSA 2048, self-signed, ten years), checking a PKCS#10 request (well-formed,
its signature valid, an RSA key of at least the policy's size), the device certificate
(subject CN=<DeviceID>, client-authentication EKU, one year), its thumbprint recorded against
the DeviceID, and a CA's identity for a TLS server that verifies client certificates.
Must not: speak SOAP (``enrollment.py``) or read the clock (``now`` comes in).

An in-process server of a seeded run derives its CA key from the seed (``key_label``), and
serial numbers come from the request and the instant, so the same run issues the same
certificates (and logs the same thumbprints) on every machine.
"""

from __future__ import annotations

import datetime
import hashlib

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from emulator.enroll.keys import derive_key, thumbprint
from emulator.mdm.store import MdmStore

CA_NAME = "dmemu reference MDM enrollment CA"
CERT_DAYS = 365


class CertificateRefused(Exception):
    """A request the CA will not sign, and why (a CertificateRequest fault [MDE2 2.2.10])."""


def _when(ms: int) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(ms / 1000, tz=datetime.UTC)


class EnrollmentCa:
    def __init__(self, store: MdmStore, now: int, key_label: str | None = None) -> None:
        self.store = store
        saved = store.ca_pem()
        if saved is None:
            key = (
                derive_key(key_label)
                if key_label is not None
                else rsa.generate_private_key(public_exponent=65537, key_size=2048)
            )
            cert = _self_signed(key, now)
            key_pem = key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
            store.save_ca(cert.public_bytes(serialization.Encoding.PEM), key_pem)
            saved = store.ca_pem()
            assert saved is not None
        self.cert = x509.load_pem_x509_certificate(saved[0])
        loaded = serialization.load_pem_private_key(saved[1], password=None)
        if not isinstance(loaded, rsa.RSAPrivateKey):
            raise ValueError("the stored enrollment CA key is not RSA")
        self.key = loaded
        self.der = self.cert.public_bytes(serialization.Encoding.DER)
        self.pem = saved[0]

    def issue(self, csr_der: bytes, device_id: str, now: int, min_bits: int, who: str) -> bytes:
        """The device's certificate (DER) for its request; raises CertificateRefused."""
        try:
            csr = x509.load_der_x509_csr(csr_der)
        except ValueError as exc:
            raise CertificateRefused(f"the request is not a DER PKCS#10 ({exc})") from None
        if not csr.is_signature_valid:
            raise CertificateRefused("the request's signature does not verify")
        public = csr.public_key()
        if not isinstance(public, rsa.RSAPublicKey) or public.key_size < min_bits:
            raise CertificateRefused(f"the request's key is not RSA of at least {min_bits} bits")
        serial = hashlib.sha256(device_id.encode() + csr_der + str(now).encode()).digest()
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, device_id)]))
            .issuer_name(self.cert.subject)
            .public_key(public)
            .serial_number(int.from_bytes(serial[:16], "big") >> 1 | 1)
            .not_valid_before(_when(now - 3_600_000))
            .not_valid_after(_when(now + CERT_DAYS * 86_400_000))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(True, False, True, False, False, False, False, False, False),
                critical=True,
            )
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), False)
            .sign(self.key, hashes.SHA256())
        )
        der = cert.public_bytes(serialization.Encoding.DER)
        self.store.issued(thumbprint(der), device_id, now, who)
        return der


def _self_signed(key: rsa.RSAPrivateKey, now: int) -> x509.Certificate:
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "dmemu"),
            x509.NameAttribute(NameOID.COMMON_NAME, CA_NAME),
        ]
    )
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(int.from_bytes(hashlib.sha256(name.rfc4514_string().encode()).digest()[:8]))
        .not_valid_before(_when(now - 86_400_000))
        .not_valid_after(_when(now + 3650 * 86_400_000))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .sign(key, hashes.SHA256())
    )
