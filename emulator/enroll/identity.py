"""Enrolled devices' identities on the host: their certificate stores, as TLS contexts.

Owns: what a device installs from its provisioning document [MDE2 3.6] (its client
certificate with its private key, the trusted roots) kept as PEM files in a run-scoped
directory (Python's ``ssl`` loads a certificate chain only from a file), and one
``SSLContext`` per device built from them when its session needs it, kept in a bounded LRU
(a context costs ~1 ms and ~26 KB; a 10,000-device fleet would hold 260 MB otherwise).
Must not: decide anything about enrollment (``flow.py``) or sessions.
"""

from __future__ import annotations

import hashlib
import shutil
import ssl
import tempfile
from collections import OrderedDict
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from emulator.enroll.flow import Enrolled

CONTEXTS_KEPT = 512


class Identities:
    def __init__(self, ca_file: str | None = None, kept: int = CONTEXTS_KEPT) -> None:
        self.ca_file = ca_file  # trust beyond the provisioned roots (--server-ca)
        self.kept = kept
        self.directory = Path(tempfile.mkdtemp(prefix="dmemu-identities-"))
        self._files: dict[str, tuple[Path, Path]] = {}  # device -> (chain file, roots file)
        self._roots: dict[str, Path] = {}  # roots PEM digest -> file (shared by devices)
        self._contexts: OrderedDict[str, ssl.SSLContext] = OrderedDict()

    def install(self, device_id: str, enrolled: Enrolled) -> None:
        """Keep the device's certificate, key and roots (replacing an earlier enrollment's)."""
        p = enrolled.provisioned
        cert = x509.load_der_x509_certificate(p.client_cert)
        key_pem = enrolled.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        name = hashlib.sha256(device_id.encode()).hexdigest()[:24]
        chain = self.directory / f"{name}.pem"
        chain.write_bytes(cert.public_bytes(serialization.Encoding.PEM) + key_pem)
        roots_pem = b"".join(
            x509.load_der_x509_certificate(der).public_bytes(serialization.Encoding.PEM)
            for der in p.roots
        )
        digest = hashlib.sha256(roots_pem).hexdigest()[:24]
        roots = self._roots.get(digest)
        if roots is None:
            roots = self._roots[digest] = self.directory / f"roots-{digest}.pem"
            roots.write_bytes(roots_pem)
        self._files[device_id] = (chain, roots)
        self._contexts.pop(device_id, None)

    def enrolled(self, device_id: str) -> bool:
        return device_id in self._files

    def context(self, device_id: str) -> ssl.SSLContext | None:
        """The device's TLS context: its client certificate, trusting the provisioned roots
        and ``--server-ca``; None for a device that has not enrolled."""
        context = self._contexts.get(device_id)
        if context is not None:
            self._contexts.move_to_end(device_id)
            return context
        files = self._files.get(device_id)
        if files is None:
            return None
        chain, roots = files
        context = ssl.create_default_context(cafile=self.ca_file)
        if roots.stat().st_size:
            context.load_verify_locations(cafile=str(roots))
        context.load_cert_chain(str(chain))
        self._contexts[device_id] = context
        if len(self._contexts) > self.kept:
            self._contexts.popitem(last=False)
        return context

    def close(self) -> None:
        self._contexts.clear()
        shutil.rmtree(self.directory, ignore_errors=True)
