"""The DCC XMLDSig profile: genuine DCC signatures, ours, and Debian xmlsec1 as referee."""

from __future__ import annotations

import base64
import datetime as dt
import re
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, utils
from cryptography.x509.oid import NameOID
from lxml import etree

from signer.duis.names import same_distinguished_name
from signer.duis.request import RequestId, build_update_firmware
from signer.duis.schema import DuisSchema
from signer.duis.xmldsig import (
    DS_NS,
    ECDSA_SHA256,
    ENVELOPED_SIGNATURE,
    EXC_C14N,
    SHA256,
    sign_document,
    verify_document,
)
from signer.duis.xmlparse import parse_xml
from signer.errors import InvalidInput, SignatureInvalid, Unsigned
from signer.gbcs.eui import Eui64
from tests.support.certificates import self_signed

Xmlsec1 = Callable[[bytes, Path, Path], subprocess.CompletedProcess[str]]
SignDigest = Callable[[bytes], bytes]

P256_N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
XML_CERT = "xml-sign-90B3D51F30010000-ds.pem"
RID = RequestId.parse("90-B3-D5-1F-30-01-00-00:90-B3-D5-1F-30-00-00-02:1001")
DEVICES = [Eui64.parse("00-DB-12-34-56-78-90-A0"), Eui64.parse("00-DB-12-34-56-78-90-A1")]


def all_certs(vectors: Path) -> list[x509.Certificate]:
    out = []
    for path in sorted((vectors / "certs").glob("*.pem")):
        try:
            out.append(x509.load_pem_x509_certificate(path.read_bytes()))
        except ValueError:  # mdr-*: NULL signature parameters, refused by cryptography
            continue
    return out


def response_time(xml: bytes) -> dt.datetime:
    m = re.search(rb"<sr:ResponseDateTime>([^<]+)</sr:ResponseDateTime>", xml)
    assert m is not None
    return dt.datetime.fromisoformat(m.group(1).decode().replace("Z", "+00:00"))


def build(service: str = "11.1") -> etree._Element:
    return build_update_firmware(
        request_id=RID,
        service=service,
        firmware_image=bytes(range(256)) * 40,
        firmware_version="0102",
        devices=DEVICES,
    )


def signed_request(sign_digest: SignDigest, cert: x509.Certificate, service: str = "11.1") -> bytes:
    return sign_document(
        build(service),
        sign_digest=sign_digest,
        issuer_name=cert.issuer.rfc4514_string(),
        serial=cert.serial_number,
    )


# -- genuine DCC signatures ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("document", "signer_cert"),
    [
        ("dcc_message.xml", "Z1-accessControlBroker-ds.pem"),
        ("dcc_read-inventory-response-4g.xml", "dsp-xml-sign-90B3D51F30000002-ds.pem"),
        ("dcc_read-inventory-response-5.4.xml", "Z1-accessControlBroker-dSPXmlSign.pem"),
        ("dcc_readfw-response.xml", "dsp-xml-sign-90B3D51F30000002-ds-pre-1.4.1.pem"),
        ("dcc_readfw-response-resigned.xml", "Z1-accessControlBroker-dSPXmlSign.pem"),
    ],
)
def test_genuine_dcc_signatures_verify(vectors: Path, document: str, signer_cert: str) -> None:
    xml = (vectors / "xmldsig" / document).read_bytes()
    expected = x509.load_pem_x509_certificate((vectors / "certs" / signer_cert).read_bytes())
    result = verify_document(xml, certificates=all_certs(vectors), now=response_time(xml))
    assert result.certificate == expected
    assert result.serial == expected.serial_number
    assert result.issuer_name == "CN=Z1,OU=07"
    digest_value = re.search(rb"<ds:DigestValue>([^<]+)<", xml)
    assert digest_value is not None
    assert result.digest == base64.b64decode(digest_value.group(1))


@pytest.mark.parametrize(
    ("document", "signer_cert", "valid"),
    [
        ("dcc_readfw-response.xml", "dsp-xml-sign-90B3D51F30000002-ds-pre-1.4.1.pem", True),
        (
            "dcc_readfw-response-badsignature.xml",
            "dsp-xml-sign-90B3D51F30000002-ds-pre-1.4.1.pem",
            False,
        ),
        ("dcc_read-inventory-response-5.4.xml", "Z1-accessControlBroker-dSPXmlSign.pem", True),
    ],
)
def test_xmlsec1_agrees_on_the_dcc_vectors(
    vectors: Path, tmp_path: Path, xmlsec1: Xmlsec1, document: str, signer_cert: str, valid: bool
) -> None:
    xml = (vectors / "xmldsig" / document).read_bytes()
    proc = xmlsec1(xml, vectors / "certs" / signer_cert, tmp_path)
    assert (proc.returncode == 0) is valid, proc.stderr


def test_genuine_signature_with_only_the_signer_pinned(vectors: Path) -> None:
    xml = (vectors / "xmldsig" / "dcc_message.xml").read_bytes()
    cert = x509.load_pem_x509_certificate(
        (vectors / "certs" / "Z1-accessControlBroker-ds.pem").read_bytes()
    )
    verify_document(xml, certificates=[cert])


def test_broken_dcc_signature_is_refused(vectors: Path) -> None:
    xml = (vectors / "xmldsig" / "dcc_readfw-response-badsignature.xml").read_bytes()
    with pytest.raises(SignatureInvalid, match="signature mismatch"):
        verify_document(xml, certificates=all_certs(vectors))


def test_unsigned_dcc_response_is_reported_unsigned(vectors: Path) -> None:
    xml = (vectors / "xmldsig" / "dcc_unsigned_acknowledgement-error.xml").read_bytes()
    with pytest.raises(Unsigned):
        verify_document(xml, certificates=all_certs(vectors))


def test_placeholder_signature_is_not_a_signature(vectors: Path) -> None:
    xml = (vectors / "xmldsig" / "placeholder_ECS17b_signed.xml").read_bytes()
    with pytest.raises(SignatureInvalid, match="placeholder") as e:
        verify_document(xml, certificates=all_certs(vectors))
    assert not isinstance(e.value, Unsigned)


def test_signer_certificate_outside_validity_is_refused(vectors: Path) -> None:
    xml = (vectors / "xmldsig" / "dcc_message.xml").read_bytes()
    with pytest.raises(SignatureInvalid, match="expired on 2025-10-29"):
        verify_document(
            xml, certificates=all_certs(vectors), now=dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
        )


def test_unknown_signer_is_refused(vectors: Path) -> None:
    xml = (vectors / "xmldsig" / "dcc_message.xml").read_bytes()
    other = x509.load_pem_x509_certificate((vectors / "certs" / XML_CERT).read_bytes())
    with pytest.raises(SignatureInvalid, match="unknown signer"):
        verify_document(xml, certificates=[other])


@pytest.mark.parametrize(
    "doc",
    [
        b'<!DOCTYPE r [<!ENTITY x "y">]><r>&x;</r>',
        b'<?xml version="1.0"?><!DOCTYPE r SYSTEM "file:///etc/passwd"><r/>',
        b'<!DOCTYPE r [<!ENTITY a "aa"><!ENTITY b "&a;&a;&a;&a;">]><r>&b;</r>',
    ],
)
def test_doctype_and_entities_are_refused(vectors: Path, doc: bytes) -> None:
    with pytest.raises(InvalidInput, match="DOCTYPE") as e:
        verify_document(doc, certificates=all_certs(vectors))
    assert not isinstance(e.value, SignatureInvalid)


# -- our signatures ------------------------------------------------------------------------


@pytest.mark.parametrize("service", ["11.1", "11.4"])
def test_round_trip_is_schema_valid_and_verified_by_both(
    vectors: Path,
    tmp_path: Path,
    schema: DuisSchema,
    sign_digest: SignDigest,
    xml_cert: x509.Certificate,
    xmlsec1: Xmlsec1,
    service: str,
) -> None:
    root = build(service)
    schema.validate(root)
    signed = sign_document(
        root,
        sign_digest=sign_digest,
        issuer_name=xml_cert.issuer.rfc4514_string(),
        serial=xml_cert.serial_number,
    )
    assert signed.startswith(b'<?xml version="1.0" encoding="UTF-8"?><sr:Request ')
    schema.validate(parse_xml(signed, field="signed"))
    result = verify_document(
        signed, certificates=[xml_cert], now=dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
    )
    assert result.certificate == xml_cert
    proc = xmlsec1(signed, vectors / "certs" / XML_CERT, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.startswith("OK")  # xmlsec1 reports on stderr


def test_tampered_device_list_fails_both(
    vectors: Path,
    tmp_path: Path,
    sign_digest: SignDigest,
    xml_cert: x509.Certificate,
    xmlsec1: Xmlsec1,
) -> None:
    signed = signed_request(sign_digest, xml_cert)
    tampered = signed.replace(b"00-DB-12-34-56-78-90-A1<", b"00-DB-12-34-56-78-90-A2<")
    assert tampered != signed and len(tampered) == len(signed)
    with pytest.raises(SignatureInvalid, match="digest mismatch"):
        verify_document(tampered, certificates=[xml_cert])
    proc = xmlsec1(tampered, vectors / "certs" / XML_CERT, tmp_path)
    assert proc.returncode != 0


def test_another_key_fails_both(
    vectors: Path,
    tmp_path: Path,
    sign_digest: SignDigest,
    xml_cert: x509.Certificate,
    xmlsec1: Xmlsec1,
) -> None:
    signed = signed_request(sign_digest, xml_cert)
    other_pem = vectors / "certs" / "xml-sign-90B3D51F30020000-ds.pem"
    other = x509.load_pem_x509_certificate(other_pem.read_bytes())
    # Point KeyInfo at the other certificate (KeyInfo is outside SignedInfo).
    relabelled = signed.replace(
        str(xml_cert.serial_number).encode(), str(other.serial_number).encode()
    )
    with pytest.raises(SignatureInvalid, match="signature mismatch"):
        verify_document(relabelled, certificates=[xml_cert, other])
    assert xmlsec1(signed, other_pem, tmp_path).returncode != 0


def test_whitespace_after_the_signature_is_part_of_the_document(
    vectors: Path,
    tmp_path: Path,
    sign_digest: SignDigest,
    xml_cert: x509.Certificate,
    xmlsec1: Xmlsec1,
) -> None:
    # The enveloped transform removes the Signature element, not the text after it.
    signed = signed_request(sign_digest, xml_cert)
    with_tail = signed.replace(b"</ds:Signature>", b"</ds:Signature>\n")
    with pytest.raises(SignatureInvalid, match="digest mismatch"):
        verify_document(with_tail, certificates=[xml_cert])
    assert xmlsec1(with_tail, vectors / "certs" / XML_CERT, tmp_path).returncode != 0


def test_signature_of_the_rtds_template_has_the_profile_structure(
    vectors: Path,
    tmp_path: Path,
    schema: DuisSchema,
    sign_digest: SignDigest,
    xml_cert: x509.Certificate,
    xmlsec1: Xmlsec1,
) -> None:
    template = (vectors / "duis" / "11.1_UPDATE_FIRMWARE_REQUEST_DUIS.XML").read_bytes()
    root = parse_xml(template, field="template")
    placeholder = root.find(f"{{{DS_NS}}}Signature")
    assert placeholder is not None
    root.remove(placeholder)
    signed = sign_document(root, sign_digest=sign_digest, issuer_name="CN=Z1,OU=07", serial=42)
    assert b"\n" not in signed and b"  " not in signed  # pretty-printing was dropped

    doc = parse_xml(signed, field="signed")
    ns = {"ds": DS_NS}
    sig = doc[-1]
    assert sig.tag == f"{{{DS_NS}}}Signature"
    assert [etree.QName(c).localname for c in sig] == ["SignedInfo", "SignatureValue", "KeyInfo"]
    assert sig.nsmap == doc.nsmap  # ds comes from the root, no re-declaration
    assert sig.xpath("ds:SignedInfo/ds:CanonicalizationMethod/@Algorithm", namespaces=ns) == [
        EXC_C14N
    ]
    assert doc.xpath("//ds:SignatureMethod/@Algorithm", namespaces=ns) == [ECDSA_SHA256]
    refs = doc.xpath("//ds:Reference", namespaces=ns)
    assert len(refs) == 1 and refs[0].get("URI") == ""
    assert doc.xpath("//ds:Transform/@Algorithm", namespaces=ns) == [ENVELOPED_SIGNATURE]
    assert doc.xpath("//ds:DigestMethod/@Algorithm", namespaces=ns) == [SHA256]
    assert len(base64.b64decode(doc.findtext(".//ds:DigestValue", "", namespaces=ns))) == 32
    assert len(base64.b64decode(doc.findtext(".//ds:SignatureValue", "", namespaces=ns))) == 64
    issuer_serial = "ds:KeyInfo/ds:X509Data/ds:X509IssuerSerial/"
    assert sig.findtext(issuer_serial + "ds:X509IssuerName", namespaces=ns) == "CN=Z1,OU=07"
    assert sig.findtext(issuer_serial + "ds:X509SerialNumber", namespaces=ns) == "42"
    schema.validate(doc)
    # The RTDS body survives untouched.
    assert b"<sr:FirmwareImage>HvHuCwABPAAEAB0SAADcrNys" in signed
    # Signed with the real key, so xmlsec1 accepts it regardless of the KeyInfo serial.
    assert xmlsec1(signed, vectors / "certs" / XML_CERT, tmp_path).returncode == 0


def test_signature_value_with_line_breaks_and_high_s_verifies(
    sign_digest: SignDigest, xml_cert: x509.Certificate
) -> None:
    signed = signed_request(sign_digest, xml_cert)
    m = re.search(rb"<ds:SignatureValue>([^<]+)</ds:SignatureValue>", signed)
    assert m is not None
    raw = base64.b64decode(m.group(1))
    s = int.from_bytes(raw[32:], "big")
    high_s = raw[:32] + (P256_N - s).to_bytes(32, "big")  # the other valid s
    b64 = base64.b64encode(high_s)
    wrapped = b64[:76] + b"&#13;\n " + b64[76:]
    variant = signed.replace(m.group(0), b"<ds:SignatureValue>" + wrapped + b"</ds:SignatureValue>")
    verify_document(variant, certificates=[xml_cert])


def test_issuer_name_is_matched_as_a_name(
    sign_digest: SignDigest, xml_cert: x509.Certificate
) -> None:
    signed = sign_document(
        build(), sign_digest=sign_digest, issuer_name="CN=Z1, OU=07", serial=xml_cert.serial_number
    )
    assert verify_document(signed, certificates=[xml_cert]).issuer_name == "CN=Z1, OU=07"


@pytest.mark.parametrize(
    ("old", "new", "reason"),
    [
        (ECDSA_SHA256, "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256", "SignatureMethod"),
        (EXC_C14N, "http://www.w3.org/TR/2001/REC-xml-c14n-20010315", "CanonicalizationMethod"),
        (SHA256, "http://www.w3.org/2000/09/xmldsig#sha1", "DigestMethod"),
        ('URI=""', 'URI="#body"', "Reference URI"),
        (ENVELOPED_SIGNATURE, EXC_C14N, "Transform"),
    ],
)
def test_anything_outside_the_profile_is_refused_by_name(
    sign_digest: SignDigest, xml_cert: x509.Certificate, old: str, new: str, reason: str
) -> None:
    signed = signed_request(sign_digest, xml_cert)
    assert old.encode() in signed
    with pytest.raises(SignatureInvalid, match=reason):
        verify_document(signed.replace(old.encode(), new.encode()), certificates=[xml_cert])


def test_der_signature_value_is_refused(
    sign_digest: SignDigest, xml_cert: x509.Certificate
) -> None:
    from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

    signed = signed_request(sign_digest, xml_cert)
    m = re.search(rb"<ds:SignatureValue>([^<]+)</ds:SignatureValue>", signed)
    assert m is not None
    raw = base64.b64decode(m.group(1))
    der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    variant = signed.replace(m.group(1), base64.b64encode(der))
    with pytest.raises(SignatureInvalid, match="raw r"):
        verify_document(variant, certificates=[xml_cert])


def test_signature_not_last_is_refused(sign_digest: SignDigest, xml_cert: x509.Certificate) -> None:
    signed = signed_request(sign_digest, xml_cert)
    root = parse_xml(signed, field="x")
    sig = root[-1]
    root.insert(1, sig)  # between Header and Body
    moved = etree.tostring(root)
    with pytest.raises(SignatureInvalid, match="last child"):
        verify_document(moved, certificates=[xml_cert])


def test_two_signatures_are_refused(sign_digest: SignDigest, xml_cert: x509.Certificate) -> None:
    signed = signed_request(sign_digest, xml_cert)
    m = re.search(rb"<ds:Signature>.*</ds:Signature>", signed)
    assert m is not None
    doubled = signed.replace(b"<sr:Body>", m.group(0) + b"<sr:Body>")
    with pytest.raises(SignatureInvalid, match="2 ds:Signature"):
        verify_document(doubled, certificates=[xml_cert])


def test_signing_twice_is_refused(sign_digest: SignDigest, xml_cert: x509.Certificate) -> None:
    root = build()
    sign_document(root, sign_digest=sign_digest, issuer_name="CN=Z1,OU=07", serial=1)
    with pytest.raises(InvalidInput, match="already carries"):
        sign_document(root, sign_digest=sign_digest, issuer_name="CN=Z1,OU=07", serial=1)


def test_bad_signer_output_leaves_the_document_unsigned() -> None:
    root = build()
    with pytest.raises(ValueError, match="expected raw r"):
        sign_document(root, sign_digest=lambda d: b"\x30" * 70, issuer_name="CN=Z1,OU=07", serial=1)
    assert root[-1].tag != f"{{{DS_NS}}}Signature"


def test_sign_digest_receives_the_hash_of_the_canonical_signed_info(
    sign_digest: SignDigest, xml_cert: x509.Certificate
) -> None:
    import copy
    import hashlib

    seen: list[bytes] = []

    def spy(digest: bytes) -> bytes:
        seen.append(digest)
        return sign_digest(digest)

    root = build()
    sign_document(root, sign_digest=spy, issuer_name="CN=Z1,OU=07", serial=1)
    signed_info = copy.deepcopy(root[-1][0])
    c14n = etree.tostring(signed_info, method="c14n", exclusive=True)
    assert c14n.startswith(b'<ds:SignedInfo xmlns:ds="http://www.w3.org/2000/09/xmldsig#">')
    assert seen == [hashlib.sha256(c14n).digest()]


def test_documents_signed_in_a_row_each_carry_their_own_values(
    vectors: Path,
    tmp_path: Path,
    sign_digest: SignDigest,
    xml_cert: x509.Certificate,
    xmlsec1: Xmlsec1,
) -> None:
    # Alternating ds prefixes (root's ds:, another prefix, default namespace, none declared)
    # and KeyInfo values: nothing from one signature may show up in the next.
    template = (vectors / "duis" / "11.1_UPDATE_FIRMWARE_REQUEST_DUIS.XML").read_bytes()
    docs: list[Callable[[], etree._Element]] = [
        build,
        lambda: parse_xml(f'<r xmlns:x="{DS_NS}">\n <a>1</a>\n</r>'.encode(), field="doc"),
        lambda: parse_xml(f'<r xmlns="{DS_NS}"><a>2</a></r>'.encode(), field="doc"),
        lambda: parse_xml(b'<r xmlns="urn:r" xmlns:ds="urn:not-ds"><a>3</a></r>', field="doc"),
        lambda: parse_xml(template, field="template"),
    ]
    keyinfo = [
        ("CN=Z1,OU=07", xml_cert.serial_number),
        ('CN=A&B <c> "q",OU=07', 0),
        ("CN=Z1, OU=07", xml_cert.serial_number),
        ("CN=Zürich,OU=07", 2**159 + 1),
    ]
    ns = {"ds": DS_NS}
    signed_trees: list[tuple[etree._Element, bytes]] = []
    for i in range(2 * len(docs)):
        root = docs[i % len(docs)]()
        for old in root.findall("ds:Signature", ns):
            root.remove(old)
        issuer, serial = keyinfo[i % len(keyinfo)]
        signed = sign_document(root, sign_digest=sign_digest, issuer_name=issuer, serial=serial)
        proc = xmlsec1(signed, vectors / "certs" / XML_CERT, tmp_path)
        assert proc.returncode == 0, (i, proc.stderr)
        sig = parse_xml(signed, field="signed")[-1]
        issuer_serial = "ds:KeyInfo/ds:X509Data/ds:X509IssuerSerial/"
        assert sig.findtext(issuer_serial + "ds:X509IssuerName", namespaces=ns) == issuer
        assert sig.findtext(issuer_serial + "ds:X509SerialNumber", namespaces=ns) == str(serial)
        if serial == xml_cert.serial_number:
            assert verify_document(signed, certificates=[xml_cert]).issuer_name == issuer
        signed_trees.append((root, signed))
    for root, signed in signed_trees:  # signed in place, and untouched by later signings
        body = etree.tostring(root, encoding="UTF-8", xml_declaration=False)
        assert signed == b'<?xml version="1.0" encoding="UTF-8"?>' + body


def test_document_left_unsigned_by_a_failing_signer_signs_cleanly_later(
    vectors: Path,
    tmp_path: Path,
    sign_digest: SignDigest,
    xml_cert: x509.Certificate,
    xmlsec1: Xmlsec1,
) -> None:
    def down(digest: bytes) -> bytes:
        raise RuntimeError("HSM unavailable")

    root = build()
    with pytest.raises(RuntimeError, match="HSM unavailable"):
        sign_document(root, sign_digest=down, issuer_name="CN=Z1,OU=07", serial=1)
    assert root.find(f"{{{DS_NS}}}Signature") is None
    signed = sign_document(
        root, sign_digest=sign_digest, issuer_name="CN=Z1,OU=07", serial=xml_cert.serial_number
    )
    verify_document(signed, certificates=[xml_cert])
    assert xmlsec1(signed, vectors / "certs" / XML_CERT, tmp_path).returncode == 0


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        ("CN=Z1,OU=07", "CN=Z1, OU=07", True),
        ("CN=Z1,OU=07", "cn=z1 ,ou=07", True),
        ("CN=Z1,OU=07", "OU=07,CN=Z1", True),
        ("CN=Z1,OU=07", "2.5.4.3=Z1,2.5.4.11=07", True),
        ("CN=U1,OU=07", "CN=Z1,OU=07", False),
        ("CN=Z1,OU=07", "CN=Z1", False),
        ("CN=Z1\\,X,OU=07", "CN=Z1,X,OU=07", False),
        ("garbage", "CN=Z1", False),
        ("CN=Caf\\C3\\A9,OU=07", "CN=Café,OU=07", True),
        ("CN=Caf\\C3\\A9", "CN=CafÃ©", False),
        ("OID.2.5.4.3=Z1,OU=07", "CN=Z1,OU=07", True),
        ("CN=Z1\\,X,OU=07", "OU=07,CN=Z1\\2CX", True),
        ("", "", False),
    ],
)
def test_same_distinguished_name(a: str, b: str, same: bool) -> None:
    assert same_distinguished_name(a, b) is same


def test_escaped_utf8_issuer_name_finds_its_certificate(tmp_path: Path) -> None:
    """KeyInfo may escape a UTF-8 issuer byte by byte (RFC 4514): ``\\C3\\A9`` is one é."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "07"),
            x509.NameAttribute(NameOID.COMMON_NAME, "Café"),
        ]
    )
    t0 = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    cert = self_signed(key, name, t0, t0 + dt.timedelta(days=365), serial=4242)

    def sign(digest: bytes) -> bytes:
        r, s = utils.decode_dss_signature(
            key.sign(digest, ec.ECDSA(utils.Prehashed(hashes.SHA256())))
        )
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")

    signed = sign_document(
        build(), sign_digest=sign, issuer_name="CN=Caf\\C3\\A9,OU=07", serial=4242
    )
    result = verify_document(signed, certificates=[cert])
    assert result.certificate == cert
    assert result.issuer_name == "CN=Caf\\C3\\A9,OU=07"


# -- scale ---------------------------------------------------------------------------------


def test_largest_request_signs_and_verifies(
    vectors: Path,
    tmp_path: Path,
    schema: DuisSchema,
    sign_digest: SignDigest,
    xml_cert: x509.Certificate,
    xmlsec1: Xmlsec1,
) -> None:
    root = build_update_firmware(
        request_id=RID,
        service="11.1",
        firmware_image=bytes(range(256)) * 40_000,  # 10,240,000 bytes
        firmware_version="0102",
        devices=[Eui64(i.to_bytes(8, "big")) for i in range(50_000)],
    )
    schema.validate(root)
    signed = sign_document(
        root,
        sign_digest=sign_digest,
        issuer_name="CN=Z1,OU=07",
        serial=xml_cert.serial_number,
    )
    assert len(signed) > 14_000_000
    verify_document(signed, certificates=[xml_cert])
    assert xmlsec1(signed, vectors / "certs" / XML_CERT, tmp_path).returncode == 0
