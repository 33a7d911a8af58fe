"""SR 11.3 Activate Firmware and SignedPreCommand requests, and reading the DCC's pre-command.

Built requests are compared with the DCC templates parsed here with plain lxml, validated with
an XMLSchema compiled here (not DuisSchema) and verified by Debian xmlsec1.
"""

from __future__ import annotations

import base64
import datetime as dt
import subprocess
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, utils
from lxml import etree

from signer.duis.activation import (
    build_activate_firmware,
    build_signed_pre_command,
    expected_activation,
    extract_pre_command,
)
from signer.duis.request import RequestId
from signer.duis.schema import DuisSchema
from signer.duis.xmldsig import sign_document, verify_document
from signer.errors import FormatError, InvalidInput
from signer.gbcs.eui import Eui64
from signer.gbcs.precommand import (
    DUIS_CANCEL_EXECUTION_TIME,
    _parse_common_apdu,
    _read_apdu,
    check_pre_command,
    parse_pre_command,
    sign_checked_pre_command,
)
from tests.support.duis_documents import (
    c14n,
    dcc_response,
    independent_parse,
    template_without_signature,
)
from tests.support.independent import assert_schema_valid

DS = "http://www.w3.org/2000/09/xmldsig#"
SR = "http://www.dccinterface.co.uk/ServiceUserGateway"
NS = {"sr": SR, "ds": DS}
XML_CERT = "xml-sign-90B3D51F30010000-ds.pem"
SUPPLIER = Eui64.parse("90-B3-D5-1F-30-01-00-00")
DEVICE = Eui64.parse("00-DB-12-34-56-78-90-A0")
HASH = bytes.fromhex("AA758690730934FF0685AA758690730934FF0685657788990011223344556677")
UTC = dt.UTC

SignDigest = Callable[[bytes], bytes]
Xmlsec1 = Callable[[bytes, Path, Path], subprocess.CompletedProcess[str]]

# template -> (counter, execution time, cancel); the GBCS vectors share the case names.
TEMPLATES: dict[str, tuple[int, dt.datetime | None, bool]] = {
    "IMMEDIATE": (1000, None, False),
    "FUTURE_DATED": (1001, dt.datetime(2030, 1, 15, 9, tzinfo=UTC), False),
    "CANCELLATION": (1002, None, True),
}


def template_path(vectors: Path, case: str) -> Path:
    return vectors / "duis" / f"CS06_11.3_{case}_SUCCESS_REQUEST_DUIS.XML"


def fields(root: etree._Element) -> dict[str, str | None]:
    """Every leaf under Header and Body by local name (what the DCC reads)."""
    out: dict[str, str | None] = {}
    for part in ("sr:Header", "sr:Body"):
        container = root.find(part, NS)
        assert container is not None
        for el in container.iter():
            if len(el) == 0:
                out[etree.QName(el).localname] = el.text
    return out


def rtds_pre_command(vectors: Path, case: str) -> bytes:
    name = f"CS06_11.3_{case}_SUCCESS_PRECOMMAND_GBCS.HEX"
    return bytes.fromhex((vectors / "gbcs" / name).read_text().strip())


def sign_xml(root: etree._Element, sign_digest: SignDigest, cert: x509.Certificate) -> bytes:
    return sign_document(
        root,
        sign_digest=sign_digest,
        issuer_name=cert.issuer.rfc4514_string(),
        serial=cert.serial_number,
    )


@pytest.fixture(scope="module")
def supplier_sign(vectors: Path) -> SignDigest:
    """The published Z1-supplier-ds key (GBCS signing) behind the callback, DER -> raw."""
    key = serialization.load_pem_private_key(
        (vectors / "keys" / "Z1-supplier-ds.key.pem").read_bytes(), None
    )
    assert isinstance(key, ec.EllipticCurvePrivateKey)

    def sign(digest: bytes) -> bytes:
        r, s = utils.decode_dss_signature(
            key.sign(digest, ec.ECDSA(utils.Prehashed(hashes.SHA256())))
        )
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")

    return sign


def build_case(case: str) -> etree._Element:
    counter, when, cancel = TEMPLATES[case]
    return build_activate_firmware(
        request_id=RequestId(SUPPLIER, DEVICE, counter),
        firmware_hash=HASH,
        execution_time=when,
        cancel=cancel,
    )


# -- SR 11.3 ----------------------------------------------------------------------------------


@pytest.mark.parametrize("case", sorted(TEMPLATES))
def test_built_11_3_is_the_template(vectors: Path, case: str) -> None:
    template = template_without_signature(template_path(vectors, case))
    built = build_case(case)
    assert fields(built) == fields(template)
    assert c14n(built) == c14n(template)  # same names, namespaces on the root, text
    assert built.nsmap == template.nsmap
    assert b">\n" not in etree.tostring(built) and b"> <" not in etree.tostring(built)


@pytest.mark.parametrize("case", sorted(TEMPLATES))
def test_signed_11_3_is_schema_valid_and_verifies(
    vectors: Path,
    tmp_path: Path,
    case: str,
    sign_digest: SignDigest,
    xml_cert: x509.Certificate,
    schema: DuisSchema,
    xmlsec1: Xmlsec1,
) -> None:
    root = build_case(case)
    schema.validate(root)  # the service's own gate, before signing
    signed = sign_xml(root, sign_digest, xml_cert)
    assert_schema_valid(signed, vectors / "xsd")  # independent compile of the same XSDs
    proc = xmlsec1(signed, vectors / "certs" / XML_CERT, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.startswith("OK")
    verify_document(signed, certificates=[xml_cert])
    unsigned = independent_parse(signed)
    sig = unsigned.find("ds:Signature", NS)
    assert sig is not None
    unsigned.remove(sig)
    assert fields(unsigned) == fields(template_without_signature(template_path(vectors, case)))


def test_execution_time_is_written_in_utc_like_the_templates() -> None:
    zone = dt.timezone(dt.timedelta(hours=-5))
    root = build_activate_firmware(
        request_id=RequestId(SUPPLIER, DEVICE, 7),
        firmware_hash=HASH,
        execution_time=dt.datetime(2030, 1, 15, 4, tzinfo=zone),
    )
    assert root.findtext(".//sr:ExecutionDateTime", namespaces=NS) == "2030-01-15T09:00:00.00Z"
    # the DUIS cancellation instant passed as a time is a cancellation, written as such
    same = build_activate_firmware(
        request_id=RequestId(SUPPLIER, DEVICE, 7),
        firmware_hash=HASH,
        execution_time=DUIS_CANCEL_EXECUTION_TIME,
    )
    cancel = build_activate_firmware(
        request_id=RequestId(SUPPLIER, DEVICE, 7), firmware_hash=HASH, cancel=True
    )
    assert c14n(same) == c14n(cancel)


class _FoldZone(dt.tzinfo):
    """+01:00 before a fall-back (fold 0), +00:00 after it (fold 1): one wall time, two instants."""

    def utcoffset(self, when: dt.datetime | None) -> dt.timedelta:
        return dt.timedelta(hours=0 if when is not None and when.fold else 1)

    def dst(self, when: dt.datetime | None) -> dt.timedelta:
        return dt.timedelta(0)

    def tzname(self, when: dt.datetime | None) -> str:
        return "FOLD"


def test_execution_time_text_follows_the_instant_not_the_wall_clock() -> None:
    """Equal local times are different instants across zones and DST folds (the text is cached)."""

    def text(when: dt.datetime) -> str | None:
        root = build_activate_firmware(
            request_id=RequestId(SUPPLIER, DEVICE, 7), firmware_hash=HASH, execution_time=when
        )
        return root.findtext(".//sr:ExecutionDateTime", namespaces=NS)

    zone = _FoldZone()
    assert text(dt.datetime(2030, 10, 27, 1, 30, tzinfo=zone)) == "2030-10-27T00:30:00.00Z"
    assert text(dt.datetime(2030, 10, 27, 1, 30, tzinfo=zone, fold=1)) == "2030-10-27T01:30:00.00Z"
    wall = dt.datetime(2030, 1, 15, 9)
    assert text(wall.replace(tzinfo=UTC)) == "2030-01-15T09:00:00.00Z"
    assert text(wall.replace(tzinfo=dt.timezone(dt.timedelta(hours=2)))) == (
        "2030-01-15T07:00:00.00Z"
    )


@pytest.mark.parametrize(
    ("kwargs", "field", "match"),
    [
        ({"firmware_hash": bytes(31)}, "firmware_hash", "32 bytes"),
        ({"firmware_hash": HASH.hex().encode()}, "firmware_hash", "32 bytes"),
        ({"execution_time": dt.datetime(2030, 1, 1)}, "execution_time", "timezone"),
        (
            {"execution_time": dt.datetime(2030, 1, 1, 0, 0, 0, 500, tzinfo=UTC)},
            "execution_time",
            "whole seconds",
        ),
        (
            {"execution_time": dt.datetime(2030, 1, 1, tzinfo=UTC), "cancel": True},
            "execution_time",
            "cancellation",
        ),
    ],
)
def test_bad_11_3_inputs(kwargs: dict[str, object], field: str, match: str) -> None:
    args: dict[str, object] = {"request_id": RequestId(SUPPLIER, DEVICE, 1), "firmware_hash": HASH}
    args.update(kwargs)
    with pytest.raises(InvalidInput, match=match) as info:
        build_activate_firmware(**args)  # type: ignore[arg-type]
    assert info.value.field == field


@pytest.mark.parametrize("case", sorted(TEMPLATES))
def test_each_build_is_a_fresh_tree(
    vectors: Path,
    case: str,
    sign_digest: SignDigest,
    xml_cert: x509.Certificate,
    schema: DuisSchema,
) -> None:
    """The caller signs (mutates) what it gets: no later build may see that, nor share nodes."""
    first, second = build_case(case), build_case(case)
    nodes = list(second.iter())  # alive: one node has one proxy, so shared nodes are `is`
    assert not any(a is b for a in first.iter() for b in nodes)
    expected = etree.tostring(second)
    sign_xml(first, sign_digest, xml_cert)  # strips whitespace, appends ds:Signature
    for el in first.iter():
        el.text = "changed"
    etree.SubElement(first[0], f"{{{SR}}}Extra")
    assert etree.tostring(second) == expected
    third = build_case(case)
    assert etree.tostring(third) == expected
    assert third.find("ds:Signature", NS) is None
    assert c14n(third) == c14n(template_without_signature(template_path(vectors, case)))
    schema.validate(third)


# -- SignedPreCommand -------------------------------------------------------------------------


@pytest.mark.parametrize("case", sorted(TEMPLATES))
def test_signed_pre_command_request(
    vectors: Path,
    tmp_path: Path,
    case: str,
    sign_digest: SignDigest,
    supplier_sign: SignDigest,
    xml_cert: x509.Certificate,
    schema: DuisSchema,
    xmlsec1: Xmlsec1,
) -> None:
    counter, when, cancel = TEMPLATES[case]
    request_id = RequestId(SUPPLIER, DEVICE, counter)
    expected = expected_activation(
        request_id=request_id, firmware_hash=HASH, execution_time=when, cancel=cancel
    )
    pc = parse_pre_command(rtds_pre_command(vectors, case))
    signed_command = sign_checked_pre_command(pc, expected, supplier_sign)

    root = build_signed_pre_command(request_id=request_id, signed_command=signed_command)
    schema.validate(root)
    xml = sign_xml(root, sign_digest, xml_cert)
    assert_schema_valid(xml, vectors / "xsd")
    proc = xmlsec1(xml, vectors / "certs" / XML_CERT, tmp_path)
    assert proc.returncode == 0, proc.stderr

    doc = independent_parse(xml)
    assert [etree.QName(el).localname for el in doc] == ["Header", "Body", "Signature"]
    header_el = doc.find("sr:Header", NS)
    assert header_el is not None
    header = {etree.QName(el).localname: el.text for el in header_el}
    assert header == {
        "RequestID": f"90-B3-D5-1F-30-01-00-00:00-DB-12-34-56-78-90-A0:{counter}",
        "CommandVariant": "5",
        "ServiceReference": "11.3",
        "ServiceReferenceVariant": "11.3",
    }
    body = doc.find("sr:Body", NS)
    assert body is not None
    assert [etree.QName(el).localname for el in body.iter()] == [
        "Body",
        "SignedPreCommand",
        "GBCSPayload",
    ]
    payload = base64.b64decode(doc.findtext(".//sr:GBCSPayload", namespaces=NS) or "")
    assert payload == signed_command
    assert payload[:-64] == rtds_pre_command(vectors, case) + b"\x40"


@pytest.mark.parametrize("variant", [6, 7])
def test_other_signed_pre_command_variants(variant: int, vectors: Path, schema: DuisSchema) -> None:
    command = rtds_pre_command(vectors, "IMMEDIATE") + b"\x40" + bytes(64)
    root = build_signed_pre_command(
        request_id=RequestId(SUPPLIER, DEVICE, 1000),
        signed_command=command,
        command_variant=variant,
    )
    schema.validate(root)
    assert root.findtext("sr:Header/sr:CommandVariant", namespaces=NS) == str(variant)


def test_signed_pre_command_builds_are_fresh_trees(vectors: Path, schema: DuisSchema) -> None:
    """Each variant's build is its own tree: mutating one changes no other and no later one."""
    command = rtds_pre_command(vectors, "IMMEDIATE") + b"\x40" + bytes(64)
    request_id = RequestId(SUPPLIER, DEVICE, 1000)
    for variant in (5, 6, 7):
        first, second = (
            build_signed_pre_command(
                request_id=request_id, signed_command=command, command_variant=variant
            )
            for _ in range(2)
        )
        expected = etree.tostring(second)
        for el in first.iter():
            el.text = "changed"
        first.append(etree.Element(f"{{{DS}}}Signature"))
        first[1].clear()
        assert etree.tostring(second) == expected
        third = build_signed_pre_command(
            request_id=request_id, signed_command=command, command_variant=variant
        )
        assert etree.tostring(third) == expected
        schema.validate(third)
        assert third.findtext("sr:Header/sr:CommandVariant", namespaces=NS) == str(variant)
        payload = base64.b64decode(third.findtext(".//sr:GBCSPayload", namespaces=NS) or "")
        assert payload == command


def test_signed_command_must_belong_to_the_request(vectors: Path) -> None:
    command = rtds_pre_command(vectors, "IMMEDIATE") + b"\x40" + bytes(64)
    other_device = Eui64.parse("00-DB-12-34-56-78-90-A1")
    with pytest.raises(InvalidInput, match="counter 1000 is not the RequestID counter 1001"):
        build_signed_pre_command(
            request_id=RequestId(SUPPLIER, DEVICE, 1001), signed_command=command
        )
    with pytest.raises(InvalidInput, match="recipient 00-DB-12-34-56-78-90-A0 is not the target"):
        build_signed_pre_command(
            request_id=RequestId(SUPPLIER, other_device, 1000), signed_command=command
        )
    with pytest.raises(InvalidInput, match="CommandVariant 5, 6 or 7"):
        build_signed_pre_command(
            request_id=RequestId(SUPPLIER, DEVICE, 1000),
            signed_command=command,
            command_variant=4,
        )
    with pytest.raises(FormatError, match="0x40"):  # an unsigned pre-command is not a command
        build_signed_pre_command(
            request_id=RequestId(SUPPLIER, DEVICE, 1000),
            signed_command=rtds_pre_command(vectors, "IMMEDIATE"),
        )


def test_a_parse_given_for_another_command_is_not_trusted(vectors: Path) -> None:
    """``parsed`` only spares the parse of the very command it was made from: given with
    any other command, that command is parsed and checked as if ``parsed`` were absent."""
    immediate = rtds_pre_command(vectors, "IMMEDIATE")
    parsed = parse_pre_command(immediate)
    rid = RequestId(SUPPLIER, DEVICE, 1000)
    same = build_signed_pre_command(
        request_id=rid, signed_command=immediate + b"\x40" + bytes(64), parsed=parsed
    )
    assert etree.tostring(same) == etree.tostring(
        build_signed_pre_command(request_id=rid, signed_command=immediate + b"\x40" + bytes(64))
    )
    with pytest.raises(InvalidInput, match="counter 1000 is not the RequestID counter 1001"):
        build_signed_pre_command(
            request_id=RequestId(SUPPLIER, DEVICE, 1001),
            signed_command=immediate + b"\x40" + bytes(64),
            parsed=parsed,
        )
    # the apdu of another device's pre-command, with this parse: the command's own fields count
    other = bytearray(immediate)
    at = other.index(bytes.fromhex("00DB1234567890A0"))
    other[at : at + 8] = bytes.fromhex("00DB1234567890A1")
    with pytest.raises(InvalidInput, match="recipient 00-DB-12-34-56-78-90-A1 is not the target"):
        build_signed_pre_command(
            request_id=rid, signed_command=bytes(other) + b"\x40" + bytes(64), parsed=parsed
        )
    with pytest.raises(FormatError, match="0x40"):  # unsigned, even with the parse at hand
        build_signed_pre_command(request_id=rid, signed_command=immediate, parsed=parsed)


@pytest.mark.parametrize("case", ["IMMEDIATE_SUCCESS", "IMMEDIATE_ERROR"])
def test_the_immediate_vectors_take_the_fast_path_and_read_the_same(
    vectors: Path, case: str
) -> None:
    """The pre-command of a campaign is read at fixed offsets; what it reads is exactly what
    the general reader reads (tests/duis/test_properties.py: for any input)."""
    raw = bytes.fromhex((vectors / "gbcs" / f"CS06_11.3_{case}_PRECOMMAND_GBCS.HEX").read_text())
    fast = _parse_common_apdu(raw)
    assert fast is not None
    assert fast == _read_apdu(raw, field="pre_command")
    assert parse_pre_command(raw) == fast[0]


def with_counter(raw: bytes, counter: bytes) -> bytes:
    """An immediate pre-command with another INTEGER counter (content: the last TLV)."""
    content = raw.index(b"\x30", 33)
    body = raw[content + 2 : content + 36] + bytes((0x02, len(counter))) + counter
    return raw[: content - 1] + bytes((len(body) + 2, 0x30, len(body))) + body


@pytest.mark.parametrize(
    "counter", [b"\x00", b"\x7f", b"\x00\x80", b"\x01" * 8, b"\x00" + b"\xff" * 8]
)
def test_fast_path_counters_read_as_the_general_reader(vectors: Path, counter: bytes) -> None:
    apdu = with_counter(rtds_pre_command(vectors, "IMMEDIATE"), counter)
    fast = _parse_common_apdu(apdu)
    assert fast is not None
    assert fast == _read_apdu(apdu, field="pre_command")
    assert fast[0].counter == int.from_bytes(counter, "big")


def test_other_layouts_fall_through_to_the_general_reader(vectors: Path) -> None:
    """Dated pre-commands, long-form lengths, negative, empty or over-wide counters: not the
    fast path's, so the general reader reads or refuses them, naming the fault."""
    assert _parse_common_apdu(rtds_pre_command(vectors, "FUTURE_DATED")) is None
    raw = rtds_pre_command(vectors, "IMMEDIATE")
    long_form = raw[:1] + b"\x81" + raw[1:]  # transaction-id length 0x81 0x09
    assert _parse_common_apdu(long_form) is None
    assert replace(parse_pre_command(long_form), apdu=raw) == parse_pre_command(raw)
    for counter, fault in ((b"\x80", "negative"), (b"", "empty"), (b"\x01" * 10, "at most 72")):
        apdu = with_counter(raw, counter)
        assert _parse_common_apdu(apdu) is None
        with pytest.raises(FormatError, match=fault):
            parse_pre_command(apdu)


# -- the DCC's response carrying the pre-command ---------------------------------------------


@pytest.mark.parametrize("trailer", [b"", b"\x00"])
def test_extract_pre_command(vectors: Path, trailer: bytes) -> None:
    raw = rtds_pre_command(vectors, "IMMEDIATE") + trailer
    xml = dcc_response(raw)
    assert_schema_valid(xml, vectors / "xsd")  # the fixture itself follows the schema
    request_id, payload = extract_pre_command(xml)
    assert request_id == RequestId(SUPPLIER, DEVICE, 1000)
    assert payload == raw


def test_extract_without_request_id(vectors: Path) -> None:
    xml = dcc_response(rtds_pre_command(vectors, "IMMEDIATE"), request_id=None)
    assert_schema_valid(xml, vectors / "xsd")
    assert extract_pre_command(xml) == (None, rtds_pre_command(vectors, "IMMEDIATE"))


def test_extract_refuses_other_shapes(vectors: Path) -> None:
    raw = rtds_pre_command(vectors, "IMMEDIATE")
    with pytest.raises(InvalidInput, match=r"expected 11\.3"):
        extract_pre_command(dcc_response(raw, service="11.2"))
    with pytest.raises(InvalidInput, match="0 sr:PreCommand"):
        extract_pre_command(dcc_response(raw, element="GBCSPayload"))
    with pytest.raises(InvalidInput, match="expected sr:Response"):
        extract_pre_command(template_path(vectors, "IMMEDIATE").read_bytes())
    with pytest.raises(FormatError, match="not base64"):
        extract_pre_command(dcc_response(raw).replace(b"</sr:GBCSPayload>", b"!</sr:GBCSPayload>"))
    doctype = b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e "x">]>' + dcc_response(raw)[38:]
    with pytest.raises(InvalidInput, match="DOCTYPE"):
        extract_pre_command(doctype)


# -- the whole activation, pure --------------------------------------------------------------


@pytest.mark.parametrize("case", sorted(TEMPLATES))
def test_activation_round_trip(
    vectors: Path, case: str, supplier_sign: SignDigest, schema: DuisSchema
) -> None:
    counter, when, cancel = TEMPLATES[case]
    request_id = RequestId(SUPPLIER, DEVICE, counter)
    schema.validate(
        build_activate_firmware(
            request_id=request_id, firmware_hash=HASH, execution_time=when, cancel=cancel
        )
    )
    answered, raw = extract_pre_command(
        dcc_response(rtds_pre_command(vectors, case), request_id=str(request_id))
    )
    assert answered == request_id
    pc = parse_pre_command(raw)
    expected = expected_activation(
        request_id=request_id, firmware_hash=HASH, execution_time=when, cancel=cancel
    )
    assert check_pre_command(pc, expected) == []
    command = sign_checked_pre_command(pc, expected, supplier_sign)
    schema.validate(build_signed_pre_command(request_id=request_id, signed_command=command))
    # the pre-command answering another request of the campaign is refused
    other = expected_activation(
        request_id=RequestId(SUPPLIER, DEVICE, counter + 10),
        firmware_hash=HASH,
        execution_time=when,
        cancel=cancel,
    )
    assert [f.split(":")[0] for f in check_pre_command(pc, other)] == [
        "counter",
        "originator_counter",
    ]
