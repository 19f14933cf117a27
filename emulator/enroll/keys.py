"""Device keys and certificate requests: a seeded, shared pool of RSA keys, one CSR per device.

Owns: deriving RSA keys from a label (pycryptodome's generator fed a SHAKE-256 stream of the
label, so the same label gives the same key on every machine), a disk cache of them (a
2048-bit key costs ~0.3 s to derive, ~0.03 s to load), the pool a fleet draws from (a device
takes key ``seed(device) mod size``), and the PKCS#10 request a device sends [MDE2 3.4.4.1.1.1]
(pyca/cryptography).

Why a pool: generating a fresh RSA-2048 key costs tens of milliseconds, too much for 10,000
devices. Every device still gets its own CSR and certificate (so its own thumbprint, and
the server ties that certificate to its DeviceID), but devices whose ids hash alike share a
private key. A server that rejects a public key it has seen before would notice; none that
we know of does, and the README says so. Test keys only: never use them anywhere else.
Must not: talk to servers or read the clock.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from Crypto.Hash import SHAKE256
from Crypto.PublicKey import RSA
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from emulator.device.rng import device_seed

DEFAULT_POOL_SIZE = 16
MAX_POOL_SIZE = 4096
#: the hash a CSR is signed with, by the policy's hash. pyca/cryptography no longer signs
#: with SHA-1, so a SHA-1 policy (MS-MDE2's example names sha1RSA) gets a SHA-256 request
#: (a documented deviation, docs/protocol-decisions.md).
HASHES: dict[str, hashes.SHA256 | hashes.SHA384 | hashes.SHA512] = {
    "sha1": hashes.SHA256(),
    "sha256": hashes.SHA256(),
    "sha384": hashes.SHA384(),
    "sha512": hashes.SHA512(),
}


def cache_dir() -> Path:
    """Where derived keys are kept: ``$DMEMU_CACHE_DIR``, else the XDG cache directory."""
    explicit = os.environ.get("DMEMU_CACHE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "dmemu" / "keys"


def derive_key(label: str, bits: int = 2048, cache: Path | None = None) -> rsa.RSAPrivateKey:
    """The RSA key of ``label``: the same on every machine; cached on disk when it can be."""
    directory = cache_dir() if cache is None else cache
    name = hashlib.sha256(f"{label}:{bits}".encode()).hexdigest()[:32]
    path = directory / f"rsa{bits}-{name}.pem"
    try:
        loaded = serialization.load_pem_private_key(
            path.read_bytes(), password=None, unsafe_skip_rsa_key_validation=True
        )  # our own derived key: the full RSA check costs ~30 ms per key
        if isinstance(loaded, rsa.RSAPrivateKey) and loaded.key_size == bits:
            return loaded
    except (OSError, ValueError, TypeError):
        pass  # absent or damaged: derive it again
    stream = SHAKE256.new(f"dmemu key v1:{label}:{bits}".encode())
    pem = RSA.generate(bits, randfunc=stream.read).export_key(format="PEM", pkcs=8)
    key = serialization.load_pem_private_key(pem, password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(f".{os.getpid()}.tmp")
        partial.write_bytes(pem)
        partial.chmod(0o600)
        partial.replace(path)  # atomic: concurrent runs never read half a key
    except OSError:
        pass  # a read-only home still works, only slower
    return key


class KeyPool:
    """``size`` derived keys of ``bits`` bits, made on first use (``prepare`` makes them all)."""

    def __init__(self, size: int = DEFAULT_POOL_SIZE, bits: int = 2048) -> None:
        if not 1 <= size <= MAX_POOL_SIZE:
            raise ValueError(f"key pool size {size} is outside 1..{MAX_POOL_SIZE}")
        self.size = size
        self.bits = bits
        self._keys: dict[int, rsa.RSAPrivateKey] = {}

    def key(self, index: int) -> rsa.RSAPrivateKey:
        key = self._keys.get(index)
        if key is None:
            key = self._keys[index] = derive_key(f"device-pool-{index}", self.bits)
        return key

    def prepare(self) -> None:
        for index in range(self.size):
            self.key(index)

    def for_device(self, seed: int, device_id: str) -> rsa.RSAPrivateKey:
        return self.key(device_seed(seed, f"key:{device_id}") % self.size)


def certificate_request(device_id: str, key: rsa.RSAPrivateKey, hash_name: str) -> bytes:
    """The device's PKCS#10 request, DER: subject CN=<DeviceID>, signed with the policy's
    hash [MDE2 3.4.4.1.1.1]."""
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, device_id)])
    builder = x509.CertificateSigningRequestBuilder().subject_name(subject)
    csr = builder.sign(key, HASHES[hash_name])
    return csr.public_bytes(serialization.Encoding.DER)


def thumbprint(der: bytes) -> str:
    """A certificate's thumbprint as Windows shows it: SHA-1 of the DER, upper-case hex."""
    return hashlib.sha1(der, usedforsecurity=False).hexdigest().upper()
