"""The HSM door on a real SoftHSM2 token; every signature checked with `cryptography`."""

from __future__ import annotations

import hashlib
import threading

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed, encode_dss_signature

from signer.errors import HsmLoginFailed, HsmUnavailable, InvalidInput, NotFound
from signer.hsm.pin import Pin, PinSource
from signer.hsm.token import SIGN_CHUNK, Token
from signer.service.admin import import_key
from tests.support.hsm import MODULE, SPARE_TOKEN_LABEL, Z1B_TOKEN_LABEL, Hsm


def _verify(
    cert_or_key: x509.Certificate | ec.EllipticCurvePublicKey, msg: bytes, raw: bytes
) -> None:
    key = cert_or_key.public_key() if isinstance(cert_or_key, x509.Certificate) else cert_or_key
    assert isinstance(key, ec.EllipticCurvePublicKey)
    der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    key.verify(der, msg, ec.ECDSA(hashes.SHA256()))


def _verify_prehashed(cert: x509.Certificate, digest: bytes, raw: bytes) -> None:
    key = cert.public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey)
    der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    key.verify(der, digest, ec.ECDSA(Prehashed(hashes.SHA256())))


@pytest.fixture(scope="module")
def z1_token(hsm: Hsm, vectors) -> Token:
    token = hsm.token()
    try:
        token.find(label="z1-supplier-ds")
    except NotFound:
        import_key(
            token,
            "z1-supplier-ds",
            (vectors / "keys/Z1-supplier-ds.key.pem").read_bytes(),
            (vectors / "certs/Z1-supplier-ds.pem").read_bytes(),
        )
    return token


def test_imported_key_is_found_by_label_id_and_ski(z1_token: Token, vectors) -> None:
    cert = x509.load_pem_x509_certificate((vectors / "certs/Z1-supplier-ds.pem").read_bytes())
    ski = cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    assert ski == bytes.fromhex("44899792D196F4B8")
    by_label = z1_token.find(label="z1-supplier-ds")
    assert z1_token.find(ski=ski) == by_label
    assert z1_token.find(key_id=by_label.key_id) == by_label
    assert by_label.certificate == cert


def test_signature_made_in_token_verifies_with_the_certificate(z1_token: Token, vectors) -> None:
    cert = x509.load_pem_x509_certificate((vectors / "certs/Z1-supplier-ds.pem").read_bytes())
    key = z1_token.find(label="z1-supplier-ds")
    msg = b"a Manufacturer Image"
    raw = z1_token.sign_digest(key, hashlib.sha256(msg).digest())
    assert len(raw) == 64
    _verify(cert, msg, raw)
    with pytest.raises(InvalidSignature):
        _verify(cert, msg + b"!", raw)


def test_sign_refuses_anything_but_a_digest(z1_token: Token) -> None:
    key = z1_token.find(label="z1-supplier-ds")
    with pytest.raises(ValueError, match="32-byte"):
        z1_token.sign_digest(key, b"x" * 64)  # CKM_ECDSA would silently sign a prefix


def test_a_batch_is_signed_in_order_across_chunks(z1_token: Token, vectors) -> None:
    """More digests than one hold of the lock takes: each signature is over its own digest."""
    cert = x509.load_pem_x509_certificate((vectors / "certs/Z1-supplier-ds.pem").read_bytes())
    key = z1_token.find(label="z1-supplier-ds")
    messages = [f"pre-command {i}".encode() for i in range(SIGN_CHUNK * 2 + 3)]
    raws = z1_token.sign_digests(key, [hashlib.sha256(m).digest() for m in messages])
    assert len(raws) == len(messages)
    for m, raw in zip(messages, raws, strict=True):
        _verify(cert, m, raw)
    with pytest.raises(InvalidSignature):
        _verify(cert, messages[1], raws[0])
    assert z1_token.sign_digests(key, []) == []


def test_the_check_sees_the_first_signature_of_every_chunk(z1_token: Token, vectors) -> None:
    """Each chunk looks the key handle up again; the caller's check proves each one."""
    cert = x509.load_pem_x509_certificate((vectors / "certs/Z1-supplier-ds.pem").read_bytes())
    key = z1_token.find(label="z1-supplier-ds")
    digests = [hashlib.sha256(f"d{i}".encode()).digest() for i in range(SIGN_CHUNK * 2 + 1)]
    checked: list[tuple[bytes, bytes]] = []
    made: list[bytes] = []
    raws = z1_token.sign_digests(
        key, digests, into=made, check=lambda d, sig: checked.append((d, sig))
    )
    assert made is raws
    assert [d for d, _ in checked] == [digests[0], digests[SIGN_CHUNK], digests[2 * SIGN_CHUNK]]
    for d, sig in checked:
        assert sig == raws[digests.index(d)]
        _verify_prehashed(cert, d, sig)


def test_a_check_that_fails_stops_the_batch_keeping_what_was_signed(z1_token: Token) -> None:
    key = z1_token.find(label="z1-supplier-ds")
    digests = [hashlib.sha256(f"e{i}".encode()).digest() for i in range(SIGN_CHUNK + 5)]
    made: list[bytes] = []

    def second_chunk_fails(d: bytes, _sig: bytes) -> None:
        if d == digests[SIGN_CHUNK]:
            raise HsmUnavailable("this handle's signature does not verify")

    with pytest.raises(HsmUnavailable, match="does not verify"):
        z1_token.sign_digests(key, digests, into=made, check=second_chunk_fails)
    assert len(made) == SIGN_CHUNK  # the first chunk was signed; nothing after the check


def test_a_batch_with_one_bad_digest_is_refused_whole(z1_token: Token) -> None:
    key = z1_token.find(label="z1-supplier-ds")
    good = hashlib.sha256(b"fine").digest()
    with pytest.raises(ValueError, match=r"#1 is 64 bytes"):
        z1_token.sign_digests(key, [good, b"x" * 64, good])


def test_generated_key_signs_and_is_protected(hsm: Hsm) -> None:
    token = hsm.token()
    key = token.generate_key("generated-test")
    assert len(key.key_id) == 8
    raw = token.sign_digest(key, hashlib.sha256(b"hello").digest())
    _verify(key.public_key, b"hello", raw)
    with pytest.raises(InvalidInput, match="already exists"):
        token.generate_key("generated-test")


def test_every_private_key_is_non_extractable_and_sensitive(
    z1_token: Token, hsm: Hsm, vectors
) -> None:
    from tests.support.z1b import z1b_only_token

    hsm.token().generate_key("protection-check")
    z1b_only_token(hsm, vectors)
    keys = z1_token.protection() + hsm.token(Z1B_TOKEN_LABEL).protection()
    assert {"z1-supplier-ds", "protection-check", "z1b-supplier-ds"} <= {k.label for k in keys}
    for k in keys:
        assert k.extractable is False, k.label
        assert k.sensitive is True, k.label
        if k.label in ("generated-test", "protection-check", "z1b-supplier-ds"):  # generated
            assert k.never_extractable is True and k.always_sensitive is True, k.label


def test_import_refuses_a_certificate_of_another_key(hsm: Hsm, vectors) -> None:
    other = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    with pytest.raises(InvalidInput, match="does not belong"):
        import_key(
            hsm.token(), "mismatch", other, (vectors / "certs/Z1-supplier-ds.pem").read_bytes()
        )


def test_concurrent_signing_is_serialised(z1_token: Token, vectors) -> None:
    """Unlocked, SoftHSM2 crashes under concurrent calls; the door's lock must prevent it."""
    cert = x509.load_pem_x509_certificate((vectors / "certs/Z1-supplier-ds.pem").read_bytes())
    key = z1_token.find(label="z1-supplier-ds")
    results: list[bytes] = []
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            for j in range(200):
                msg = f"{i}-{j}".encode()
                z1_token.keys(refresh=(j % 50 == 0))
                raw = z1_token.sign_digest(key, hashlib.sha256(msg).digest())
                results.append(msg + b"|" + raw)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(results) == 1600
    for item in results[::97]:
        msg, raw = item.split(b"|", 1)
        _verify(cert, msg, raw)


def test_wrong_pin_is_reported_and_not_retried(hsm: Hsm) -> None:
    token = Token(MODULE, SPARE_TOKEN_LABEL, Pin("wrong-pin"))
    with pytest.raises(HsmLoginFailed, match="refused the PIN"):
        token.open()


def test_pin_source_never_prints_the_pin(tmp_path, monkeypatch) -> None:
    f = tmp_path / "pin"
    f.write_text("s3cret-pin\n")
    pin = PinSource(file=f).read()
    assert pin.reveal() == "s3cret-pin"
    assert "s3cret" not in repr(pin) and "s3cret" not in str(pin)
    monkeypatch.setenv("TEST_PIN", "env-pin")
    assert PinSource(env="TEST_PIN").read().reveal() == "env-pin"
