"""SOAP 1.2 as MS-MDE2 uses it: envelopes, WS-Addressing headers, faults, defensive parsing.

Owns: the namespaces and SOAP actions of the three enrollment services [MDE2 3.1-3.4],
parsing an untrusted body (defusedxml, a size limit) into an element tree that is matched by
*local name* so any namespace prefix, default namespace, whitespace and element order the
specifications allow is read; building an envelope; and the SOAP Fault both sides speak
(Code/Subcode, Reason, and MS-MDE2's DeviceEnrollmentServiceError detail [MDE2 3.4.4.1.1.4]).
Must not: know which message is which (``messages.py``) or do I/O.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from xml.etree.ElementTree import Element, ParseError  # types only; parsing is defused
from xml.sax.saxutils import escape, quoteattr

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring

SOAP_CONTENT_TYPE = "application/soap+xml"
MAX_SOAP_BYTES = 512 * 1024  # a provisioning response with a certificate chain is ~10 KB
EXCERPT_BYTES = 400

NS_S = "http://www.w3.org/2003/05/soap-envelope"
NS_A = "http://www.w3.org/2005/08/addressing"
NS_U = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"
NS_WSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
NS_WST = "http://docs.oasis-open.org/ws-sx/ws-trust/200512"
NS_AC = "http://schemas.xmlsoap.org/ws/2006/12/authorization"
NS_ENROLL_DISCOVERY = "http://schemas.microsoft.com/windows/management/2012/01/enrollment"
NS_XCEP = "http://schemas.microsoft.com/windows/pki/2009/01/enrollmentpolicy"
NS_WSTEP = "http://schemas.microsoft.com/windows/pki/2009/01/enrollment"
NS_XSI = "http://www.w3.org/2001/XMLSchema-instance"
ANONYMOUS = "http://www.w3.org/2005/08/addressing/anonymous"

ACTION_DISCOVER = f"{NS_ENROLL_DISCOVERY}/IDiscoveryService/Discover"
ACTION_GET_POLICIES = f"{NS_XCEP}/IPolicy/GetPolicies"
ACTION_RST = f"{NS_WSTEP}/RST/wstep"
ACTION_RSTRC = f"{NS_WSTEP}/RSTRC/wstep"


class SoapError(Exception):
    """A body that is not the SOAP message expected: what is wrong and the bytes."""

    def __init__(self, problem: str, body: bytes) -> None:
        super().__init__(problem)
        self.problem = problem
        self.excerpt = body[:EXCERPT_BYTES].decode("utf-8", "replace")


def local(tag: str) -> str:
    """``{ns}Name`` -> ``Name``."""
    return tag.rpartition("}")[2]


def parse(body: bytes) -> Element:
    """The document element of an untrusted body; raises :class:`SoapError`."""
    if len(body) > MAX_SOAP_BYTES:
        raise SoapError(f"over {MAX_SOAP_BYTES} bytes", body)
    if not body.strip():
        raise SoapError("empty body", body)
    try:
        root: Element = fromstring(body)
    except (ParseError, DefusedXmlException, ValueError) as exc:
        raise SoapError(f"not well-formed XML ({exc})", body) from None
    return root


def children(element: Element, name: str) -> Iterator[Element]:
    """Children whose local name is ``name``, in document order."""
    return (child for child in element if local(child.tag) == name)


def child(element: Element | None, *path: str) -> Element | None:
    """The first element along ``path`` of local names, or None."""
    for name in path:
        if element is None:
            return None
        element = next(children(element, name), None)
    return element


def text(element: Element | None, *path: str) -> str | None:
    """Stripped text along ``path`` (None when absent or ``xsi:nil``)."""
    found = child(element, *path)
    if found is None or found.get(f"{{{NS_XSI}}}nil") == "true":
        return None
    return (found.text or "").strip()


def descendant(element: Element, name: str) -> Element | None:
    """The first element anywhere below ``element`` with local name ``name``."""
    return next((e for e in element.iter() if local(e.tag) == name), None)


def body_of(root: Element, raw: bytes) -> Element:
    """The single payload element of ``s:Body``; raises :class:`SoapError`."""
    if local(root.tag) != "Envelope" or root.tag.partition("}")[0][1:] != NS_S:
        raise SoapError(f"document element is {local(root.tag)!r}, not a SOAP 1.2 Envelope", raw)
    body = child(root, "Body")
    payload = next(iter(body), None) if body is not None else None
    if payload is None:
        raise SoapError("the Envelope has no Body payload", raw)
    return payload


def header(root: Element, name: str) -> Element | None:
    return child(root, "Header", name)


def message_id() -> str:
    return f"urn:uuid:{uuid.uuid4()}"


def envelope(
    action: str,
    payload: str,
    *,
    to: str | None = None,
    msg_id: str | None = None,
    relates_to: str | None = None,
    security: str = "",
) -> bytes:
    """A SOAP 1.2 envelope with WS-Addressing (request: ``to`` and ``msg_id``; response:
    ``relates_to``) and an optional WS-Security header."""
    parts = [f'<a:Action s:mustUnderstand="1">{escape(action)}</a:Action>']
    if msg_id is not None:
        parts.append(f"<a:MessageID>{escape(msg_id)}</a:MessageID>")
        parts.append(f"<a:ReplyTo><a:Address>{ANONYMOUS}</a:Address></a:ReplyTo>")
    if relates_to is not None:
        parts.append(f"<a:RelatesTo>{escape(relates_to)}</a:RelatesTo>")
    if to is not None:
        parts.append(f'<a:To s:mustUnderstand="1">{escape(to)}</a:To>')
    if security:
        parts.append(
            f'<wsse:Security xmlns:wsse="{NS_WSSE}" xmlns:u="{NS_U}" s:mustUnderstand="1">'
            f"{security}</wsse:Security>"
        )
    return (
        f'<s:Envelope xmlns:s="{NS_S}" xmlns:a="{NS_A}">'
        f"<s:Header>{''.join(parts)}</s:Header>"
        f"<s:Body>{payload}</s:Body></s:Envelope>"
    ).encode()


# -- faults -------------------------------------------------------------------------------
#: s:Fault Subcode values [MDE2 2.2.10]: the Windows error each becomes, and its HRESULT
FAULT_SUBCODES = {
    "MessageFormat": ("MENROLL_E_DEVICE_MESSAGE_FORMAT_ERROR", 0x80180001),
    "Authentication": ("MENROLL_E_DEVICE_AUTHENTICATION_ERROR", 0x80180002),
    "Authorization": ("MENROLL_E_DEVICE_AUTHORIZATION_ERROR", 0x80180003),
    "CertificateRequest": ("MENROLL_E_DEVICE_CERTIFCATEREQUEST_ERROR", 0x80180004),
    "EnrollmentServer": ("MENROLL_E_DEVICE_CONFIGMGRSERVER_ERROR", 0x80180005),
    "InternalServiceFault": ("MENROLL_E_DEVICE_INTERNALSERVICE_ERROR", 0x80180006),
    "InvalidSecurity": ("MENROLL_E_DEVICE_INVALIDSECURITY_ERROR", 0x80180007),
}


@dataclass(frozen=True, slots=True)
class Fault:
    code: str  # s:Sender | s:Receiver (local part)
    subcode: str  # one of FAULT_SUBCODES, or whatever the server sent
    reason: str
    error_type: str | None = None  # DeviceEnrollmentServiceError/ErrorType, e.g. DeviceCapReached

    @property
    def hresult(self) -> str | None:
        """The HRESULT Windows reports for the subcode (0x8018000N), if it is a known one."""
        known = FAULT_SUBCODES.get(self.subcode)
        return f"0x{known[1]:08X}" if known else None

    def describe(self) -> str:
        kind = f" ({self.error_type})" if self.error_type else ""
        return f"SOAP fault {self.code}/{self.subcode}{kind}: {self.reason}"


def read_fault(payload: Element) -> Fault | None:
    """The Fault in a body payload, prefixes stripped from QName values, or None."""
    if local(payload.tag) != "Fault":
        return None

    def qname(value: str | None) -> str:
        return (value or "").rpartition(":")[2]

    code = child(payload, "Code")
    reason = child(payload, "Reason", "Text")
    return Fault(
        code=qname(text(code, "Value")),
        subcode=qname(text(code, "Subcode", "Value")) or "unspecified",
        reason=(reason.text or "").strip() if reason is not None else "",
        error_type=text(child(payload, "Detail"), "DeviceEnrollmentServiceError", "ErrorType"),
    )


class FaultError(Exception):
    """The server answered a SOAP Fault."""

    def __init__(self, fault: Fault, body: bytes) -> None:
        super().__init__(fault.describe())
        self.fault = fault
        self.excerpt = body[:EXCERPT_BYTES].decode("utf-8", "replace")


def request_payload(body: bytes, expected: str) -> tuple[Element, Element]:
    """A request's document element and its Body payload, which must be ``expected``;
    raises :class:`SoapError`."""
    root = parse(body)
    payload = body_of(root, body)
    if local(payload.tag) != expected:
        raise SoapError(f"the Body holds {local(payload.tag)!r}, not {expected}", body)
    return root, payload


def payload_or_fault(body: bytes, expected: str) -> Element:
    """The Body payload named ``expected``; raises :class:`FaultError` for a Fault and
    :class:`SoapError` for anything else."""
    payload = body_of(parse(body), body)
    fault = read_fault(payload)
    if fault is not None:
        raise FaultError(fault, body)
    if local(payload.tag) != expected:
        raise SoapError(f"the Body holds {local(payload.tag)!r}, not {expected}", body)
    return payload


def fault_envelope(
    action: str, relates_to: str | None, subcode: str, reason: str, error_type: str | None = None
) -> bytes:
    """The server's fault [MDE2 2.2.10]: the operation's response action, Code ``s:Receiver``
    (as the specification's example), the Subcode, the Reason, and optionally MS-MDE2's
    DeviceEnrollmentServiceError detail with an ErrorType."""
    prefix = "a" if subcode == "InvalidSecurity" else "s"
    detail = ""
    if error_type is not None:
        detail = (
            f'<s:Detail><DeviceEnrollmentServiceError xmlns="{NS_WSTEP}">'
            f"<ErrorType>{escape(error_type)}</ErrorType><Message>{escape(reason)}</Message>"
            f"</DeviceEnrollmentServiceError></s:Detail>"
        )
    payload = (
        f"<s:Fault><s:Code><s:Value>s:Receiver</s:Value><s:Subcode><s:Value>{prefix}:{subcode}"
        f"</s:Value></s:Subcode></s:Code><s:Reason><s:Text xml:lang={quoteattr('en-US')}>"
        f"{escape(reason)}</s:Text></s:Reason>{detail}</s:Fault>"
    )
    return envelope(action, payload, relates_to=relates_to)
