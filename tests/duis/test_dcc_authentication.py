"""Is a DUIS response the DCC's? Genuine DCC vectors, a test DCC signing with xmlsec1, and
every way to fail: unsigned, broken, signed by a certificate not configured, none configured.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from signer.duis.dcc import authenticate_dcc_response
from signer.duis.response import gbcs_payload_of
from signer.errors import ConfigurationError, InvalidInput, PolicyRefused
from signer.service.dcc import authenticated, load_dcc_certificates
from tests.support.dcc import DccKey

NOW = dt.datetime(2024, 6, 1, 12, tzinfo=dt.UTC)
GENUINE = [
    ("dcc_message.xml", "Z1-accessControlBroker-ds.pem"),
    ("dcc_read-inventory-response-4g.xml", "dsp-xml-sign-90B3D51F30000002-ds.pem"),
    ("dcc_read-inventory-response-5.4.xml", "Z1-accessControlBroker-dSPXmlSign.pem"),
    ("dcc_readfw-response.xml", "dsp-xml-sign-90B3D51F30000002-ds-pre-1.4.1.pem"),
    ("dcc_readfw-response-resigned.xml", "Z1-accessControlBroker-dSPXmlSign.pem"),
]
ENVELOPE = "trust_anchor/illustration_DUIS_6.24.1_response_envelope.xml"
RTDS_PAYLOAD = "trust_anchor/CS02aMAC_6.24.1_SUCCESS_RESPONSE_GBCS.HEX"


def cert(vectors: Path, name: str) -> x509.Certificate:
    return x509.load_pem_x509_certificate((vectors / "certs" / name).read_bytes())


def signed_at(xml: bytes) -> dt.datetime:
    m = re.search(rb"<sr:ResponseDateTime>([^<]+)</sr:ResponseDateTime>", xml)
    assert m is not None
    return dt.datetime.fromisoformat(m.group(1).decode().replace("Z", "+00:00"))


@pytest.mark.parametrize(("document", "signer_cert"), GENUINE)
def test_genuine_dcc_responses_verify_against_their_signer_certificate(
    vectors: Path, document: str, signer_cert: str
) -> None:
    xml = (vectors / "xmldsig" / document).read_bytes()
    expected = cert(vectors, signer_cert)
    others = [cert(vectors, n) for _, n in GENUINE if n != signer_cert]
    verified = authenticate_dcc_response(xml, certificates=[*others, expected], now=signed_at(xml))
    assert verified.certificate == expected
    # the same response with its signer's certificate left out of the set: refused
    with pytest.raises(InvalidInput, match="unknown signer") as err:
        authenticate_dcc_response(xml, certificates=others, now=signed_at(xml))
    assert err.value.field == "dcc_response"


def test_the_broken_dcc_signature_is_refused(vectors: Path) -> None:
    xml = (vectors / "xmldsig/dcc_readfw-response-badsignature.xml").read_bytes()
    signer_cert = cert(vectors, "dsp-xml-sign-90B3D51F30000002-ds-pre-1.4.1.pem")
    with pytest.raises(InvalidInput, match="not authenticated as the DCC's") as err:
        authenticate_dcc_response(xml, certificates=[signer_cert], now=signed_at(xml))
    assert err.value.field == "dcc_response"


def test_the_unsigned_dcc_response_is_refused_as_unsigned(vectors: Path) -> None:
    xml = (vectors / "xmldsig/dcc_unsigned_acknowledgement-error.xml").read_bytes()
    every = [cert(vectors, n) for _, n in GENUINE]
    with pytest.raises(InvalidInput, match="unsigned") as err:
        authenticate_dcc_response(xml, certificates=every, now=signed_at(xml))
    assert err.value.field == "dcc_response"


def test_without_configured_dcc_certificates_nothing_is_authenticated(vectors: Path) -> None:
    document, _ = GENUINE[0]
    xml = (vectors / "xmldsig" / document).read_bytes()
    with pytest.raises(PolicyRefused, match=r"dcc_response: no DCC certificates"):
        authenticate_dcc_response(xml, certificates=[], now=signed_at(xml))


def test_an_envelope_signed_by_the_test_dcc_with_xmlsec1(
    vectors: Path, dcc: DccKey, other_dcc: DccKey, tmp_path: Path
) -> None:
    envelope = (vectors / ENVELOPE).read_bytes()
    signed = dcc.sign(envelope, tmp_path)
    root, origin = authenticated(signed, [other_dcc.cert, dcc.cert], NOW)
    assert gbcs_payload_of(root) == bytes.fromhex((vectors / RTDS_PAYLOAD).read_text().strip())
    assert origin.details() == {
        "dcc_authenticated": True,
        "dcc_signer": f"CN=Test DCC,OU=07 / {dcc.cert.serial_number}",
    }
    # the test DCC not configured: refused
    with pytest.raises(InvalidInput, match="unknown signer"):
        authenticated(signed, [other_dcc.cert], NOW)
    # another key's signature, naming the configured DCC certificate in its KeyInfo
    forged = other_dcc.sign(envelope, tmp_path, as_cert=dcc.cert)
    with pytest.raises(InvalidInput, match="signature mismatch"):
        authenticated(forged, [dcc.cert], NOW)
    # one character of the signed payload changed
    tampered = signed.replace(b"<sr:GBCSPayload>", b"<sr:GBCSPayload>A", 1)
    with pytest.raises(InvalidInput, match="digest mismatch"):
        authenticated(tampered, [dcc.cert], NOW)
    # the DCC certificate outside its validity at the service's clock
    with pytest.raises(InvalidInput, match="expired"):
        authenticated(signed, [dcc.cert], dt.datetime(2050, 1, 1, tzinfo=dt.UTC))


@pytest.mark.parametrize("at", [8, 40, -8])
def test_a_comment_put_into_a_signed_payload_cannot_cut_what_is_read(
    vectors: Path, dcc: DccKey, tmp_path: Path, at: int
) -> None:
    """Comments are outside the digest (C14N without comments), so one inserted into the
    signed GBCSPayload keeps the signature valid; what the service reads must still be the
    whole signed payload, never the text before the comment (the SAML truncation class)."""
    signed = dcc.sign((vectors / ENVELOPE).read_bytes(), tmp_path)
    start = signed.index(b"<sr:GBCSPayload>") + len(b"<sr:GBCSPayload>")
    cut = start + at if at > 0 else signed.index(b"</sr:GBCSPayload>") + at
    commented = signed[:cut] + b"<!--x-->" + signed[cut:]
    root, _ = authenticated(commented, [dcc.cert], NOW)
    assert gbcs_payload_of(root) == bytes.fromhex((vectors / RTDS_PAYLOAD).read_text().strip())


def test_hostile_key_info_is_refused_briefly(vectors: Path, dcc: DccKey, tmp_path: Path) -> None:
    signed = dcc.sign((vectors / ENVELOPE).read_bytes(), tmp_path)
    serial = str(dcc.cert.serial_number).encode()
    huge = signed.replace(serial, b"9" * 5000)  # int() refuses > 4300 digits: ValueError
    with pytest.raises(InvalidInput, match="5000 digits") as err:
        authenticated(huge, [dcc.cert], NOW)
    assert len(str(err.value)) < 300
    long_name = signed.replace(b"CN=Test DCC,OU=07", b"CN=" + b"x" * 100_000, 1)
    with pytest.raises(InvalidInput, match="unknown signer") as err:
        authenticated(long_name, [dcc.cert], NOW)
    assert len(str(err.value)) < 400
    with pytest.raises(InvalidInput, match="not well-formed") as err:
        authenticated(b"<sr:Response", [dcc.cert], NOW)
    assert err.value.field == "dcc_response"


def test_configured_dcc_certificates_are_checked_at_load(
    vectors: Path, dcc: DccKey, tmp_path: Path
) -> None:
    assert load_dcc_certificates([dcc.cert_pem]) == (dcc.cert,)
    with pytest.raises(ConfigurationError, match=r"dcc.certificates .*missing.pem.*cannot read"):
        load_dcc_certificates([tmp_path / "missing.pem"])
    junk = tmp_path / "junk.pem"
    junk.write_bytes(b"-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n")
    with pytest.raises(ConfigurationError, match=r"dcc.certificates .*junk.pem"):
        load_dcc_certificates([junk])
    rsa_pem = tmp_path / "rsa.pem"
    rsa_pem.write_bytes(_rsa_certificate().public_bytes(serialization.Encoding.PEM))
    with pytest.raises(ConfigurationError, match="not a P-256 key"):
        load_dcc_certificates([rsa_pem])
    p384 = ec.generate_private_key(ec.SECP384R1())
    p384_pem = tmp_path / "p384.pem"
    p384_pem.write_bytes(_self_signed(p384).public_bytes(serialization.Encoding.PEM))
    with pytest.raises(ConfigurationError, match="not a P-256 key"):
        load_dcc_certificates([p384_pem])


def _rsa_certificate() -> x509.Certificate:
    return _self_signed(rsa.generate_private_key(public_exponent=65537, key_size=2048))


def _self_signed(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "not a DCC key")])
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(dt.datetime(2020, 1, 1, tzinfo=dt.UTC))
        .not_valid_after(dt.datetime(2040, 1, 1, tzinfo=dt.UTC))
        .sign(key, hashes.SHA256())
    )
