"""The DCC XMLDSig profile (spec §5), signing and verifying, and nothing wider.

Only one shape is produced or accepted: exclusive C14N of SignedInfo, ecdsa-sha256, one
Reference ``URI=""`` whose only transform is enveloped-signature, sha256 digest, raw r||s
SignatureValue, KeyInfo by X509IssuerSerial. Because the Reference names no C14N transform, its
digest is over *inclusive* C14N 1.0 of the document minus the Signature (measured: that is what
the DCC's tool and xmlsec1 compute). Anything else is refused by name rather than interpreted,
so a verifier bug cannot widen what counts as "signed". Signing copies a Signature template
built once per ds prefix, whose canonical SignedInfo is cached around the DigestValue text.
"""

from __future__ import annotations

import base64
import binascii
import copy
import datetime as dt
import functools
import hashlib
import hmac
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Final

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from lxml import etree

from signer.duis.names import parse_distinguished_name, same_name
from signer.duis.xmlparse import parse_xml
from signer.errors import InvalidInput, SignatureInvalid, Unsigned
from signer.gbcs.signature import verify_p256_sha256

DS_NS: Final = "http://www.w3.org/2000/09/xmldsig#"
EXC_C14N: Final = "http://www.w3.org/2001/10/xml-exc-c14n#"
ECDSA_SHA256: Final = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256"
ENVELOPED_SIGNATURE: Final = "http://www.w3.org/2000/09/xmldsig#enveloped-signature"
SHA256: Final = "http://www.w3.org/2001/04/xmlenc#sha256"
XML_DECLARATION: Final = b'<?xml version="1.0" encoding="UTF-8"?>'

#: The base64 payload of the DCC templates' placeholder DigestValue / SignatureValue.
_PLACEHOLDER: Final = b"default"
_WS = re.compile(r"\s+")
_DS_SIGNATURE: Final = f"{{{DS_NS}}}Signature"
#: 20 octets (RFC 5280 4.1.2.2) are at most 49 decimal digits
_MAX_SERIAL_DIGITS: Final = 49

SignDigest = Callable[[bytes], bytes]
"""Receives the SHA-256 of the canonical SignedInfo, returns raw r||s (64 bytes)."""
FinishCheck = Callable[[], None]
"""Finishes a check begun on a document: returns if it passed, raises if it failed."""
BeginCheck = Callable[[etree._Element], FinishCheck]
"""Begins a check (the schema's) of the document as it will be signed: whitespace stripped,
no Signature yet. Until its ``FinishCheck`` returns, signing only reads the tree (its
canonicalisation), so the check may run on another thread meanwhile; nothing is appended
or signed before it has passed."""


@dataclass(frozen=True)
class VerifiedSignature:
    """What a successful verification proved, and the document it proved it for."""

    certificate: x509.Certificate
    digest: bytes
    issuer_name: str
    serial: int
    #: The parsed document with its Signature removed, so callers need not parse 14 MB twice.
    root: etree._Element = field(compare=False, repr=False)


def sign_document(
    root: etree._Element,
    *,
    sign_digest: SignDigest,
    issuer_name: str,
    serial: int,
    check: BeginCheck | None = None,
) -> bytes:
    """Sign a whole DUIS document in place and return its compact serialisation.

    Whitespace-only text between elements is removed first (the DCC tool digests the compact
    form) and ``ds:Signature`` is appended as the root's last child. Never re-indent the
    result: the signature covers these exact characters. ``check`` runs alongside the
    document's canonicalisation (``BeginCheck``); if it fails nothing is signed.
    """
    pending = prepare_signature(root, issuer_name=issuer_name, serial=serial, check=check)
    try:
        raw = sign_digest(pending.digest)
    except BaseException:
        pending.abandon()  # leave the caller's tree unsigned rather than half-signed
        raise
    return pending.finish(raw)


class PendingSignature:
    """A document whose Signature lacks only its SignatureValue.

    ``sign_document`` in two halves, so a batch of documents can be prepared first and then
    signed by the token back to back: ``digest`` is what the key signs, ``finish`` takes
    the raw r||s and returns the document, ``abandon`` leaves the tree unsigned.
    """

    __slots__ = ("_root", "_sig", "digest")

    def __init__(self, root: etree._Element, sig: etree._Element, digest: bytes) -> None:
        self._root = root
        self._sig = sig
        #: SHA-256 of the canonical SignedInfo.
        self.digest = digest

    def finish(self, raw: bytes) -> bytes:
        if len(raw) != 64:
            self.abandon()
            raise ValueError(f"sign_digest returned {len(raw)} bytes, expected raw r||s (64)")
        self._sig[1].text = _b64(raw)
        body: bytes = etree.tostring(
            self._root.getroottree(), encoding="UTF-8", xml_declaration=False
        )
        return XML_DECLARATION + body

    def abandon(self) -> None:
        if self._sig.getparent() is not None:
            self._root.remove(self._sig)


def prepare_signature(
    root: etree._Element, *, issuer_name: str, serial: int, check: BeginCheck | None = None
) -> PendingSignature:
    """The first half of ``sign_document``: the Signature appended, SignatureValue empty."""
    if root.getparent() is not None:
        raise ValueError("sign_document needs the document's root element")
    if next(root.iter(_DS_SIGNATURE), None) is not None:
        raise InvalidInput("the document already carries a ds:Signature", field="duis_request")
    if serial < 0:
        raise ValueError("a certificate serial is never negative")
    _strip_ignorable_whitespace(root)
    finish_check = check(root) if check is not None else None
    try:
        digest = hashlib.sha256(_c14n_document(root.getroottree())).digest()
    finally:
        if finish_check is not None:
            finish_check()  # before the tree is touched again, whether or not C14N worked
    digest_b64 = _b64(digest)

    # The copy declares xmlns:ds; appending it re-maps it onto the root's own ds declaration
    # if there is one (lxml's choice, exactly as SubElement would make it) and drops its own.
    # copy.copy: lxml's shallow copy is the same deep copy of the subtree into a document
    # of its own that copy.deepcopy makes, without deepcopy's memo (1.8 against 2.7 us).
    template = _signature_template("ds")
    sig = copy.copy(template.signature)
    _fill_signature(sig, digest_b64, issuer_name, serial)
    root.append(sig)
    try:
        # Canonical SignedInfo: only the DigestValue text differs between documents.
        if sig.prefix != "ds":  # re-mapped onto the root's own prefix for the namespace
            template = _signature_template(sig.prefix)
        signed_info_c14n = template.c14n_head + digest_b64.encode("ascii") + template.c14n_tail
        return PendingSignature(root, sig, hashlib.sha256(signed_info_c14n).digest())
    except BaseException:
        root.remove(sig)
        raise


def verify_document(
    xml: bytes,
    *,
    certificates: Iterable[x509.Certificate],
    now: dt.datetime | None = None,
    field: str = "xml",
) -> VerifiedSignature:
    """Verify a DUIS document signed in the DCC profile against pinned certificates.

    Raises ``Unsigned`` when there is no Signature and ``SignatureInvalid`` naming the reason
    for every other failure; never returns a negative answer. ``field`` names the input in
    the ``InvalidInput`` of a document that does not parse.
    """
    if now is not None and now.utcoffset() is None:
        raise ValueError("'now' must be timezone-aware")
    root = parse_xml(xml, field=field)
    sigs = list(root.iter(_ds("Signature")))
    if not sigs:
        raise Unsigned("the document carries no ds:Signature")
    if len(sigs) > 1:
        raise SignatureInvalid(f"{len(sigs)} ds:Signature elements; the profile allows one")
    sig = sigs[0]
    if sig.getparent() is not root or _elements(root)[-1] is not sig:
        raise SignatureInvalid("ds:Signature must be the last child of the root element")

    signed_info, sig_value_el, key_info = _expect(sig, "SignedInfo", "SignatureValue", "KeyInfo")
    c14n_el, method_el, ref = _expect(
        signed_info, "CanonicalizationMethod", "SignatureMethod", "Reference"
    )
    _expect_algorithm(c14n_el, EXC_C14N, "CanonicalizationMethod")
    if _elements(c14n_el):
        raise SignatureInvalid("CanonicalizationMethod parameters (InclusiveNamespaces) refused")
    _expect_algorithm(method_el, ECDSA_SHA256, "SignatureMethod")
    uri = ref.get("URI")
    if uri != "":
        shown = "absent" if uri is None else repr(uri)
        raise SignatureInvalid(
            f'Reference URI is {shown}; the profile signs the whole document (URI="")'
        )
    transforms, digest_method, digest_el = _expect(ref, "Transforms", "DigestMethod", "DigestValue")
    (transform,) = _expect(transforms, "Transform")
    _expect_algorithm(transform, ENVELOPED_SIGNATURE, "Transform")
    _expect_algorithm(digest_method, SHA256, "DigestMethod")

    signed_digest = _b64_value(digest_el, "DigestValue", 32)
    raw_sig = _b64_value(sig_value_el, "SignatureValue", 64)
    issuer_name, serial = _issuer_serial(key_info)
    cert = _find_certificate(certificates, issuer_name, serial)

    signed_info_c14n = _c14n_signed_info(signed_info)
    _detach_keeping_tail(sig)
    digest = hashlib.sha256(_c14n_document(root.getroottree())).digest()
    if not hmac.compare_digest(digest, signed_digest):
        raise SignatureInvalid(
            f"digest mismatch: the document changed after signing "
            f"(computed {_b64(digest)}, signed {_b64(signed_digest)})"
        )

    key = cert.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise SignatureInvalid("signer certificate key is not P-256")
    try:
        verify_p256_sha256(key, signed_info_c14n, raw_sig)
    except SignatureInvalid:
        raise SignatureInvalid(
            f"signature mismatch: SignatureValue does not verify with certificate "
            f"{issuer_name} / {serial}"
        ) from None

    if now is not None:
        if now < cert.not_valid_before_utc:
            raise SignatureInvalid(
                f"signer certificate is not valid before {cert.not_valid_before_utc.isoformat()}"
            )
        if now > cert.not_valid_after_utc:
            raise SignatureInvalid(
                f"signer certificate expired on {cert.not_valid_after_utc.isoformat()}"
            )
    return VerifiedSignature(
        certificate=cert, digest=digest, issuer_name=issuer_name, serial=serial, root=root
    )


# -- canonicalisation -------------------------------------------------------------------


def _c14n_document(tree: etree._ElementTree) -> bytes:
    """Inclusive C14N 1.0 without comments: what a Reference with no C14N transform digests."""
    out: bytes = etree.tostring(tree, method="c14n", exclusive=False, with_comments=False)
    return out


def _c14n_signed_info(signed_info: etree._Element) -> bytes:
    """Exclusive C14N of a *copy*: lxml can re-map the live element's ds prefix when it moves."""
    out: bytes = etree.tostring(
        copy.deepcopy(signed_info), method="c14n", exclusive=True, with_comments=False
    )
    return out


def _strip_ignorable_whitespace(root: etree._Element) -> None:
    for node in root.iter():
        if node is not root and node.tail is not None and not node.tail.strip():
            node.tail = None
        if len(node) and node.text is not None and not node.text.strip():
            node.text = None


def _detach_keeping_tail(el: etree._Element) -> None:
    """The enveloped transform removes the element only; lxml's remove() also drops its tail."""
    parent = el.getparent()
    assert parent is not None  # a Signature is never the document root
    tail = el.tail
    prev = el.getprevious()
    parent.remove(el)
    if tail:
        if prev is not None:
            prev.tail = (prev.tail or "") + tail
        else:
            parent.text = (parent.text or "") + tail


# -- structure of the Signature -----------------------------------------------------------


@dataclass(frozen=True)
class _SignatureTemplate:
    """A blank Signature for one ds prefix and its canonical SignedInfo around the digest."""

    signature: etree._Element
    c14n_head: bytes
    c14n_tail: bytes


#: Stands in for the digest: C14N writes base64 text verbatim, so the real one slots in.
_DIGEST_PLACEHOLDER: Final = _PLACEHOLDER.decode("ascii") * 6


@functools.lru_cache(maxsize=32)
def _signature_template(prefix: str | None) -> _SignatureTemplate:
    """Built once per prefix: ~14 SubElement calls and a C14N pass were most of a signing.

    Only the DigestValue text varies within SignedInfo, so its canonical form is cached as
    the bytes either side of that text. Callers copy ``signature``, never modify it.
    """
    sig = _blank_signature(prefix)
    c14n = _c14n_signed_info(sig[0])
    qname = "" if prefix is None else f"{prefix}:"
    tail = f"</{qname}DigestValue></{qname}Reference></{qname}SignedInfo>".encode()
    head, found, rest = c14n.rpartition(_DIGEST_PLACEHOLDER.encode("ascii") + tail)
    if not found or rest:
        raise AssertionError(f"unexpected canonical SignedInfo: {c14n!r}")
    return _SignatureTemplate(signature=sig, c14n_head=head, c14n_tail=tail)


def _blank_signature(prefix: str | None) -> etree._Element:
    """The profile's Signature declaring ``xmlns:prefix``, with a placeholder DigestValue."""
    sig = etree.Element(_DS_SIGNATURE, nsmap={prefix: DS_NS})
    signed_info = etree.SubElement(sig, _ds("SignedInfo"))
    etree.SubElement(signed_info, _ds("CanonicalizationMethod"), Algorithm=EXC_C14N)
    etree.SubElement(signed_info, _ds("SignatureMethod"), Algorithm=ECDSA_SHA256)
    ref = etree.SubElement(signed_info, _ds("Reference"), URI="")
    transforms = etree.SubElement(ref, _ds("Transforms"))
    etree.SubElement(transforms, _ds("Transform"), Algorithm=ENVELOPED_SIGNATURE)
    etree.SubElement(ref, _ds("DigestMethod"), Algorithm=SHA256)
    etree.SubElement(ref, _ds("DigestValue")).text = _DIGEST_PLACEHOLDER
    etree.SubElement(sig, _ds("SignatureValue"))
    key_info = etree.SubElement(sig, _ds("KeyInfo"))
    issuer_serial = etree.SubElement(
        etree.SubElement(key_info, _ds("X509Data")), _ds("X509IssuerSerial")
    )
    etree.SubElement(issuer_serial, _ds("X509IssuerName"))
    etree.SubElement(issuer_serial, _ds("X509SerialNumber"))
    return sig


def _fill_signature(sig: etree._Element, digest_b64: str, issuer_name: str, serial: int) -> None:
    """Set the per-document texts of a template copy (positions as ``_blank_signature``)."""
    sig[0][2][2].text = digest_b64  # SignedInfo/Reference/DigestValue
    issuer_serial = sig[2][0][0]  # KeyInfo/X509Data/X509IssuerSerial
    issuer_serial[0].text = issuer_name
    issuer_serial[1].text = str(serial)


def _ds(local: str) -> str:
    return f"{{{DS_NS}}}{local}"


def _elements(el: etree._Element) -> list[etree._Element]:
    return [c for c in el if isinstance(c.tag, str)]


def _expect(el: etree._Element, *names: str) -> list[etree._Element]:
    children = _elements(el)
    got = [_qname_text(c) for c in children]
    want = [f"ds:{n}" for n in names]
    if got != want:
        held = [_short(g) for g in got[:8]] + ([f"{len(got) - 8} more"] if len(got) > 8 else [])
        raise SignatureInvalid(
            f"{_short(_qname_text(el))} holds {held or 'nothing'}; the profile needs exactly {want}"
        )
    return children


def _qname_text(el: etree._Element) -> str:
    q = etree.QName(el)
    return f"ds:{q.localname}" if q.namespace == DS_NS else q.text


def _expect_algorithm(el: etree._Element, want: str, what: str) -> None:
    got = el.get("Algorithm")
    if got != want:
        shown = repr(None if got is None else _short(got))
        raise SignatureInvalid(f"{what} {shown} is not in the DCC profile (needs {want})")


def _b64_value(el: etree._Element, what: str, size: int) -> bytes:
    text = _WS.sub("", el.text or "")
    try:
        value = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise SignatureInvalid(f"{what} is not base64") from None
    if value == _PLACEHOLDER:
        raise SignatureInvalid(f"{what} is a template placeholder ('default'), not a signature")
    if len(value) != size:
        form = " (raw r||s; DER is not the XMLDSig form)" if what == "SignatureValue" else ""
        raise SignatureInvalid(f"{what} has {len(value)} bytes, the profile needs {size}{form}")
    return value


def _issuer_serial(key_info: etree._Element) -> tuple[str, int]:
    name_el = key_info.find(f"{_ds('X509Data')}/{_ds('X509IssuerSerial')}/{_ds('X509IssuerName')}")
    serial_el = key_info.find(
        f"{_ds('X509Data')}/{_ds('X509IssuerSerial')}/{_ds('X509SerialNumber')}"
    )
    if name_el is None or serial_el is None:
        raise SignatureInvalid("KeyInfo lacks X509Data/X509IssuerSerial (name and serial)")
    name = (name_el.text or "").strip()
    serial_text = (serial_el.text or "").strip()
    if not serial_text.isdigit() or not serial_text.isascii():
        raise SignatureInvalid(f"X509SerialNumber {_short(serial_text)!r} is not a decimal integer")
    if len(serial_text) > _MAX_SERIAL_DIGITS:  # int() refuses > 4300 digits with ValueError
        raise SignatureInvalid(
            f"X509SerialNumber has {len(serial_text)} digits; a certificate serial has "
            f"at most 20 octets ({_MAX_SERIAL_DIGITS} digits)"
        )
    return name, int(serial_text)


def _find_certificate(
    certificates: Iterable[x509.Certificate], issuer_name: str, serial: int
) -> x509.Certificate:
    name = parse_distinguished_name(issuer_name)
    for cert in certificates:
        if cert.serial_number == serial and name is not None and same_name(cert.issuer, name):
            return cert
    raise SignatureInvalid(
        f"unknown signer: no pinned certificate has IssuerSerial {_short(issuer_name)!r} / {serial}"
    )


def _short(text: str, limit: int = 80) -> str:
    """A prefix of a value the document chose: errors never echo it whole."""
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
