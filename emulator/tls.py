"""Local TLS: a dmemu CA kept on disk and leaf certificates for the host names we serve.

Owns: creating (once) and reusing the CA in a directory, issuing a leaf for the configured
host names, and the server ``SSLContext``. Senders trust the written CA file.
Must not: touch the system trust store. Certificates come from python-trio's ``trustme``.
"""

from __future__ import annotations

import os
import ssl
from pathlib import Path

import trustme

CA_CERT = "dmemu-ca.pem"
CA_KEY = "dmemu-ca.key"


def load_or_create_ca(directory: Path) -> trustme.CA:
    """The CA in ``directory``, created on first use, so trust survives restarts."""
    directory.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = directory / CA_CERT, directory / CA_KEY
    if cert_path.exists() and key_path.exists():
        return trustme.CA.from_pem(cert_path.read_bytes(), key_path.read_bytes())
    ca = trustme.CA(organization_name="dmemu", organization_unit_name="local test CA")
    ca.cert_pem.write_to_path(str(cert_path))
    key_path.touch(mode=0o600)
    os.chmod(key_path, 0o600)
    ca.private_key_pem.write_to_path(str(key_path))
    return ca


def server_context(hosts: list[str], directory: Path) -> tuple[ssl.SSLContext, Path]:
    """A server TLS context for ``hosts`` and the path of the CA file senders must trust."""
    ca = load_or_create_ca(directory)
    names = list(dict.fromkeys([*hosts, "localhost", "127.0.0.1"]))
    leaf = ca.issue_cert(*names)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    leaf.configure_cert(context)
    return context, directory / CA_CERT
