"""PKCS#10 requests signed through a callback, checked by cryptography and by openssl."""

from __future__ import annotations

import hashlib
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from cryptography.x509.oid import NameOID, SignatureAlgorithmOID

from signer.errors import InvalidInput
from signer.gbcs.eui import Eui64
from signer.gbcs.signature import der_to_raw
from signer.smki.certificate import smki_name
from signer.smki.csr import build_csr

EUI = Eui64.parse("90-B3-D5-1F-30-01-00-00")
SUBJECT = smki_name(2, EUI, "supplier-ds-2026")


def signer_for(key: ec.EllipticCurvePrivateKey) -> Callable[[bytes], bytes]:
    """A stand-in for the token: raw r||s over a 32-byte digest."""

    def sign_digest(digest: bytes) -> bytes:
        assert len(digest) == 32
        return der_to_raw(key.sign(digest, ec.ECDSA(Prehashed(hashes.SHA256()))))

    return sign_digest


@pytest.fixture(scope="module")
def key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture(scope="module")
def csr(key: ec.EllipticCurvePrivateKey) -> x509.CertificateSigningRequest:
    return build_csr(subject=SUBJECT, public_key=key.public_key(), sign_digest=signer_for(key))


def openssl_req(der: bytes, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "req.der"
    path.write_bytes(der)
    return subprocess.run(
        ["openssl", "req", "-inform", "DER", "-in", str(path), "-noout", *args],
        capture_output=True,
        text=True,
        check=False,
    )


def openssl_verifies(der: bytes, tmp_path: Path) -> bool:
    """OpenSSL 3.0 exits 0 even when the self-signature fails, so read what it says too."""
    result = openssl_req(der, tmp_path, "-verify")
    said = result.stdout + result.stderr
    return result.returncode == 0 and "verify OK" in said and "failure" not in said


def der(csr: x509.CertificateSigningRequest) -> bytes:
    return csr.public_bytes(serialization.Encoding.DER)


# -- signature -------------------------------------------------------------------------------


def test_signature_verifies_in_cryptography(csr: x509.CertificateSigningRequest) -> None:
    assert csr.is_signature_valid
    assert csr.signature_algorithm_oid == SignatureAlgorithmOID.ECDSA_WITH_SHA256


def test_signature_verifies_in_openssl(csr: x509.CertificateSigningRequest, tmp_path: Path) -> None:
    pem = tmp_path / "req.pem"
    pem.write_bytes(csr.public_bytes(serialization.Encoding.PEM))
    result = subprocess.run(
        ["openssl", "req", "-verify", "-noout", "-in", str(pem)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "verify OK" in result.stdout + result.stderr


def test_sign_digest_gets_sha256_of_the_request_info(key: ec.EllipticCurvePrivateKey) -> None:
    seen: list[bytes] = []

    def spy(digest: bytes) -> bytes:
        seen.append(digest)
        return signer_for(key)(digest)

    csr = build_csr(subject=SUBJECT, public_key=key.public_key(), sign_digest=spy)
    assert seen == [hashlib.sha256(csr.tbs_certrequest_bytes).digest()]


def test_algorithm_identifier_has_no_parameters(csr: x509.CertificateSigningRequest) -> None:
    # ecdsa-with-SHA256 AlgorithmIdentifier: SEQUENCE { OID 1.2.840.10045.4.3.2 }, no NULL
    assert bytes.fromhex("300a06082a8648ce3d040302") + b"\x03" in der(csr)
    assert bytes.fromhex("300c06082a8648ce3d0403020500") not in der(csr)


@pytest.mark.parametrize("where", ["subject", "signature"])
def test_openssl_refuses_a_tampered_request(
    csr: x509.CertificateSigningRequest, tmp_path: Path, where: str
) -> None:
    data = bytearray(der(csr))
    if where == "subject":
        pos = data.index(b"supplier-ds-2026")
        data[pos] ^= 0x01  # 's' -> 'r': still a valid UTF8String
    else:
        data[-1] ^= 0x01  # last byte of INTEGER s
    assert openssl_verifies(der(csr), tmp_path)
    assert not openssl_verifies(bytes(data), tmp_path)
    assert not x509.load_der_x509_csr(bytes(data)).is_signature_valid


def test_public_key_is_the_one_passed_not_the_signers(
    key: ec.EllipticCurvePrivateKey, tmp_path: Path
) -> None:
    other = ec.generate_private_key(ec.SECP256R1())
    csr = build_csr(subject=SUBJECT, public_key=other.public_key(), sign_digest=signer_for(key))
    assert csr.public_key() == other.public_key()
    assert csr.public_key() != key.public_key()
    assert not csr.is_signature_valid
    assert not openssl_verifies(der(csr), tmp_path)


def test_public_key_round_trips(
    csr: x509.CertificateSigningRequest, key: ec.EllipticCurvePrivateKey
) -> None:
    assert csr.public_key() == key.public_key()


# -- content ---------------------------------------------------------------------------------


def test_subject_is_the_smki_name(csr: x509.CertificateSigningRequest) -> None:
    assert csr.subject == SUBJECT
    assert [
        a.value for a in csr.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)
    ] == ["02"]
    uid = csr.subject.get_attributes_for_oid(NameOID.X500_UNIQUE_IDENTIFIER)
    assert [a.value for a in uid] == [b"\x00" + EUI.value]
    cn = csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    assert [a.value for a in cn] == ["supplier-ds-2026"]


def test_openssl_reads_the_subject_and_key_usage(
    csr: x509.CertificateSigningRequest, tmp_path: Path
) -> None:
    result = openssl_req(der(csr), tmp_path, "-text")
    assert result.returncode == 0, result.stderr
    text = result.stdout
    assert "OU = 02" in text
    assert "x500uniqueidentifier" in text.lower() or "2.5.4.45" in text
    # the attribute value is a BIT STRING (tag 03, 9 bytes: no unused bits, then the EUI)
    assert "#03090090B3D51F30010000" in text.upper()
    assert "CN = supplier-ds-2026" in text
    assert "Version: 1 (0x0)" in text
    assert "X509v3 Key Usage: critical" in text
    assert "Digital Signature" in text
    assert "Key Agreement" not in text


def test_extension_request_is_one_critical_key_usage(
    csr: x509.CertificateSigningRequest,
) -> None:
    assert len(csr.extensions) == 1
    ext = csr.extensions.get_extension_for_class(x509.KeyUsage)
    assert ext.critical
    ku = ext.value
    assert ku.digital_signature
    assert not any(
        (
            ku.content_commitment,
            ku.key_encipherment,
            ku.data_encipherment,
            ku.key_agreement,
            ku.key_cert_sign,
            ku.crl_sign,
        )
    )
    # exactly the one bit: BIT STRING 03 02 07 80
    assert ext.value.public_bytes() == bytes.fromhex("03020780")


def test_key_agreement_request(key: ec.EllipticCurvePrivateKey) -> None:
    csr = build_csr(
        subject=SUBJECT,
        public_key=key.public_key(),
        key_usage="keyAgreement",
        sign_digest=signer_for(key),
    )
    assert csr.is_signature_valid
    ku = csr.extensions.get_extension_for_class(x509.KeyUsage)
    assert ku.critical
    assert ku.value.key_agreement
    assert not ku.value.digital_signature
    assert ku.value.public_bytes() == bytes.fromhex("03020308")


# -- refusals --------------------------------------------------------------------------------


def test_p384_key_is_refused(key: ec.EllipticCurvePrivateKey) -> None:
    p384 = ec.generate_private_key(ec.SECP384R1())
    with pytest.raises(InvalidInput) as err:
        build_csr(subject=SUBJECT, public_key=p384.public_key(), sign_digest=signer_for(key))
    assert err.value.field == "key"
    assert "secp384r1" in str(err.value)


def test_unknown_key_usage_is_refused(key: ec.EllipticCurvePrivateKey) -> None:
    with pytest.raises(InvalidInput) as err:
        build_csr(
            subject=SUBJECT,
            public_key=key.public_key(),
            key_usage="keyCertSign",  # type: ignore[arg-type]
            sign_digest=signer_for(key),
        )
    assert err.value.field == "key_usage"


@pytest.mark.parametrize("length", [0, 63, 65, 72])
def test_signature_of_the_wrong_length_is_refused(
    key: ec.EllipticCurvePrivateKey, length: int
) -> None:
    with pytest.raises(InvalidInput) as err:
        build_csr(
            subject=SUBJECT,
            public_key=key.public_key(),
            sign_digest=lambda _digest: b"\x01" * length,
        )
    assert err.value.field == "signature"
    assert "64" in str(err.value)
