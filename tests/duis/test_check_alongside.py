"""``sign_document(check=...)``: the check is begun on the tree as it will be signed
(whitespace stripped, no Signature yet) and has finished before anything is appended or
signed; a check that fails, when begun or when finished, signs nothing."""

from __future__ import annotations

import pytest
from cryptography import x509
from lxml import etree

from signer.duis.xmldsig import FinishCheck, SignDigest, sign_document, verify_document
from tests.support.duis_documents import signature_of, update_request


def test_the_check_sees_the_stripped_tree_and_finishes_before_signing(
    sign_digest: SignDigest, xml_cert: x509.Certificate
) -> None:
    root = update_request()
    root.text = "\n  "
    for child in root:
        child.tail = "\n  "
    events: list[str] = []

    def begin(seen: etree._Element) -> FinishCheck:
        assert seen is root
        assert all(
            not (e.text or "").isspace() and not (e.tail or "").isspace() for e in root.iter()
        )
        assert signature_of(root) is None
        events.append("begin")
        return lambda: events.append("finish")

    def sign(digest: bytes) -> bytes:
        events.append("sign")
        return sign_digest(digest)

    signed = sign_document(
        root,
        sign_digest=sign,
        issuer_name="CN=Z1,OU=07",
        serial=xml_cert.serial_number,
        check=begin,
    )
    assert events == ["begin", "finish", "sign"]
    verify_document(signed, certificates=[xml_cert])


class Refused(RuntimeError):
    pass


@pytest.mark.parametrize("when", ["begin", "finish"])
def test_a_failing_check_signs_nothing(when: str) -> None:
    root = update_request()
    signed: list[bytes] = []

    def finish() -> None:
        raise Refused("finish")

    def begin(_: etree._Element) -> FinishCheck:
        if when == "begin":
            raise Refused("begin")
        return finish

    def sign(digest: bytes) -> bytes:
        signed.append(digest)
        return bytes(64)

    with pytest.raises(Refused, match=when):
        sign_document(root, sign_digest=sign, issuer_name="CN=Z1,OU=07", serial=1, check=begin)
    assert signed == []
    assert signature_of(root) is None
