"""SR 11.3 Activate Firmware: the request, the DCC's pre-command, the signed pre-command.

The signed pre-command goes back with the 11.3 request's own RequestID, so this is the one
place a RequestID counter is legitimately sent twice. Pure code: schema validation and
signing are the caller's. See docs/duis.md (the exchange, with schema line numbers).
"""

from __future__ import annotations

import binascii
import copy
import datetime as dt
from collections.abc import Callable
from typing import Final

from lxml import etree

from signer.duis.request import SR_NS, RequestId, request_template
from signer.duis.response import payload_bytes, response_message
from signer.duis.xmlparse import parse_xml
from signer.errors import InvalidInput, excerpt
from signer.gbcs.precommand import (
    DUIS_CANCEL_EXECUTION_TIME,
    FIRMWARE_HASH_LENGTH,
    MESSAGE_CODE_CS06,
    SIGNATURE_LENGTH,
    SIGNATURE_PRESENT,
    ExpectedActivation,
    PreCommand,
    parse_signed_command,
)

ACTIVATE_FIRMWARE_SERVICE: Final = "11.3"
#: SR -> pre-command (Transform), Critical.
COMMAND_VARIANT_PRE_COMMAND: Final = 4
#: Signed pre-command -> command over the SM WAN (5), for local delivery (6), or both (7).
SIGNED_PRE_COMMAND_VARIANTS: Final = frozenset({5, 6, 7})
DEFAULT_SIGNED_PRE_COMMAND_VARIANT: Final = 5
#: The DUIS form of a cancellation, exactly as the CANCELLATION template writes it.
CANCEL_EXECUTION_DATE_TIME: Final = "3000-12-31T00:00:00.00Z"

_FIELD_RESPONSE: Final = "duis_response"


def _sr(local: str) -> str:
    return f"{{{SR_NS}}}{local}"


def _template(command_variant: str, body: str, leaves: tuple[str, ...]) -> etree._Element:
    """One request shape, built once; each call copies it and fills its texts by position.

    The shape comes from ``request_template``, the same code that ``request_root`` uses, and
    the leaves are appended in document order, so a copy filled in serialises exactly as a
    request built element by element. Never returned itself (callers mutate what they get)
    and only ever copied, so worker threads may share it. Copied with ``copy.copy``: lxml's
    shallow copy is the same deep copy of the subtree into a new document that
    ``copy.deepcopy`` makes, without the memo around it (measured: 2.2 against 3.9 us).
    """
    root = request_template(
        command_variant=command_variant,
        service_reference=ACTIVATE_FIRMWARE_SERVICE,
        service_reference_variant=ACTIVATE_FIRMWARE_SERVICE,
    )
    op = etree.SubElement(etree.SubElement(root, _sr("Body")), _sr(body))
    for leaf in leaves:
        etree.SubElement(op, _sr(leaf))
    return root


# The shapes of the per-device requests (see _template).
_ACTIVATE_IMMEDIATE: Final = _template(
    str(COMMAND_VARIANT_PRE_COMMAND), "ActivateFirmware", ("FirmwareHash",)
)
_ACTIVATE_DATED: Final = _template(
    str(COMMAND_VARIANT_PRE_COMMAND), "ActivateFirmware", ("ExecutionDateTime", "FirmwareHash")
)
_SIGNED_PRE_COMMAND: Final = {
    v: _template(str(v), "SignedPreCommand", ("GBCSPayload",))
    for v in sorted(SIGNED_PRE_COMMAND_VARIANTS)
}


def build_activate_firmware(
    *,
    request_id: RequestId,
    firmware_hash: bytes,
    execution_time: dt.datetime | None = None,
    cancel: bool = False,
) -> etree._Element:
    """The unsigned SR 11.3 request: immediate, future-dated, or a cancellation.

    ``execution_time`` must be timezone-aware and whole seconds (the GBCS content carries
    GeneralizedTime to the second); it is written in UTC as the templates do
    (``2030-01-15T09:00:00.00Z``). That it lies in the future is the caller's check: this
    module has no clock.
    """
    build = activate_firmware_builder(
        firmware_hash=firmware_hash, execution_time=execution_time, cancel=cancel
    )
    return build(request_id)


def activate_firmware_builder(
    *,
    firmware_hash: bytes,
    execution_time: dt.datetime | None = None,
    cancel: bool = False,
) -> Callable[[RequestId], etree._Element]:
    """``build_activate_firmware`` for a campaign: what all its requests share is checked
    and written out once, and the function returned builds the request of one RequestID
    (a template copy and its texts; the same tree ``build_activate_firmware`` returns)."""
    if len(firmware_hash) != FIRMWARE_HASH_LENGTH:
        raise InvalidInput(
            f"FirmwareHash is SHA-256 of the Manufacturer Image (32 bytes), got "
            f"{len(firmware_hash)}",
            field="firmware_hash",
        )
    if cancel and execution_time is not None:
        raise InvalidInput(
            "a cancellation carries no execution time of its own", field="execution_time"
        )
    text = CANCEL_EXECUTION_DATE_TIME if cancel else _execution_text(execution_time)
    hash_text = firmware_hash.hex().upper()
    # Header/RequestID is root[0][0], the ActivateFirmware leaves are root[1][0][...].
    if text is None:
        immediate = _ACTIVATE_IMMEDIATE

        def build_immediate(request_id: RequestId) -> etree._Element:
            root = copy.copy(immediate)
            root[0][0].text = str(request_id)
            root[1][0][0].text = hash_text
            return root

        return build_immediate
    dated = _ACTIVATE_DATED

    def build_dated(request_id: RequestId) -> etree._Element:
        root = copy.copy(dated)
        root[0][0].text = str(request_id)
        op = root[1][0]
        op[0].text = text
        op[1].text = hash_text
        return root

    return build_dated


def expected_activation(
    *,
    request_id: RequestId,
    firmware_hash: bytes,
    execution_time: dt.datetime | None = None,
    cancel: bool = False,
) -> ExpectedActivation:
    """What the CS06 pre-command answering ``build_activate_firmware(same args)`` must carry."""
    return ExpectedActivation(
        originator=request_id.originator,
        recipient=request_id.target,
        firmware_hash=firmware_hash,
        counter=request_id.counter,
        execution_time=None if cancel else execution_time,
        cancel=cancel,
    )


def build_signed_pre_command(
    *,
    request_id: RequestId,
    signed_command: bytes,
    command_variant: int = DEFAULT_SIGNED_PRE_COMMAND_VARIANT,
    parsed: PreCommand | None = None,
) -> etree._Element:
    """The unsigned DUIS ``SignedPreCommand`` request around a signed CS06 command.

    ``request_id`` is the RequestID of the 11.3 request the pre-command answered. The signed
    command (``APDU || 0x40 || r||s``) must agree with it: originator, recipient (the target)
    and originator counter, and be a CS06 command; otherwise nothing is built. A caller
    that signed a pre-command it parsed passes that parse as ``parsed``: the command is then
    checked to be exactly its APDU, the signature byte and 64 bytes, instead of parsed again.
    """
    if command_variant not in SIGNED_PRE_COMMAND_VARIANTS:
        raise InvalidInput(
            f"a signed pre-command uses CommandVariant 5, 6 or 7, got {command_variant}",
            field="command_variant",
        )
    if parsed is not None and _is_signed(signed_command, parsed):
        pc = parsed
    else:
        pc, _ = parse_signed_command(signed_command)
    mismatches = []
    if pc.message_code != MESSAGE_CODE_CS06:
        mismatches.append(f"message code 0x{pc.message_code:04X} is not CS06 (0x0012)")
    if pc.originator != request_id.originator:
        mismatches.append(f"originator {pc.originator} is not {request_id.originator}")
    if pc.recipient != request_id.target:
        mismatches.append(f"recipient {pc.recipient} is not the target {request_id.target}")
    if pc.originator_counter != request_id.counter:
        mismatches.append(
            f"originator counter {pc.originator_counter} is not the RequestID counter "
            f"{request_id.counter}"
        )
    if mismatches:
        raise InvalidInput(
            f"signed command does not belong to request {request_id}: " + "; ".join(mismatches),
            field="signed_command",
        )
    root = copy.copy(_SIGNED_PRE_COMMAND[command_variant])
    root[0][0].text = str(request_id)
    root[1][0][0].text = binascii.b2a_base64(signed_command, newline=False).decode("ascii")
    return root


def _is_signed(signed_command: bytes, pc: PreCommand) -> bool:
    """``signed_command`` is ``pc.apdu || 0x40 || r||s``: what parsing it would find."""
    n = len(pc.apdu)
    return (
        len(signed_command) == n + 1 + SIGNATURE_LENGTH
        and signed_command[n] == SIGNATURE_PRESENT
        and signed_command.startswith(pc.apdu)
    )


def extract_pre_command(xml: bytes) -> tuple[RequestId | None, bytes]:
    """The CS06 pre-command of a DCC 11.3 response and the RequestID it answers.

    Parsed with the safe parser; the DCC's XML signature is the caller's to verify first
    (``verify_document``), then ``pre_command_of(verified.root)`` avoids a second parse.
    """
    return pre_command_of(parse_xml(xml, field=_FIELD_RESPONSE))


def pre_command_of(root: etree._Element) -> tuple[RequestId | None, bytes]:
    """As ``extract_pre_command``, for a document already parsed."""
    message = response_message(root, field=_FIELD_RESPONSE)
    for name in ("ServiceReference", "ServiceReferenceVariant"):
        value = (message.findtext(_sr(name)) or "").strip()
        if value != ACTIVATE_FIRMWARE_SERVICE:
            raise InvalidInput(
                f"sr:{name} is {excerpt(value) if value else 'missing'}, expected "
                f"{ACTIVATE_FIRMWARE_SERVICE} (Activate Firmware)",
                field=_FIELD_RESPONSE,
            )
    pre_commands = message.findall(_sr("PreCommand"))
    if len(pre_commands) != 1:
        raise InvalidInput(
            f"sr:ResponseMessage carries {len(pre_commands)} sr:PreCommand elements, expected one",
            field=_FIELD_RESPONSE,
        )
    payloads = pre_commands[0].findall(_sr("GBCSPayload"))
    if len(payloads) != 1:
        raise InvalidInput(
            f"sr:PreCommand carries {len(payloads)} sr:GBCSPayload elements, expected one",
            field=_FIELD_RESPONSE,
        )
    payload = payload_bytes(payloads[0], name="sr:PreCommand/sr:GBCSPayload", field=_FIELD_RESPONSE)
    request_text = root.findtext(f"{_sr('Header')}/{_sr('RequestID')}")
    request_id = (
        RequestId.parse(request_text, field="sr:RequestID") if request_text is not None else None
    )
    return request_id, payload


def _execution_text(value: dt.datetime | None) -> str | None:
    if value is None:
        return None
    if value.utcoffset() is None:
        raise InvalidInput("execution time must be timezone-aware", field="execution_time")
    if value.microsecond:
        raise InvalidInput(
            "execution time must be whole seconds: GBCS carries it to the second",
            field="execution_time",
        )
    utc = value.astimezone(dt.UTC)
    if utc == DUIS_CANCEL_EXECUTION_TIME:
        return CANCEL_EXECUTION_DATE_TIME
    return f"{utc:%Y-%m-%dT%H:%M:%S}.00Z"
