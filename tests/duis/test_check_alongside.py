"""``sign_document(check=...)``: the schema check of a large request runs on its own thread
while the document is canonicalised. It sees the tree as it will be signed (whitespace
stripped, no Signature yet), it has finished before anything is appended or signed, and a
failing check signs nothing; each concurrent caller gets its own document's verdict."""

from __future__ import annotations

import random
import subprocess
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

import pytest
from cryptography import x509
from lxml import etree

from signer.duis.request import RequestId, build_update_firmware
from signer.duis.schema import DuisSchema
from signer.duis.xmldsig import DS_NS, FinishCheck, sign_document, verify_document
from signer.duis.xmlparse import parse_xml
from signer.errors import InvalidInput
from signer.gbcs.eui import Eui64

SR = "{http://www.dccinterface.co.uk/ServiceUserGateway}"
XML_CERT = "xml-sign-90B3D51F30010000-ds.pem"
RID = RequestId.parse("90-B3-D5-1F-30-01-00-00:90-B3-D5-1F-30-00-00-02:1001")
SignDigest = Callable[[bytes], bytes]
Xmlsec1 = Callable[[bytes, Path, Path], subprocess.CompletedProcess[str]]


def request(image: bytes = bytes(range(256)) * 40, devices: int = 2) -> etree._Element:
    return build_update_firmware(
        request_id=RID,
        service="11.1",
        firmware_image=image,
        firmware_version="0102",
        devices=[Eui64((0x00DB << 48 | i).to_bytes(8, "big")) for i in range(devices)],
    )


def invalid(root: etree._Element) -> etree._Element:
    etree.SubElement(root, f"{SR}Stray")
    return root


def signature_of(root: etree._Element) -> etree._Element | None:
    return root.find(f"{{{DS_NS}}}Signature")


def test_the_check_sees_the_stripped_tree_and_finishes_before_signing(
    sign_digest: SignDigest, xml_cert: x509.Certificate
) -> None:
    root = request()
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
    root = request()
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


@pytest.mark.parametrize("aside", [False, True])
def test_begin_reports_the_first_schema_error(schema: DuisSchema, aside: bool) -> None:
    assert schema.begin(request(), aside=aside)() is None
    bad = invalid(request())
    if not aside:
        with pytest.raises(InvalidInput, match="Stray") as raised:
            schema.begin(bad, aside=False)
    else:
        finish = schema.begin(bad, aside=True)  # returns at once: the verdict comes later
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
        request(image, devices=5000),
        sign_digest=sign_digest,
        issuer_name="CN=Z1,OU=07",
        serial=xml_cert.serial_number,
        check=partial(schema.begin, aside=True),
    )
    schema.validate(parse_xml(signed, field="signed"))
    verify_document(signed, certificates=[xml_cert])
    proc = xmlsec1(signed, vectors / "certs" / XML_CERT, tmp_path)
    assert proc.returncode == 0, proc.stderr


def test_concurrent_callers_each_get_their_own_verdict(
    schema: DuisSchema, sign_digest: SignDigest, xml_cert: x509.Certificate
) -> None:
    def one(i: int) -> str:
        root = request(bytes([i]) * 300_000, devices=200)
        if i % 3 == 0:
            invalid(root)
        try:
            sign_document(
                root,
                sign_digest=sign_digest,
                issuer_name="CN=Z1,OU=07",
                serial=xml_cert.serial_number,
                check=partial(schema.begin, aside=True),
            )
        except InvalidInput:
            assert signature_of(root) is None
            return "refused"
        return "signed"

    with ThreadPoolExecutor(6) as pool:
        verdicts = list(pool.map(one, range(24)))
    assert verdicts == ["refused" if i % 3 == 0 else "signed" for i in range(24)]
