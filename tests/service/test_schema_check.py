"""``schema_check``: the DUIS schema check BuildDUIS hands to ``sign_document``. Inline it
raises at once; aside it runs on the schema thread while the document is canonicalised and
its verdict comes when finished. A large request checked aside signs and verifies (our
verifier, xmlsec1, the schema again); concurrent callers each get their own verdict."""

from __future__ import annotations

import random
import subprocess
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from cryptography import x509
from lxml import etree

from signer.duis.schema import DuisSchema
from signer.duis.xmldsig import SignDigest, sign_document, verify_document
from signer.duis.xmlparse import parse_xml
from signer.errors import InvalidInput
from signer.service.schema_check import schema_check
from tests.support.duis_documents import signature_of, stray_element, update_request

XML_CERT = "xml-sign-90B3D51F30010000-ds.pem"
Xmlsec1 = Callable[[bytes, Path, Path], subprocess.CompletedProcess[str]]


def test_aside_validates_on_the_schema_thread(
    schema: DuisSchema, monkeypatch: pytest.MonkeyPatch
) -> None:
    threads: list[str] = []
    validate = schema.validate

    def recorded(root: etree._Element) -> None:
        threads.append(threading.current_thread().name)
        validate(root)

    monkeypatch.setattr(schema, "validate", recorded)
    schema_check(schema, aside=False)(update_request())()
    schema_check(schema, aside=True)(update_request())()
    assert threads[0] == threading.current_thread().name
    assert threads[1].startswith("signer-schema") and threads[1] != threads[0]


@pytest.mark.parametrize("aside", [False, True])
def test_the_first_schema_error_inline_or_when_finished(schema: DuisSchema, aside: bool) -> None:
    assert schema_check(schema, aside=aside)(update_request())() is None
    bad = stray_element(update_request())
    if not aside:
        with pytest.raises(InvalidInput, match="Stray") as raised:
            schema_check(schema, aside=False)(bad)
    else:
        finish = schema_check(schema, aside=True)(bad)  # returns at once: the verdict comes later
        with pytest.raises(InvalidInput, match="Stray") as raised:
            finish()
    assert raised.value.field == "duis_request"


def test_a_large_request_checked_alongside_signs_and_verifies(
    vectors: Path,
    tmp_path: Path,
    schema: DuisSchema,
    sign_digest: SignDigest,
    xml_cert: x509.Certificate,
    xmlsec1: Xmlsec1,
) -> None:
    image = random.Random(14).randbytes(2_000_000)  # high entropy, as real firmware is
    signed = sign_document(
        update_request(image, devices=5000),
        sign_digest=sign_digest,
        issuer_name="CN=Z1,OU=07",
        serial=xml_cert.serial_number,
        check=schema_check(schema, aside=True),
    )
    schema.validate(parse_xml(signed, field="signed"))
    verify_document(signed, certificates=[xml_cert])
    proc = xmlsec1(signed, vectors / "certs" / XML_CERT, tmp_path)
    assert proc.returncode == 0, proc.stderr


def test_concurrent_callers_each_get_their_own_verdict(
    schema: DuisSchema, sign_digest: SignDigest, xml_cert: x509.Certificate
) -> None:
    def one(i: int) -> str:
        root = update_request(bytes([i]) * 300_000, devices=200)
        if i % 3 == 0:
            stray_element(root)
        try:
            sign_document(
                root,
                sign_digest=sign_digest,
                issuer_name="CN=Z1,OU=07",
                serial=xml_cert.serial_number,
                check=schema_check(schema, aside=True),
            )
        except InvalidInput:
            assert signature_of(root) is None
            return "refused"
        return "signed"

    with ThreadPoolExecutor(6) as pool:
        verdicts = list(pool.map(one, range(24)))
    assert verdicts == ["refused" if i % 3 == 0 else "signed" for i in range(24)]
