"""Reading a DUIS document the way the DCC will, written apart from ``signer.duis``.

Parsing refuses DTDs, entities and every external resource; the XML signature is checked in
the profile of the specification (gbcs-firmware.md section 5): exclusive C14N of SignedInfo,
ecdsa-sha256, one Reference ``URI=""`` with only the enveloped-signature transform (so its
digest is SHA-256 of inclusive C14N 1.0 of the document minus the Signature), raw r||s
SignatureValue, KeyInfo naming the certificate by X509IssuerSerial.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import threading
from dataclasses import dataclass
from typing import Any, Final

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from lxml import etree

SR: Final = "{http://www.dccinterface.co.uk/ServiceUserGateway}"
DS_NS: Final = "http://www.w3.org/2000/09/xmldsig#"
DS: Final = "{" + DS_NS + "}"
EXC_C14N: Final = "http://www.w3.org/2001/10/xml-exc-c14n#"
ECDSA_SHA256: Final = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256"
ENVELOPED: Final = "http://www.w3.org/2000/09/xmldsig#enveloped-signature"
SHA256: Final = "http://www.w3.org/2001/04/xmlenc#sha256"
_SIGNATURE: Final = DS + "Signature"
_ECDSA_SHA256 = ec.ECDSA(hashes.SHA256())


class XmlRefused(Exception):
    """The document is not one the DCC would read (caller names the check)."""


class SignatureRefused(Exception):
    """The XML signature does not verify in the profile (caller names the check)."""


class _NoExternal(etree.Resolver):
    def resolve(self, system_url: str | None, public_id: str | None, context: Any) -> Any:
        return self.resolve_string("", context)


_local = threading.local()


def _parser() -> etree.XMLParser:
    """One parser per thread: lxml parsers must not be shared between threads."""
    parser: etree.XMLParser | None = getattr(_local, "parser", None)
    if parser is None:
        parser = etree.XMLParser(
            resolve_entities=False,
            no_network=True,
            load_dtd=False,
            dtd_validation=False,
            huge_tree=True,  # SR 11.1 carries up to 10 MB of image as one base64 text node
            remove_blank_text=False,  # the digest is over what was sent
            remove_comments=True,  # outside the digest: a comment must not cut a signed text
            remove_pis=False,
            collect_ids=False,
        )
        parser.resolvers.add(_NoExternal())
        _local.parser = parser
    return parser


def parse(document: bytes) -> etree._Element:
    """The root of ``document``; refused if it is not well-formed or declares a DOCTYPE."""
    if not document.strip():
        raise XmlRefused("the document is empty")
    # before parsing: no DOCTYPE means no entity declaration and no external subset to open
    if b"<!DOCTYPE" in document or b"<!ENTITY" in document:
        raise XmlRefused("the document declares a DOCTYPE or an entity; DUIS documents carry none")
    try:
        root = etree.fromstring(document, _parser())
    except etree.XMLSyntaxError as exc:
        raise XmlRefused(f"not well-formed XML (line {exc.lineno})") from None
    info = root.getroottree().docinfo
    if info.doctype or info.internalDTD is not None or info.externalDTD is not None:
        raise XmlRefused("the document declares a DOCTYPE; DUIS documents carry none")
    return root


@dataclass(frozen=True)
class _XmlSigner:
    key: ec.EllipticCurvePublicKey
    issuer: x509.Name
    issuer_text: str
    serial: int


@functools.lru_cache(maxsize=64)
def _xml_signer(certificate: x509.Certificate) -> _XmlSigner:
    """Per certificate (equal by DER), its loaded key and name: loaded once per process."""
    key = certificate.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise SignatureRefused("the XML-signing certificate's key is not ECDSA P-256")
    return _XmlSigner(
        key, certificate.issuer, certificate.issuer.rfc4514_string(), certificate.serial_number
    )


def _one(parent: etree._Element, local: str, what: str) -> etree._Element:
    return _ones(parent, what, local)[0]


def _ones(parent: etree._Element, what: str, *locals_: str) -> list[etree._Element]:
    """The one ``ds:`` child of each name in ``locals_``, in that order, from one pass over
    ``parent``'s children (other children are not looked at); refused unless each name
    occurs exactly once."""
    wanted: dict[object, int] = {DS + local: i for i, local in enumerate(locals_)}
    found: list[list[etree._Element]] = [[] for _ in locals_]
    for c in parent:
        i = wanted.get(c.tag)
        if i is not None:
            found[i].append(c)
    for local, els in zip(locals_, found, strict=True):
        if len(els) != 1:
            raise SignatureRefused(f"{what} must hold exactly one ds:{local}, found {len(els)}")
    return [els[0] for els in found]


def _algorithm(el: etree._Element, want: str, what: str) -> None:
    got = el.get("Algorithm")
    if got != want:
        raise SignatureRefused(f"{what} is {str(got)[:80]!r}, the profile uses {want}")


def _b64(el: etree._Element, what: str, size: int) -> bytes:
    text = "".join((el.text or "").split())
    try:
        value = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise SignatureRefused(f"{what} is not base64") from None
    if len(value) != size:
        raise SignatureRefused(f"{what} has {len(value)} bytes, the profile has {size}")
    return value


def verify_enveloped(root: etree._Element, certificate: x509.Certificate) -> None:
    """Verify the document's enveloped signature with ``certificate``'s key.

    Removes the Signature from the tree (the caller parsed it for this call; what remains is
    exactly what was digested), so no copy of a large document is made.
    """
    signer = _xml_signer(certificate)
    signatures = list(root.iter(_SIGNATURE))
    if not signatures:
        raise SignatureRefused("the document carries no ds:Signature")
    if len(signatures) != 1 or signatures[0] is not root[-1]:
        raise SignatureRefused("exactly one ds:Signature, the root's last child, is expected")
    sig = signatures[0]
    # each element's children in one pass; the checks and their order are the profile's
    signed_info, value_el, key_info = _ones(
        sig, "ds:Signature", "SignedInfo", "SignatureValue", "KeyInfo"
    )
    c14n_el, method_el, ref = _ones(
        signed_info, "ds:SignedInfo", "CanonicalizationMethod", "SignatureMethod", "Reference"
    )
    _algorithm(c14n_el, EXC_C14N, "CanonicalizationMethod")
    if len(c14n_el):
        raise SignatureRefused("CanonicalizationMethod carries parameters the profile has not")
    _algorithm(method_el, ECDSA_SHA256, "SignatureMethod")
    if ref.get("URI") != "":
        raise SignatureRefused('the Reference must sign the whole document (URI="")')
    transforms, digest_method, digest_el = _ones(
        ref, "ds:Reference", "Transforms", "DigestMethod", "DigestValue"
    )
    if len(transforms) != 1:
        raise SignatureRefused("the Reference must have exactly one Transform")
    _algorithm(_one(transforms, "Transform", "ds:Transforms"), ENVELOPED, "Transform")
    _algorithm(digest_method, SHA256, "DigestMethod")
    digest = _b64(digest_el, "DigestValue", 32)
    raw = _b64(value_el, "SignatureValue", 64)
    issuer_serial = _one(_one(key_info, "X509Data", "ds:KeyInfo"), "X509IssuerSerial", "X509Data")
    issuer_el, serial_el = _ones(
        issuer_serial, "X509IssuerSerial", "X509IssuerName", "X509SerialNumber"
    )
    issuer_text = (issuer_el.text or "").strip()
    serial_text = (serial_el.text or "").strip()
    if not serial_text.isdigit() or int(serial_text) != signer.serial:
        raise SignatureRefused(
            f"KeyInfo names serial {serial_text[:50]!r}, the XML-signing certificate has "
            f"{signer.serial}"
        )
    if issuer_text != signer.issuer_text and not _same_name(issuer_text, signer.issuer):
        raise SignatureRefused(
            f"KeyInfo names issuer {issuer_text[:80]!r}, the XML-signing certificate's is "
            f"{signer.issuer_text!r}"
        )
    # canonical SignedInfo first, while the Signature is still in place
    signed_info_c14n = etree.tostring(
        signed_info, method="c14n", exclusive=True, with_comments=False
    )
    # the enveloped-signature transform: the Signature element goes, the text after it stays
    tail = sig.tail
    before = sig.getprevious()
    root.remove(sig)
    if tail:
        if before is not None:
            before.tail = (before.tail or "") + tail
        else:
            root.text = (root.text or "") + tail
    document_c14n = etree.tostring(
        root.getroottree(), method="c14n", exclusive=False, with_comments=False
    )
    if hashlib.sha256(document_c14n).digest() != digest:
        raise SignatureRefused("the document's digest is not the DigestValue signed")
    der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    try:
        signer.key.verify(der, signed_info_c14n, _ECDSA_SHA256)
    except InvalidSignature:
        raise SignatureRefused(
            "the SignatureValue does not verify with the XML-signing certificate's key"
        ) from None


def _same_name(text: str, issuer: x509.Name) -> bool:
    try:
        return x509.Name.from_rfc4514_string(text) == issuer
    except ValueError:
        return False


def child(parent: etree._Element, local: str) -> etree._Element | None:
    """The one ``sr:`` child ``local`` of ``parent`` (None if absent or repeated)."""
    found = [c for c in parent if c.tag == SR + local]
    return found[0] if len(found) == 1 else None


def children(parent: etree._Element, *locals_: str) -> list[etree._Element | None]:
    """``child(parent, local)`` for each of ``locals_``, in that order, from one pass."""
    wanted: dict[object, int] = {SR + local: i for i, local in enumerate(locals_)}
    found: list[list[etree._Element]] = [[] for _ in locals_]
    for c in parent:
        i = wanted.get(c.tag)
        if i is not None:
            found[i].append(c)
    return [els[0] if len(els) == 1 else None for els in found]
