"""The provisioning document (wap-provisioningdoc) an enrollment returns [MDE2 3.6].

Owns: reading what a device takes from it, as Windows does: the trusted root (and
intermediate) certificates, its own client certificate (CertificateStore/My), the OMA-DM
server address and ProviderID (the ``w7`` APPLICATION characteristic), and the DMClient
settings of that provider (the Poll schedule); and writing one for the reference server.
Settings Windows does not take from this document are reported as ignored: Push is "not
configurable during WAP Provisioning XML" [DMC].
Must not: install anything or do I/O (the device runtime applies the result).
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from urllib.parse import urlsplit
from xml.etree.ElementTree import Element
from xml.sax.saxutils import quoteattr

from emulator.device.csp import POLL_DEFAULTS
from emulator.enroll.keys import thumbprint
from emulator.enroll.soap import SoapError, children, local, parse

POLL_PARMS = (
    "IntervalForFirstSetOfRetries",
    "NumberOfFirstRetries",
    "IntervalForSecondSetOfRetries",
    "NumberOfSecondRetries",
    "IntervalForRemainingScheduledRetries",
    "NumberOfRemainingScheduledRetries",
    "PollOnLogin",
    "AllUsersPollOnFirstLogin",
)


@dataclass(frozen=True, slots=True)
class Provisioned:
    roots: tuple[bytes, ...]  # DER certificates for the Root (and CA) stores
    client_cert: bytes  # DER: the device's certificate (CertificateStore/My)
    client_thumbprint: str  # as the document names it (checked against the DER)
    server_url: str  # w7 ADDR: where OMA-DM sessions go
    provider_id: str  # w7 PROVIDER-ID / the DMClient Provider node
    poll: dict[str, str] = field(default_factory=dict)  # DMClient/Provider/<id>/Poll parms
    ignored: tuple[str, ...] = ()  # settings present but not applied (why: see module doc)


def _characteristics(element: Element) -> dict[str, Element]:
    """Child characteristics by type (the first of each type)."""
    found: dict[str, Element] = {}
    for c in children(element, "characteristic"):
        found.setdefault(c.get("type", ""), c)
    return found


def _parms(element: Element) -> dict[str, str]:
    return {p.get("name", ""): p.get("value", "") for p in children(element, "parm")}


def _certificates(store: Element | None, raw: bytes) -> list[tuple[str, bytes]]:
    """(thumbprint as named, DER) of every certificate below a store's location nodes."""
    found: list[tuple[str, bytes]] = []
    if store is None:
        return found
    for location in children(store, "characteristic"):  # System | User
        for cert in children(location, "characteristic"):
            encoded = _parms(cert).get("EncodedCertificate")
            if encoded is None:
                continue  # e.g. PrivateKeyContainer, WSTEP/Renew settings
            try:
                der = base64.b64decode("".join(encoded.split()), validate=True)
            except binascii.Error:
                raise SoapError(
                    f"EncodedCertificate of {cert.get('type')!r} is not base64", raw
                ) from None
            found.append((cert.get("type", "").strip().upper(), der))
    return found


def read_document(raw: bytes) -> Provisioned:
    """What a device takes from the document; raises SoapError (the server's fault)."""
    root = parse(raw)
    if local(root.tag) != "wap-provisioningdoc":
        raise SoapError(f"the provisioning document is {local(root.tag)!r}", raw)
    top = _characteristics(root)
    stores = _characteristics(top["CertificateStore"]) if "CertificateStore" in top else {}
    roots = [der for _, der in _certificates(stores.get("Root"), raw)]
    roots += [der for _, der in _certificates(stores.get("CA"), raw)]
    mine = _certificates(stores.get("My"), raw)
    if not mine:
        raise SoapError("no client certificate under CertificateStore/My", raw)
    named, client = mine[0]
    if named and named != thumbprint(client):
        raise SoapError(
            f"CertificateStore/My names thumbprint {named}, the certificate's is "
            f"{thumbprint(client)}",
            raw,
        )
    app = next(
        (
            c
            for c in children(root, "characteristic")
            if c.get("type") == "APPLICATION" and _parms(c).get("APPID", "").lower() == "w7"
        ),
        None,
    )
    if app is None:
        raise SoapError("no APPLICATION characteristic with APPID w7 (the DM server)", raw)
    w7 = _parms(app)
    address = w7.get("ADDR", "").strip()
    if urlsplit(address).scheme not in ("http", "https") or not urlsplit(address).netloc:
        raise SoapError(f"w7 ADDR {address!r} is not an http(s) URL", raw)
    provider = w7.get("PROVIDER-ID", "").strip()
    poll: dict[str, str] = {}
    ignored: list[str] = []
    providers = _characteristics(top["DMClient"]).get("Provider") if "DMClient" in top else None
    for node in children(providers, "characteristic") if providers is not None else ():
        provider = provider or node.get("type", "")
        if node.get("type") != provider:
            continue
        sub = _characteristics(node)
        if "Poll" in sub:
            poll = {k: v for k, v in _parms(sub["Poll"]).items() if k in POLL_DEFAULTS}
        if "Push" in sub:
            ignored.append(f"DMClient/Provider/{provider}/Push")  # not configurable here [DMC]
    if not provider:
        raise SoapError("no ProviderID (w7 PROVIDER-ID or a DMClient Provider node)", raw)
    return Provisioned(
        roots=tuple(roots),
        client_cert=client,
        client_thumbprint=thumbprint(client),
        server_url=address,
        provider_id=provider,
        poll=poll,
        ignored=tuple(ignored),
    )


def write_document(
    root_der: bytes,
    client_der: bytes,
    server_url: str,
    provider_id: str,
    poll: tuple[tuple[str, str], ...],
) -> bytes:
    """The reference server's document, shaped as MS-MDE2's example [MDE2 3.6]."""

    def cert(der: bytes) -> str:
        return (
            f"<characteristic type={quoteattr(thumbprint(der))}>"
            f'<parm name="EncodedCertificate" value="{base64.b64encode(der).decode()}"/>'
            f"</characteristic>"
        )

    polls = "".join(
        f'<parm name={quoteattr(name)} value={quoteattr(value)} datatype="integer"/>'
        for name, value in poll
    )
    app = {
        "APPID": "w7",
        "PROVIDER-ID": provider_id,
        "NAME": "dmemu reference server",
        "ADDR": server_url,
        "CONNRETRYFREQ": "6",
        "INITIALBACKOFFTIME": "30000",
        "MAXBACKOFFTIME": "120000",
        "DEFAULTENCODING": "application/vnd.syncml.dm+xml",
    }
    w7 = "".join(f"<parm name={quoteattr(k)} value={quoteattr(v)}/>" for k, v in app.items())
    return (
        '<wap-provisioningdoc version="1.1">'
        '<characteristic type="CertificateStore">'
        f'<characteristic type="Root"><characteristic type="System">{cert(root_der)}'
        "</characteristic></characteristic>"
        f'<characteristic type="My"><characteristic type="User">{cert(client_der)}'
        "</characteristic></characteristic></characteristic>"
        f'<characteristic type="APPLICATION">{w7}</characteristic>'
        '<characteristic type="DMClient"><characteristic type="Provider">'
        f"<characteristic type={quoteattr(provider_id)}>"
        f'<characteristic type="Poll">{polls}</characteristic>'
        "</characteristic></characteristic></characteristic>"
        "</wap-provisioningdoc>"
    ).encode()
