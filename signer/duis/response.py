"""Reading the GBCS payload out of a DUIS response: exactly one, so a caller never acts on
the wrong one. See docs/duis.md.
"""

from __future__ import annotations

import base64
import binascii
import re

from lxml import etree

from signer.duis.request import RA_NS, SR_NS
from signer.duis.xmlparse import parse_xml
from signer.errors import FormatError, InvalidInput, excerpt

_FIELD = "sr:GBCSPayload"
_WS = re.compile(rb"\s+")


def extract_gbcs_payload(xml: bytes) -> bytes:
    """The decoded GBCS bytes of a DUIS response (signature checking is the caller's)."""
    return gbcs_payload_of(parse_xml(xml, field="duis_response"))


def gbcs_payload_of(root: etree._Element) -> bytes:
    """Same, for a document already parsed (e.g. ``VerifiedSignature.root``)."""
    if root.tag == f"{{{RA_NS}}}GBCSResponse":
        raise InvalidInput(
            "an MMC ra:GBCSResponse carries the device response as XML, not a GBCS payload",
            field=_FIELD,
        )
    message = response_message(root, field=_FIELD)
    payloads = list(message.iter(f"{{{SR_NS}}}GBCSPayload"))
    if not payloads:
        raise InvalidInput("sr:ResponseMessage carries no sr:GBCSPayload", field=_FIELD)
    if len(payloads) > 1:
        raise InvalidInput(
            f"sr:ResponseMessage carries {len(payloads)} sr:GBCSPayload elements, expected one",
            field=_FIELD,
        )
    return payload_bytes(payloads[0], name="sr:GBCSPayload", field=_FIELD)


def response_message(root: etree._Element, *, field: str) -> etree._Element:
    """The ``sr:Body/sr:ResponseMessage`` of an ``sr:Response`` root."""
    if root.tag != f"{{{SR_NS}}}Response":
        raise InvalidInput(
            f"root element is {excerpt(str(root.tag), 80)}, expected sr:Response", field=field
        )
    message = root.find(f"{{{SR_NS}}}Body/{{{SR_NS}}}ResponseMessage")
    if message is None:
        raise InvalidInput("response has no sr:Body/sr:ResponseMessage", field=field)
    return message


def payload_bytes(el: etree._Element, *, name: str, field: str) -> bytes:
    """The bytes of a base64 ``GBCSPayload`` element, whitespace ignored; ``name`` says
    which one in errors."""
    text = _WS.sub(b"", (el.text or "").encode("ascii", "replace"))
    if not text:
        raise InvalidInput(f"{name} is empty", field=field)
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise FormatError(f"{name} is not base64: {exc}", field=field) from exc
