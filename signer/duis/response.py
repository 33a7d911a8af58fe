"""Reading the GBCS payload out of a DUIS response.

DUIS puts the device's GBCS message base64-encoded in ``sr:GBCSPayload``: directly under
``sr:ResponseMessage`` for ordinary responses (e.g. SR 6.24.1), inside ``sr:PreCommand`` for
the pre-command of a critical request (SR 11.3). Exactly one payload per response is accepted,
so a caller never acts on the wrong one. The MMC ``ra:GBCSResponse`` shape carries the device's
answer already translated into XML, not a payload, and is refused here with that explanation.
"""

from __future__ import annotations

import base64
import binascii
import re

from lxml import etree

from signer.duis.request import RA_NS, SR_NS
from signer.duis.xmlparse import parse_xml
from signer.errors import FormatError, InvalidInput

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
    if root.tag != f"{{{SR_NS}}}Response":
        raise InvalidInput(f"root element is {root.tag}, expected sr:Response", field=_FIELD)
    message = root.find(f"{{{SR_NS}}}Body/{{{SR_NS}}}ResponseMessage")
    if message is None:
        raise InvalidInput("response has no sr:Body/sr:ResponseMessage", field=_FIELD)
    payloads = list(message.iter(f"{{{SR_NS}}}GBCSPayload"))
    if not payloads:
        raise InvalidInput("sr:ResponseMessage carries no sr:GBCSPayload", field=_FIELD)
    if len(payloads) > 1:
        raise InvalidInput(
            f"sr:ResponseMessage carries {len(payloads)} sr:GBCSPayload elements, expected one",
            field=_FIELD,
        )
    text = _WS.sub(b"", (payloads[0].text or "").encode("ascii", "replace"))
    if not text:
        raise InvalidInput("sr:GBCSPayload is empty", field=_FIELD)
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise FormatError(f"sr:GBCSPayload is not base64: {exc}", field=_FIELD) from exc
