"""MS-MDE2 message shapes, device side: what dmemu sends, and what it reads from servers.

The server answers here are written from the structure of Microsoft's published MS-MDE2
examples (sections 3.1.4.1.1.2, 3.3.4.1.1.2, 3.4.4.1.1.3, 3.6 and 2.2.10), not copied, and
spelled the way other servers spell them: other namespace prefixes, a default namespace,
line breaks and indentation, extra header elements, and elements in another order."""

from __future__ import annotations

import base64

import pytest
from cryptography import x509

from emulator.enroll.discovery import DiscoverRequest, DiscoverResult, discovery_url
from emulator.enroll.keys import KeyPool, certificate_request, thumbprint
from emulator.enroll.policy import Policy, PolicyRequest, get_policies_request
from emulator.enroll.provisioning import read_document, write_document
from emulator.enroll.security import Credentials
from emulator.enroll.soap import FaultError, SoapError, parse, payload_or_fault
from emulator.enroll.wstep import TokenRequest, read_token_response, token_response

S12 = "http://www.w3.org/2003/05/soap-envelope"
WSA = "http://www.w3.org/2005/08/addressing"
DISCOVERY_NS = "http://schemas.microsoft.com/windows/management/2012/01/enrollment"


def test_discover_request_carries_what_windows_sends() -> None:
    """[MDE2 3.1.4.1.1.1]: the Discover action and To header, and in the request the
    EmailAddress, RequestVersion, DeviceType, ApplicationVersion, OSEdition and the
    AuthPolicies the device supports; the server side reads it back."""
    request = DiscoverRequest(
        "ann@contoso.com", auth_policies=("OnPremise", "Federated"), message_id="urn:uuid:1"
    )
    body = request.to_bytes("https://enterpriseenrollment.contoso.com/x")
    root = parse(body)
    assert root.tag == f"{{{S12}}}Envelope"
    action = root.find(f"{{{S12}}}Header/{{{WSA}}}Action")
    assert action is not None
    assert action.text == f"{DISCOVERY_NS}/IDiscoveryService/Discover"
    assert DiscoverRequest.from_bytes(body) == request


def test_discovery_url_from_an_email_address() -> None:
    """[MDE2 3.1.5.1]: EnterpriseEnrollment.<domain of the address>."""
    assert (
        discovery_url("Ann@Contoso.COM")
        == "https://enterpriseenrollment.contoso.com/EnrollmentServer/Discovery.svc"
    )
    with pytest.raises(ValueError, match="no domain"):
        discovery_url("ann")


DISCOVER_RESPONSE = f"""<?xml version="1.0" encoding="utf-8"?>
<soap:Envelope xmlns:soap="{S12}" xmlns:wsa="{WSA}">
  <soap:Header>
    <wsa:Action soap:mustUnderstand="1"
      >{DISCOVERY_NS}/IDiscoveryService/DiscoverResponse</wsa:Action>
    <ActivityId CorrelationId="8c4d" xmlns="http://schemas.microsoft.com/2004/09/servicemodel/diagnostics">8c4d</ActivityId>
    <wsa:RelatesTo>urn:uuid:1</wsa:RelatesTo>
  </soap:Header>
  <soap:Body xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
    <DiscoverResponse xmlns="{DISCOVERY_NS}">
      <DiscoverResult>
        <EnrollmentServiceUrl>
          https://mdm.contoso.com/EnrollmentServer/DeviceEnrollmentWebService.svc
        </EnrollmentServiceUrl>
        <EnrollmentVersion>4.0</EnrollmentVersion>
        <EnrollmentPolicyServiceUrl>https://mdm.contoso.com/EnrollmentServer/DeviceEnrollmentWebService.svc</EnrollmentPolicyServiceUrl>
        <AuthPolicy>{{policy}}</AuthPolicy>
        {{auth}}
      </DiscoverResult>
    </DiscoverResponse>
  </soap:Body>
</soap:Envelope>"""


def test_discover_response_read_with_other_prefixes_whitespace_and_order() -> None:
    """[MDE2 3.1.4.1.1.2]: AuthPolicy, EnrollmentPolicyServiceUrl, EnrollmentServiceUrl are
    read whatever the prefixes, indentation, extra headers and element order."""
    body = DISCOVER_RESPONSE.replace("{policy}", "OnPremise").replace("{auth}", "").encode()
    found = DiscoverResult.from_bytes(body)
    url = "https://mdm.contoso.com/EnrollmentServer/DeviceEnrollmentWebService.svc"
    assert found == DiscoverResult("OnPremise", url, url, "4.0", None)


def test_federated_discover_response_needs_its_authentication_url() -> None:
    """[MDE2 3.1.4.1.1.2]: Federated comes with AuthenticationServiceUrl; without it the
    answer is the server's fault."""
    auth = "<AuthenticationServiceUrl>https://sts.contoso.com/auth</AuthenticationServiceUrl>"
    body = DISCOVER_RESPONSE.replace("{policy}", "Federated").replace("{auth}", auth)
    assert DiscoverResult.from_bytes(body.encode()).auth_url == "https://sts.contoso.com/auth"
    with pytest.raises(SoapError, match="AuthenticationServiceUrl"):
        DiscoverResult.from_bytes(
            DISCOVER_RESPONSE.replace("{policy}", "Federated").replace("{auth}", "").encode()
        )


def test_get_policies_request_carries_the_username_token() -> None:
    """[MDE2 3.3.4.1.1.1]: GetPolicies with a WS-Security UsernameToken (OnPremise); the
    password never shows in the credentials' repr."""
    creds = Credentials("OnPremise", "ann@contoso.com", "pa<ss>")
    body = get_policies_request("https://x/Policy.svc", "urn:uuid:2", creds)
    read = PolicyRequest.from_bytes(body)
    assert read.message_id == "urn:uuid:2"
    assert read.credentials == creds
    assert "pa<ss>" not in repr(read.credentials)


GET_POLICIES_RESPONSE = """<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"
    xmlns:a="http://www.w3.org/2005/08/addressing">
 <s:Header><a:Action s:mustUnderstand="1">
  http://schemas.microsoft.com/windows/pki/2009/01/enrollmentpolicy/IPolicy/GetPoliciesResponse
 </a:Action><a:RelatesTo>urn:uuid:2</a:RelatesTo></s:Header>
 <s:Body xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
  <p:GetPoliciesResponse xmlns:p="http://schemas.microsoft.com/windows/pki/2009/01/enrollmentpolicy">
   <p:response>
    <p:policyID/><p:policyFriendlyName xsi:nil="true"/>
    <p:policies><p:policy>
      <p:policyOIDReference>0</p:policyOIDReference><p:cAs xsi:nil="true"/>
      <p:attributes>
       <p:policySchema>3</p:policySchema>
       <p:hashAlgorithmOIDReference>7</p:hashAlgorithmOIDReference>
       <p:privateKeyAttributes>
        <p:minimalKeyLength>2048</p:minimalKeyLength><p:keySpec xsi:nil="true"/>
       </p:privateKeyAttributes>
      </p:attributes>
    </p:policy></p:policies>
   </p:response>
   <p:cAs xsi:nil="true"/>
   <p:oIDs><p:oID>
     <p:value>1.3.14.3.2.29</p:value><p:group>1</p:group>
     <p:oIDReferenceID>7</p:oIDReferenceID><p:defaultName>szOID_OIWSEC_sha1RSASign</p:defaultName>
   </p:oID></p:oIDs>
  </p:GetPoliciesResponse>
 </s:Body>
</s:Envelope>"""


def test_policy_response_gives_key_length_and_hash() -> None:
    """[MDE2 3.3.4.1.1.2]: minimalKeyLength, and the hash through hashAlgorithmOIDReference
    into oIDs (here sha1RSA, as in the specification's example), prefixed elements."""
    assert Policy.from_bytes(GET_POLICIES_RESPONSE.encode()) == Policy(2048, "sha1")
    assert Policy.from_bytes(Policy(4096, "sha512").to_bytes("urn:uuid:x")) == Policy(
        4096, "sha512"
    )


def test_policy_naming_an_unknown_oid_is_the_servers_fault() -> None:
    body = GET_POLICIES_RESPONSE.replace("<p:oIDReferenceID>7", "<p:oIDReferenceID>8")
    with pytest.raises(SoapError, match="names no oID"):
        Policy.from_bytes(body.encode())


def test_token_request_carries_csr_and_context_items() -> None:
    """[MDE2 3.4.4.1.1.1]: a base64 PKCS#10 BinarySecurityToken signed by the device's key,
    subject CN=<DeviceID>, and the AdditionalContext items in Windows' order (repeated MAC
    allowed), with the Federated token in the Security header."""
    key = KeyPool(2).key(0)
    csr_der = certificate_request("dev-1", key, "sha1")
    context = (("DeviceID", "dev-1"), ("MAC", "02:00:00:00:00:01"), ("MAC", "02:00:00:00:00:02"))
    creds = Credentials("Federated", token="eyJ0eXAi.token")
    request = TokenRequest(csr_der, context, "urn:uuid:3", creds)
    read = TokenRequest.from_bytes(request.to_bytes("https://x/Enrollment.svc"))
    assert read == request
    csr = x509.load_der_x509_csr(read.csr_der)
    assert csr.is_signature_valid
    assert csr.subject.rfc4514_string() == "CN=dev-1"
    assert csr.public_key().public_numbers() == key.public_key().public_numbers()


def _rstrc(doc: bytes, *, prefix: str = "wst", fold: bool = True) -> bytes:
    encoded = base64.b64encode(doc).decode()
    if fold:  # base64 broken into lines, as .NET writes long values
        encoded = "\n".join(encoded[i : i + 76] for i in range(0, len(encoded), 76))
    return f"""<s:Envelope xmlns:s="{S12}" xmlns:a="{WSA}"><s:Header>
<a:Action s:mustUnderstand="1">http://schemas.microsoft.com/windows/pki/2009/01/enrollment/RSTRC/wstep</a:Action>
</s:Header><s:Body>
<{prefix}:RequestSecurityTokenResponseCollection xmlns:{prefix}="http://docs.oasis-open.org/ws-sx/ws-trust/200512">
 <{prefix}:RequestSecurityTokenResponse>
  <{prefix}:TokenType>http://schemas.microsoft.com/5.0.0.0/ConfigurationManager/Enrollment/DeviceEnrollmentToken</{prefix}:TokenType>
  <DispositionMessage xmlns="http://schemas.microsoft.com/windows/pki/2009/01/enrollment"/>
  <{prefix}:RequestedSecurityToken>
   <BinarySecurityToken ValueType="http://schemas.microsoft.com/5.0.0.0/ConfigurationManager/Enrollment/DeviceEnrollmentProvisionDoc"
     EncodingType="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd#base64binary"
     xmlns="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd">{encoded}</BinarySecurityToken>
  </{prefix}:RequestedSecurityToken>
  <RequestID xmlns="http://schemas.microsoft.com/windows/pki/2009/01/enrollment">0</RequestID>
 </{prefix}:RequestSecurityTokenResponse>
</{prefix}:RequestSecurityTokenResponseCollection></s:Body></s:Envelope>""".encode()


def test_token_response_gives_the_provisioning_document() -> None:
    """[MDE2 3.4.4.1.1.3]: the base64 wap-provisioningdoc in RequestedSecurityToken, line
    breaks in the base64 and any prefix allowed; ours reads back the same."""
    doc = b'<wap-provisioningdoc version="1.1"/>'
    assert read_token_response(_rstrc(doc)) == doc
    assert read_token_response(_rstrc(doc, prefix="t", fold=False)) == doc
    assert read_token_response(token_response(doc, "urn:uuid:3")) == doc


def _certificate(common_name: str) -> bytes:
    import trustme

    ca = trustme.CA()
    leaf = ca.issue_cert(common_name)
    pem = leaf.cert_chain_pems[0].bytes()
    from cryptography.hazmat.primitives import serialization

    der = x509.load_pem_x509_certificate(pem).public_bytes(serialization.Encoding.DER)
    root = x509.load_pem_x509_certificate(ca.cert_pem.bytes())
    return der + b"|" + root.public_bytes(serialization.Encoding.DER)


def test_provisioning_document_as_the_specification_shapes_it() -> None:
    """[MDE2 3.6]: the root from CertificateStore/Root/System, the client certificate from
    My/User (beside PrivateKeyContainer and the WSTEP renewal settings), ADDR and
    PROVIDER-ID from the w7 APPLICATION (with its APPAUTH children), the Poll parms of the
    provider's DMClient node; a Push node there is not applied: "not configurable during
    WAP Provisioning XML" [DMC]."""
    client, _, root = _certificate("dev-1").partition(b"|")
    b64 = base64.b64encode
    doc = f"""<wap-provisioningdoc version="1.1">
  <characteristic type="CertificateStore">
    <characteristic type="Root"><characteristic type="System">
      <characteristic type="{thumbprint(root)}">
        <parm name="EncodedCertificate" value="{b64(root).decode()}" />
      </characteristic></characteristic></characteristic>
    <characteristic type="My">
      <characteristic type="User">
        <characteristic type="{thumbprint(client).lower()}">
          <parm name="EncodedCertificate" value="{b64(client).decode()}" />
        </characteristic>
        <characteristic type="PrivateKeyContainer" />
      </characteristic>
      <characteristic type="WSTEP"><characteristic type="Renew">
        <parm name="ROBOSupport" value="true" datatype="boolean" />
      </characteristic></characteristic>
    </characteristic>
  </characteristic>
  <characteristic type="APPLICATION">
    <parm name="APPID" value="w7" />
    <parm name="PROVIDER-ID" value="ContosoMDM" />
    <parm name="NAME" value="Contoso" />
    <parm name="ADDR" value="https://mdm.contoso.com/omadm/WindowsPhone.ashx" />
    <characteristic type="APPAUTH"><parm name="AAUTHLEVEL" value="CLIENT" /></characteristic>
  </characteristic>
  <characteristic type="DMClient"><characteristic type="Provider">
    <characteristic type="ContosoMDM">
      <characteristic type="Poll">
        <parm name="NumberOfFirstRetries" value="8" datatype="integer" />
        <parm name="IntervalForFirstSetOfRetries" value="15" datatype="integer" />
        <parm name="SomethingElse" value="1" />
      </characteristic>
      <characteristic type="Push">
        <parm name="PFN" value="contoso.mdm_8wekyb3d8bbwe" />
      </characteristic>
    </characteristic>
  </characteristic></characteristic>
</wap-provisioningdoc>""".encode()
    got = read_document(doc)
    assert got.roots == (root,)
    assert got.client_cert == client
    assert got.client_thumbprint == thumbprint(client)
    assert got.server_url == "https://mdm.contoso.com/omadm/WindowsPhone.ashx"
    assert got.provider_id == "ContosoMDM"
    assert got.poll == {"NumberOfFirstRetries": "8", "IntervalForFirstSetOfRetries": "15"}
    assert got.ignored == ("DMClient/Provider/ContosoMDM/Push",)


def test_provisioning_document_faults_name_what_is_wrong() -> None:
    """A document without a client certificate, with a thumbprint that is not the
    certificate's, or without a w7 ADDR is the server's fault."""
    client, _, root = _certificate("dev-1").partition(b"|")
    good = write_document(root, client, "https://m/x", "P", (("NumberOfFirstRetries", "4"),))
    assert read_document(good).provider_id == "P"
    with pytest.raises(SoapError, match="names thumbprint"):
        read_document(good.replace(thumbprint(client).encode(), b"00" * 20))
    with pytest.raises(SoapError, match="ADDR"):
        read_document(good.replace(b"https://m/x", b"ftp://m/x"))
    with pytest.raises(SoapError, match="no client certificate"):
        read_document(b'<wap-provisioningdoc version="1.1"/>')


FAULT = f"""<s:Envelope xmlns:s="{S12}" xmlns:a="{WSA}">
 <s:Header><a:Action s:mustUnderstand="1">http://schemas.microsoft.com/windows/pki/2009/01/enrollment/RSTRC/wstep</a:Action>
 <a:RelatesTo>urn:uuid:0d5a</a:RelatesTo></s:Header>
 <s:Body><s:Fault>
  <s:Code><s:Value>s:Receiver</s:Value><s:Subcode><s:Value>s:Authentication</s:Value></s:Subcode></s:Code>
  <s:Reason><s:Text xml:lang="en-US">User not recognized</s:Text></s:Reason>
  <s:Detail><DeviceEnrollmentServiceError xmlns="http://schemas.microsoft.com/windows/pki/2009/01/enrollment">
   <ErrorType>InvalidEnrollmentData</ErrorType><Message>no</Message></DeviceEnrollmentServiceError></s:Detail>
 </s:Fault></s:Body></s:Envelope>"""


def test_soap_fault_is_read_with_its_windows_error() -> None:
    """[MDE2 2.2.10]: Code, Subcode (its prefix stripped), Reason, the HRESULT Windows
    reports for the subcode, and the DeviceEnrollmentServiceError ErrorType."""
    with pytest.raises(FaultError) as caught:
        payload_or_fault(FAULT.encode(), "RequestSecurityTokenResponseCollection")
    fault = caught.value.fault
    assert (fault.code, fault.subcode, fault.reason) == (
        "Receiver",
        "Authentication",
        "User not recognized",
    )
    assert fault.hresult == "0x80180002"
    assert fault.error_type == "InvalidEnrollmentData"


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b"", "empty body"),
        (b"<s:Envelope xmlns:s='http://www.w3.org/2003/05/soap-envelope'><s:Bo", "well-formed"),
        (b"<Envelope/>", "not a SOAP 1.2 Envelope"),
        (b"<!DOCTYPE x [<!ENTITY a 'b'>]><x>&a;</x>", "well-formed"),
        (b"<x>" + b"a" * (600 * 1024) + b"</x>", "over"),
    ],
)
def test_untrusted_bodies_are_refused_with_the_reason(body: bytes, problem: str) -> None:
    """Everything a server sends is parsed defensively: size limit, defusedxml (no entity
    expansion), a clear reason and the bytes kept."""
    with pytest.raises(SoapError, match=problem) as caught:
        payload_or_fault(body, "DiscoverResponse")
    assert caught.value.excerpt == body[:400].decode("utf-8", "replace")
