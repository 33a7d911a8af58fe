"""SMKI certificate parsing and the signing-certificate rules, against the DCC test certificates."""

from __future__ import annotations

import base64
import datetime as dt
import json
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from signer.errors import CertificateRejected, FormatError
from signer.gbcs.eui import Eui64
from signer.smki.certificate import (
    SMKI_ORG_POLICY,
    check_profile_basics,
    check_supplier_signing,
    check_xml_signing,
    load_certificate,
    parse_smki,
    smki_extensions,
    smki_key_identifier,
    smki_name,
    subject_key_identifier,
)
from tests.support.certificates import self_signed

SUPPLIER_EUI = Eui64.parse("90-B3-D5-1F-30-01-00-00")
# Inside Z1-supplier-ds validity (2015-10-30 .. 2025-10-29 23:59:59).
IN_VALIDITY = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)
# cryptography refuses these two: their ecdsa-with-SHA256 AlgorithmIdentifier carries a NULL.
UNLOADABLE = {"mdr-ds", "mdr-ka"}


def cert(vectors: Path, name: str) -> x509.Certificate:
    return load_certificate((vectors / "certs" / f"{name}.pem").read_bytes())


def index(vectors: Path) -> list[dict[str, object]]:
    data = json.loads((vectors / "certs" / "index.json").read_text())
    assert isinstance(data, list)
    return data


# -- parsing ---------------------------------------------------------------------------------


def test_every_indexed_certificate_parses_to_its_index_entry(vectors: Path) -> None:
    checked = 0
    for entry in index(vectors):
        name = str(entry["name"])
        if name in UNLOADABLE:
            continue
        smki = parse_smki(cert(vectors, name))
        assert smki.eui == Eui64(bytes.fromhex(str(entry["eui"]))), name
        assert smki.serial == int(str(entry["serial"])), name
        assert smki.key_usage == entry["usage"], name
        # The key store writes the role in decimal (135 = 0x87, 137 = 0x89).
        assert smki.role == entry["keystore_role"], name
        assert len(smki.ski) == 8
        assert smki.not_before.tzinfo is not None and smki.not_after.tzinfo is not None
        checked += 1
    assert checked == len(index(vectors)) - len(UNLOADABLE)


def test_certificates_with_null_ecdsa_parameters_are_a_format_error(vectors: Path) -> None:
    for name in sorted(UNLOADABLE):
        with pytest.raises(FormatError) as e:
            cert(vectors, name)
        assert e.value.field == "certificate"


def test_issuer_name_is_the_compact_form_xmldsig_vectors_use(vectors: Path) -> None:
    smki = parse_smki(cert(vectors, "Z1-supplier-ds"))
    assert smki.issuer_name == "CN=Z1,OU=07"
    signed = (vectors / "xmldsig" / "dcc_readfw-response.xml").read_text()
    assert f"<ds:X509IssuerName>{smki.issuer_name}</ds:X509IssuerName>" in signed


def test_ski_matches_the_supplier_trust_anchor_cell(vectors: Path) -> None:
    # The CS02a illustration carries the Supplier digital-signing cell's SKI as base64.
    xml = vectors / "trust_anchor" / "illustration_MMC_6.24.1_response_from_CS02aMAC.xml"
    assert "RImXktGW9Lg=" in xml.read_text()
    c = cert(vectors, "Z1-supplier-ds")
    assert subject_key_identifier(c) == base64.b64decode("RImXktGW9Lg=")
    assert parse_smki(c).ski == bytes.fromhex("44899792D196F4B8")


def test_ski_is_rfc5280_method_2_for_every_test_certificate(vectors: Path) -> None:
    for path in sorted((vectors / "certs").glob("*.pem")):
        if path.stem in UNLOADABLE:
            continue
        c = load_certificate(path.read_bytes())
        key = c.public_key()
        assert isinstance(key, ec.EllipticCurvePublicKey)
        assert smki_key_identifier(key) == subject_key_identifier(c), path.name


def test_load_certificate_accepts_der_and_refuses_garbage(vectors: Path) -> None:
    pem = cert(vectors, "Z1-supplier-ds")
    der = pem.public_bytes(serialization.Encoding.DER)
    assert load_certificate(der) == pem
    with pytest.raises(FormatError) as e:
        load_certificate(b"not a certificate", field="supplier_certificate")
    assert e.value.field == "supplier_certificate"


def test_decimal_role_137_is_rejected_naming_the_value(vectors: Path) -> None:
    legacy = cert(vectors, "dsp-xml-sign-90B3D51F30000002-ds-pre-1.4.1")
    with pytest.raises(CertificateRejected, match="'137'"):
        parse_smki(legacy)
    with pytest.raises(CertificateRejected, match="'137'"):
        check_supplier_signing(legacy, supplier_eui=SUPPLIER_EUI, now=IN_VALIDITY)


# -- the ARP-signature rule ----------------------------------------------------------------


def test_supplier_signing_certificate_is_accepted(vectors: Path) -> None:
    smki = check_supplier_signing(
        cert(vectors, "Z1-supplier-ds"), supplier_eui=SUPPLIER_EUI, now=IN_VALIDITY
    )
    assert smki.role == 0x02
    assert smki.key_usage == "digitalSignature"
    assert str(smki.eui) == "90-B3-D5-1F-30-01-00-00"


def test_expired_is_refused(vectors: Path) -> None:
    with pytest.raises(CertificateRejected, match="expired on 2025-10-29T23:59:59Z"):
        check_supplier_signing(
            cert(vectors, "Z1-supplier-ds"),
            supplier_eui=SUPPLIER_EUI,
            now=dt.datetime(2025, 10, 30, tzinfo=dt.UTC),
        )


def test_validity_bounds_are_inclusive(vectors: Path) -> None:
    c = cert(vectors, "Z1-supplier-ds")
    for at in (c.not_valid_before_utc, c.not_valid_after_utc):
        check_supplier_signing(c, supplier_eui=SUPPLIER_EUI, now=at)


def test_not_yet_valid_is_refused(vectors: Path) -> None:
    with pytest.raises(CertificateRejected, match="not valid before 2015-10-30T00:00:00Z"):
        check_supplier_signing(
            cert(vectors, "Z1-supplier-ds"),
            supplier_eui=SUPPLIER_EUI,
            now=dt.datetime(2015, 10, 29, tzinfo=dt.UTC),
        )


def test_network_operator_role_is_refused(vectors: Path) -> None:
    with pytest.raises(CertificateRejected, match=r"role OU is 03, needs 02 \(Supplier\)"):
        check_supplier_signing(
            cert(vectors, "Z1-networkOperator-ds"),
            supplier_eui=Eui64.parse("90-B3-D5-1F-30-02-00-00"),
            now=IN_VALIDITY,
        )


def test_dsp_xml_signing_role_is_refused(vectors: Path) -> None:
    with pytest.raises(CertificateRejected, match="role OU is 89, needs 02"):
        check_supplier_signing(
            cert(vectors, "dsp-xml-sign-90B3D51F30000002-ds"),
            supplier_eui=Eui64.parse("90-B3-D5-1F-30-00-00-02"),
            now=IN_VALIDITY,
        )


def test_key_agreement_certificate_is_refused(vectors: Path) -> None:
    with pytest.raises(CertificateRejected, match="keyUsage is keyAgreement"):
        check_supplier_signing(
            cert(vectors, "Z1-supplier-ka"), supplier_eui=SUPPLIER_EUI, now=IN_VALIDITY
        )


def test_other_suppliers_eui_is_refused(vectors: Path) -> None:
    with pytest.raises(CertificateRejected, match="EUI is 90-B3-D5-1F-30-01-00-00, expected"):
        check_supplier_signing(
            cert(vectors, "Z1-supplier-ds"),
            supplier_eui=Eui64.parse("90-B3-D5-1F-30-03-00-00"),
            now=IN_VALIDITY,
        )


def test_naive_now_is_a_programming_error(vectors: Path) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        check_supplier_signing(
            cert(vectors, "Z1-supplier-ds"), supplier_eui=SUPPLIER_EUI, now=dt.datetime(2020, 1, 1)
        )


# -- issuing CA ----------------------------------------------------------------------------


def _make_ca(
    name: x509.Name, *, not_after: dt.datetime = dt.datetime(2040, 1, 1, tzinfo=dt.UTC)
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    ca = self_signed(
        key,
        name,
        dt.datetime(2010, 1, 1, tzinfo=dt.UTC),
        not_after,
        extensions=[(x509.BasicConstraints(ca=True, path_length=0), True)],
    )
    return key, ca


def _issue(
    ca_key: ec.EllipticCurvePrivateKey,
    ca: x509.Certificate,
    *,
    role: int = 0x02,
    eui: Eui64 = SUPPLIER_EUI,
    key: ec.EllipticCurvePrivateKey | None = None,
    tweak: str = "",
) -> x509.Certificate:
    subject_key = key or ec.generate_private_key(ec.SECP256R1())
    ca_pub = ca.public_key()
    assert isinstance(ca_pub, ec.EllipticCurvePublicKey)
    pub = subject_key.public_key()
    builder = (
        x509.CertificateBuilder()
        .subject_name(smki_name(role, eui, "TESTSUPPLIER"))
        .issuer_name(ca.subject)
        .public_key(pub)
        .serial_number(x509.random_serial_number())
        .not_valid_before(dt.datetime(2015, 1, 1, tzinfo=dt.UTC))
        .not_valid_after(dt.datetime(2035, 1, 1, tzinfo=dt.UTC))
    )
    for ext, critical in smki_extensions(
        public_key=pub, key_usage="digitalSignature", authority_key=ca_pub
    ):
        if tweak == "ku-not-critical" and isinstance(ext, x509.KeyUsage):
            critical = False
        if tweak == "no-policy" and isinstance(ext, x509.CertificatePolicies):
            continue
        builder = builder.add_extension(ext, critical)
    return builder.sign(ca_key, hashes.SHA256())


def test_smki_name_and_extensions_give_a_profile_conformant_certificate(vectors: Path) -> None:
    ca_key, ca = _make_ca(smki_name(0x07, None, "Z1"))
    issued = _issue(ca_key, ca)
    smki = check_supplier_signing(issued, supplier_eui=SUPPLIER_EUI, now=IN_VALIDITY, issuers=[ca])
    assert smki.issuer_name == "CN=Z1,OU=07"
    # Same subject layout as the DCC's own supplier certificate.
    reference = cert(vectors, "Z1-supplier-ds")
    assert [a.oid for a in issued.subject] == [a.oid for a in reference.subject]
    assert issued.subject.public_bytes()[-11:] == b"\x03\x09\x00" + SUPPLIER_EUI.value
    policies = issued.extensions.get_extension_for_class(x509.CertificatePolicies)
    assert policies.critical and policies.value[0].policy_identifier == SMKI_ORG_POLICY


def test_certificate_from_an_unconfigured_issuer_is_refused(vectors: Path) -> None:
    _, other_ca = _make_ca(smki_name(0x07, None, "Z9"))
    with pytest.raises(
        CertificateRejected, match="issuer CN=Z1,OU=07 is not one of the configured"
    ):
        check_supplier_signing(
            cert(vectors, "Z1-supplier-ds"),
            supplier_eui=SUPPLIER_EUI,
            now=IN_VALIDITY,
            issuers=[other_ca],
        )


def test_same_named_impostor_ca_is_refused(vectors: Path) -> None:
    # Same name as the real Z1 CA but another key: the name matches, the signature cannot.
    _, impostor = _make_ca(smki_name(0x07, None, "Z1"))
    with pytest.raises(CertificateRejected, match="does not verify with any configured CA"):
        check_supplier_signing(
            cert(vectors, "Z1-supplier-ds"),
            supplier_eui=SUPPLIER_EUI,
            now=IN_VALIDITY,
            issuers=[impostor],
        )


def test_expired_issuing_ca_is_refused() -> None:
    ca_key, ca = _make_ca(
        smki_name(0x07, None, "Z1"), not_after=dt.datetime(2019, 1, 1, tzinfo=dt.UTC)
    )
    with pytest.raises(CertificateRejected, match="issuing CA CN=Z1,OU=07 expired"):
        check_supplier_signing(
            _issue(ca_key, ca), supplier_eui=SUPPLIER_EUI, now=IN_VALIDITY, issuers=[ca]
        )


def test_non_critical_key_usage_is_refused() -> None:
    ca_key, ca = _make_ca(smki_name(0x07, None, "Z1"))
    with pytest.raises(CertificateRejected, match="keyUsage extension is not marked critical"):
        check_profile_basics(_issue(ca_key, ca, tweak="ku-not-critical"), IN_VALIDITY)


def test_missing_policy_is_refused() -> None:
    ca_key, ca = _make_ca(smki_name(0x07, None, "Z1"))
    with pytest.raises(CertificateRejected, match="no certificatePolicies"):
        check_profile_basics(_issue(ca_key, ca, tweak="no-policy"), IN_VALIDITY)


def test_p384_key_is_refused() -> None:
    ca_key, ca = _make_ca(smki_name(0x07, None, "Z1"))
    issued = _issue(ca_key, ca, key=ec.generate_private_key(ec.SECP384R1()))
    with pytest.raises(CertificateRejected, match="secp384r1, SMKI needs P-256"):
        check_supplier_signing(issued, supplier_eui=SUPPLIER_EUI, now=IN_VALIDITY)


# -- XML signing (pinned) ------------------------------------------------------------------


def test_xml_signing_certificate_is_accepted_pinned(vectors: Path) -> None:
    smki = check_xml_signing(
        cert(vectors, "xml-sign-90B3D51F30010000-ds"),
        eui=SUPPLIER_EUI,
        now=dt.datetime(2030, 1, 1, tzinfo=dt.UTC),
    )
    assert smki.role == 0x87
    assert smki.issuer_name == "CN=Z1,OU=07"


def test_xml_signing_refuses_the_supplier_signing_certificate(vectors: Path) -> None:
    with pytest.raises(CertificateRejected, match=r"role OU is 02, needs 87"):
        check_xml_signing(cert(vectors, "Z1-supplier-ds"), eui=SUPPLIER_EUI, now=IN_VALIDITY)
