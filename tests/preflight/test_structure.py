"""The pre-flight's one-pass element lookups: every element of the XMLDSig profile and of
the request header missing or repeated is refused, naming it; and the one-pass helpers agree
with the one-element-at-a-time definitions they replaced (differential, failing inputs too)."""

from __future__ import annotations

import copy
import itertools

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from lxml import etree

from signer.preflight import _eui, _xml, check_activation
from tests.support.constants import RTDS_DEVICE
from tests.support.preflight import SR, Artifacts, refused, resigned_document

DS = _xml.DS
#: (parent, element) of the signature profile, parents as paths from ds:Signature
PROFILE = [
    (".", "SignedInfo"),
    (".", "SignatureValue"),
    (".", "KeyInfo"),
    ("ds:SignedInfo", "CanonicalizationMethod"),
    ("ds:SignedInfo", "SignatureMethod"),
    ("ds:SignedInfo", "Reference"),
    ("ds:SignedInfo/ds:Reference", "Transforms"),
    ("ds:SignedInfo/ds:Reference/ds:Transforms", "Transform"),
    ("ds:SignedInfo/ds:Reference", "DigestMethod"),
    ("ds:SignedInfo/ds:Reference", "DigestValue"),
    ("ds:KeyInfo", "X509Data"),
    ("ds:KeyInfo/ds:X509Data", "X509IssuerSerial"),
    ("ds:KeyInfo/ds:X509Data/ds:X509IssuerSerial", "X509IssuerName"),
    ("ds:KeyInfo/ds:X509Data/ds:X509IssuerSerial", "X509SerialNumber"),
]
NS = {"ds": _xml.DS_NS}


def _activation(a: Artifacts, document: bytes) -> None:
    check_activation(
        document,
        device_id=RTDS_DEVICE,
        manufacturer_image_sha256=a.image_sha256,
        previous_counter=None,
        xml_certificate=a.xml_cert,
        schema=None,  # the schema would refuse these first: the structure checks are tested
        execution_time=None,
    )


def _edited_signature(document: bytes, parent: str, local: str, repeat: bool) -> bytes:
    root = etree.fromstring(document)
    sig = root[-1]
    assert sig.tag == DS + "Signature"
    holder = sig if parent == "." else sig.find(parent, NS)
    assert holder is not None
    el = holder.find(f"ds:{local}", NS)
    assert el is not None
    if repeat:
        el.addnext(copy.deepcopy(el))
    else:
        holder.remove(el)
    return etree.tostring(root)


@pytest.mark.parametrize("repeat", [False, True], ids=["missing", "repeated"])
@pytest.mark.parametrize(("parent", "local"), PROFILE, ids=[p[1] for p in PROFILE])
def test_each_signature_element_missing_or_repeated_is_refused(
    artifacts: Artifacts, parent: str, local: str, repeat: bool
) -> None:
    _activation(artifacts, artifacts.activation)  # the unedited one passes
    doc = _edited_signature(artifacts.activation, parent, local, repeat)
    detail = refused("xml_signature", _activation, artifacts, doc)
    assert local in detail
    if local != "Transform":  # Transforms' own count is checked first, in its words
        assert f"found {2 if repeat else 0}" in detail


HEADER = ["RequestID", "CommandVariant", "ServiceReference", "ServiceReferenceVariant"]


def _edit_sr(parent_path: str, local: str, repeat: bool) -> object:
    def edit(root: etree._Element) -> None:
        holder = root if parent_path == "." else root.find(parent_path)
        assert holder is not None
        el = holder.find(SR + local)
        assert el is not None
        if repeat:
            el.addnext(copy.deepcopy(el))
        else:
            holder.remove(el)

    return edit


@pytest.mark.parametrize("repeat", [False, True], ids=["missing", "repeated"])
@pytest.mark.parametrize(
    ("parent", "local"),
    [(".", "Header"), (".", "Body")]
    + [(f"{SR}Header", name) for name in HEADER]
    + [(f"{SR}Body/{SR}ActivateFirmware", "FirmwareHash")],
    ids=["Header", "Body", *HEADER, "FirmwareHash"],
)
def test_each_request_element_missing_or_repeated_is_refused(
    artifacts: Artifacts,
    xml_key: ec.EllipticCurvePrivateKey,
    parent: str,
    local: str,
    repeat: bool,
) -> None:
    edit = _edit_sr(parent, local, repeat)
    doc = resigned_document(artifacts.activation, xml_key, artifacts.xml_cert, edit)  # type: ignore[arg-type]
    detail = refused("duis_schema", _activation, artifacts, doc)
    assert local in detail


def test_two_execution_times_are_refused(
    artifacts: Artifacts, xml_key: ec.EllipticCurvePrivateKey
) -> None:
    def two(root: etree._Element) -> None:
        op = root.find(f"{SR}Body/{SR}ActivateFirmware")
        assert op is not None
        for _ in range(2):
            etree.SubElement(op, SR + "ExecutionDateTime").text = "2030-01-01T00:00:00Z"

    doc = resigned_document(artifacts.activation, xml_key, artifacts.xml_cert, two)
    assert "two ExecutionDateTime" in refused("duis_schema", _activation, artifacts, doc)


# ---------------------------------------------------------------- differential


def _one_by_one(parent: etree._Element, what: str, *locals_: str) -> list[etree._Element]:
    """The lookup as it was: one pass per element, in order, first failure raised."""
    out = []
    for local in locals_:
        found = [c for c in parent if c.tag == DS + local]
        if len(found) != 1:
            raise _xml.SignatureRefused(
                f"{what} must hold exactly one ds:{local}, found {len(found)}"
            )
        out.append(found[0])
    return out


def _parents() -> list[etree._Element]:
    """Every parent with 0..2 each of ds:A and ds:B, plus an sr:A, a PI and a ds:C."""
    out = []
    for a, b in itertools.product(range(3), repeat=2):
        for extra in (False, True):
            p = etree.Element("p")
            for _ in range(a):
                etree.SubElement(p, DS + "A")
            if extra:
                p.append(etree.ProcessingInstruction("pi", "x"))
                etree.SubElement(p, SR + "A")
                etree.SubElement(p, DS + "C")
            for _ in range(b):
                etree.SubElement(p, DS + "B")
                etree.SubElement(p, SR + "B")
            out.append(p)
    return out


@pytest.mark.parametrize("names", [("A",), ("A", "B"), ("B", "A"), ("A", "B", "C")])
def test_the_one_pass_ds_lookup_agrees_with_one_by_one(names: tuple[str, ...]) -> None:
    outcomes = set()
    for p in _parents():
        try:
            want: list[etree._Element] | str = _one_by_one(p, "x", *names)
        except _xml.SignatureRefused as exc:
            want = str(exc)
        try:
            got: list[etree._Element] | str = _xml._ones(p, "x", *names)
        except _xml.SignatureRefused as exc:
            got = str(exc)
        assert got == want, etree.tostring(p)
        outcomes.add(isinstance(want, str))
    assert outcomes == {True, False}  # both passing and failing parents were compared


@pytest.mark.parametrize("names", [("A",), ("A", "B"), ("B", "A", "C")])
def test_the_one_pass_sr_lookup_agrees_with_child(names: tuple[str, ...]) -> None:
    sr = _xml.SR
    for p in _parents():
        for el in p:
            if isinstance(el.tag, str) and el.tag.startswith(DS):
                el.tag = sr + el.tag[len(DS) :]
        assert _xml.children(p, *names) == [_xml.child(p, n) for n in names]


def _eui_as_it_was(text: str) -> str:
    compact = text.strip().replace("-", "").upper()
    if len(compact) != 16 or any(c not in "0123456789ABCDEF" for c in compact):
        raise ValueError(text)
    return compact


@pytest.mark.parametrize(
    "text",
    [
        "00-DB-12-34-56-78-90-B9",
        "00db1234567890b9",
        " 00DB1234567890B9 ",
        "00DB1234567890B9\n",
        "00DB1234567890B",
        "00DB1234567890B9A",
        "00DB1234567890BG",
        "00DB1234567890B\u0669",  # an Arabic-Indic digit
        "00DB1234567890B\uff21",  # a full-width A
        "00DB1234567890Bß",
        "",
        "----------------",
    ],
)
def test_the_eui_check_agrees_with_its_first_definition(text: str) -> None:
    try:
        want = _eui_as_it_was(text)
    except ValueError:
        with pytest.raises(ValueError):
            _eui(text)
    else:
        assert _eui(text) == want
