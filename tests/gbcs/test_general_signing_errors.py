"""Characterisation: the exact error of every malformed General-Signing header, per parser.

CS06 pre-commands and 6.24.1 responses read the same header (transaction id, system titles,
date-time, message code, content length) but report some errors differently: a wrong-sized
field with a long-form length points at its first length byte in a pre-command and at its
last one in a response, and a response checks its CRA flag and message code as it reads them.
The expectations below were taken from the parsers before they shared one header reader, so
any change to a message, field or offset fails here.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from signer.errors import FormatError
from signer.gbcs.precommand import parse_pre_command, parse_signed_command
from signer.gbcs.trust_anchor import parse_security_credentials_response

SUPPLIER = bytes.fromhex("90B3D51F30010000")
DEVICE = bytes.fromhex("00DB1234567890A0")
DCC = bytes.fromhex("90B3D51F30000002")

Outcome = tuple[str, str | None, int | None] | None
Pinned = tuple[str, int] | None
Fields = dict[str, bytes]


def short(value: bytes) -> bytes:
    return bytes([len(value)]) + value


def pre_command_fields() -> Fields:
    content = short(
        b"\x04\x20" + bytes(range(32)) + b"\x02\x02\x03\xe8" + b"\x18\x0f20300115090000Z"
    )
    return {
        "transaction-id": short(b"\x01" + (1000).to_bytes(8, "big")),
        "originator": short(SUPPLIER),
        "recipient": short(DEVICE),
        "date-time": b"\x00",
        "message-code": short(b"\x00\x12"),
        "content": short(b"\x30" + content),
    }


def response_fields() -> Fields:
    cell = b"\x30" + short(b"\x03\x02\x07\x80" + b"\x04\x08" + SUPPLIER + b"\x04\x08" + b"S" * 8)
    role = b"\x30" + short(b"\x02\x01\x02\x0a\x01\x00\x02\x01\x05" + b"\x30" + short(cell))
    return {
        "transaction-id": short(b"\x02" + (7).to_bytes(8, "big")),
        "originator": short(DEVICE),
        "recipient": short(DCC),
        "date-time": b"\x00",
        "message-code": short(b"\x00\x08"),
        "content": short(b"\x30" + short(role)),
        "signature": b"\x00",
    }


def build(fields: Fields, **replaced: bytes) -> bytes:
    merged = {**fields, **{name.replace("_", "-"): value for name, value in replaced.items()}}
    return b"\xdf" + b"".join(merged.values())


def before(fields: Fields, name: str) -> bytes:
    """The APDU cut just before ``name``."""
    names = list(fields)
    return b"\xdf" + b"".join(fields[n] for n in names[: names.index(name)])


def header_cases(fields: Fields) -> dict[str, bytes]:
    """Truncations, bad tags and bad lengths at every header field."""
    cases = {"empty": b"", "tag-only": b"\xdf", "bad-tag": b"\xde" + build(fields)[1:]}
    for name in ("transaction-id", "originator", "recipient", "date-time", "message-code"):
        value = fields[name][1:] or bytes(12)
        head = before(fields, name)
        cases[f"{name}:missing"] = head
        cases[f"{name}:cut"] = head + short(value)[: 1 + len(value) // 2]
        cases[f"{name}:long-form"] = build(fields, **{name: b"\x81" + short(value)})
        cases[f"{name}:padded-long-form"] = build(fields, **{name: b"\x82\x00" + short(value)})
        cases[f"{name}:too-long"] = build(fields, **{name: short(value + b"\x00")})
        cases[f"{name}:too-short"] = build(fields, **{name: short(value[:-1])})
        cases[f"{name}:long-form-too-long"] = build(
            fields, **{name: b"\x81" + short(value + b"\0")}
        )
        cases[f"{name}:long-form-too-short"] = build(
            fields, **{name: b"\x82\x00" + short(value[1:])}
        )
        cases[f"{name}:indefinite"] = head + b"\x80" + value
        cases[f"{name}:five-byte-length"] = head + b"\x85\x00\x00\x00\x00" + short(value)
        cases[f"{name}:length-cut"] = head + b"\x82\x00"
        cases[f"{name}:overrun"] = head + b"\x7f" + value
        cases[f"{name}:long-overrun"] = head + b"\x82\x01\x00" + value
    content = fields["content"]
    cases["content:missing"] = before(fields, "content")
    cases["content:overrun"] = build(fields, content=bytes([content[0] + 1]) + content[1:])
    cases["content:short"] = build(fields, content=bytes([content[0] - 1]) + content[1:])
    cases["content:long-form"] = build(fields, content=b"\x81" + content)
    cases["content:indefinite"] = before(fields, "content") + b"\x80" + content[1:]
    for cra in (0x00, 0x01, 0x02, 0x03):
        tid = fields["transaction-id"]
        cases[f"cra:{cra:02X}"] = build(fields, transaction_id=tid[:1] + bytes([cra]) + tid[2:])
        cut = before(fields, "originator")
        cases[f"cra:{cra:02X}:then-cut"] = cut[:2] + bytes([cra]) + cut[3:]
        cases[f"cra:{cra:02X}:too-short"] = build(fields, transaction_id=short(bytes([cra, 0])))
    for code in (0x0008, 0x0012, 0x011B, 0xFFFF):
        message_code = short(code.to_bytes(2, "big"))
        cases[f"code:{code:04X}"] = build(fields, message_code=message_code)
        cut = before(fields, "content") + fields["content"][:1]
        cases[f"code:{code:04X}:then-cut"] = cut[:-4] + message_code + cut[-1:]
    return cases


def envelope(apdu: bytes) -> bytes:
    """A MAC-only General-Ciphering envelope around ``apdu`` (an all-zero MAC)."""
    ciphered = b"\x11" + bytes(4) + apdu + bytes(12)
    return b"\xdd" + bytes(6) + b"\x81" + bytes([len(ciphered)]) + ciphered


def enveloped_cases() -> dict[str, bytes]:
    """The header inside an envelope ends before the MAC, not at the end of the data."""
    fields = response_fields()
    cut = response_fields()
    del cut["signature"]
    content = fields["content"]
    return {
        "enveloped": envelope(build(fields)),
        "enveloped:no-signature-field": envelope(build(cut)),
        "enveloped:content-overrun": envelope(
            build(fields, content=bytes([content[0] + 12]) + content[1:])
        ),
        "enveloped:long-form-too-short": envelope(
            build(fields, originator=b"\x81" + short(DEVICE[1:]))
        ),
        "enveloped:header-only": envelope(before(fields, "date-time")),
    }


def outcome(parse: Callable[[bytes], object], data: bytes) -> Outcome:
    try:
        parse(data)
    except FormatError as exc:
        return exc.message, exc.field, exc.offset
    return None


def signed(data: bytes) -> object:
    return parse_signed_command(data + b"\x40" + bytes(64))


PRE_COMMAND_CASES = header_cases(pre_command_fields())
SIGNED_COMMAND_CASES = {
    name: PRE_COMMAND_CASES[name]
    for name in (
        "transaction-id:long-form-too-long",
        "originator:too-short",
        "message-code:overrun",
        "content:short",
    )
}
RESPONSE_CASES = header_cases(response_fields()) | enveloped_cases()

# What each parser reported for each case before the header reader was shared: (message,
# offset), or None for a payload that parses. Most cases fail alike in both parsers.
SAME: dict[str, Pinned] = {
    "code:0008": None,
    "code:011B": None,
    "content:indefinite": ("content: indefinite length is not allowed", 33),
    "content:long-form": None,
    "content:missing": ("content: length missing, data ends", 33),
    "cra:00:too-short": ("transaction-id is 2 bytes, expected 9 (CRA flag + counter)", 1),
    "cra:01:too-short": ("transaction-id is 2 bytes, expected 9 (CRA flag + counter)", 1),
    "cra:02": None,
    "cra:02:then-cut": ("originator-system-title: length missing, data ends", 11),
    "cra:02:too-short": ("transaction-id is 2 bytes, expected 9 (CRA flag + counter)", 1),
    "cra:03:too-short": ("transaction-id is 2 bytes, expected 9 (CRA flag + counter)", 1),
    "date-time:cut": ("date-time: 12 bytes announced, 6 left", 29),
    "date-time:five-byte-length": ("date-time: length uses 5 bytes, at most 4 supported", 29),
    "date-time:indefinite": ("date-time: indefinite length is not allowed", 29),
    "date-time:length-cut": ("date-time: length truncated", 29),
    "date-time:long-form": None,
    "date-time:long-overrun": ("date-time: 256 bytes announced, 12 left", 29),
    "date-time:missing": ("date-time: length missing, data ends", 29),
    "date-time:overrun": ("date-time: 127 bytes announced, 12 left", 29),
    "date-time:padded-long-form": None,
    "date-time:too-long": ("date-time is 13 bytes, expected 0 or 12", 29),
    "date-time:too-short": ("date-time is 11 bytes, expected 0 or 12", 29),
    "message-code:cut": ("other-information: 2 bytes announced, 1 left", 30),
    "message-code:five-byte-length": (
        "other-information: length uses 5 bytes, at most 4 supported",
        30,
    ),
    "message-code:indefinite": ("other-information: indefinite length is not allowed", 30),
    "message-code:length-cut": ("other-information: length truncated", 30),
    "message-code:long-form": None,
    "message-code:long-overrun": ("other-information: 256 bytes announced, 2 left", 30),
    "message-code:missing": ("other-information: length missing, data ends", 30),
    "message-code:overrun": ("other-information: 127 bytes announced, 2 left", 30),
    "message-code:padded-long-form": None,
    "message-code:too-long": ("other-information is 3 bytes, expected a 2-byte message code", 30),
    "message-code:too-short": ("other-information is 1 bytes, expected a 2-byte message code", 30),
    "originator:cut": ("originator-system-title: 8 bytes announced, 4 left", 11),
    "originator:five-byte-length": (
        "originator-system-title: length uses 5 bytes, at most 4 supported",
        11,
    ),
    "originator:indefinite": ("originator-system-title: indefinite length is not allowed", 11),
    "originator:length-cut": ("originator-system-title: length truncated", 11),
    "originator:long-form": None,
    "originator:long-overrun": ("originator-system-title: 256 bytes announced, 8 left", 11),
    "originator:missing": ("originator-system-title: length missing, data ends", 11),
    "originator:overrun": ("originator-system-title: 127 bytes announced, 8 left", 11),
    "originator:padded-long-form": None,
    "originator:too-long": ("originator-system-title is 9 bytes, expected an 8-byte EUI-64", 11),
    "originator:too-short": ("originator-system-title is 7 bytes, expected an 8-byte EUI-64", 11),
    "recipient:cut": ("recipient-system-title: 8 bytes announced, 4 left", 20),
    "recipient:five-byte-length": (
        "recipient-system-title: length uses 5 bytes, at most 4 supported",
        20,
    ),
    "recipient:indefinite": ("recipient-system-title: indefinite length is not allowed", 20),
    "recipient:length-cut": ("recipient-system-title: length truncated", 20),
    "recipient:long-form": None,
    "recipient:long-overrun": ("recipient-system-title: 256 bytes announced, 8 left", 20),
    "recipient:missing": ("recipient-system-title: length missing, data ends", 20),
    "recipient:overrun": ("recipient-system-title: 127 bytes announced, 8 left", 20),
    "recipient:padded-long-form": None,
    "recipient:too-long": ("recipient-system-title is 9 bytes, expected an 8-byte EUI-64", 20),
    "recipient:too-short": ("recipient-system-title is 7 bytes, expected an 8-byte EUI-64", 20),
    "tag-only": ("transaction-id: length missing, data ends", 1),
    "transaction-id:cut": ("transaction-id: 9 bytes announced, 4 left", 1),
    "transaction-id:five-byte-length": (
        "transaction-id: length uses 5 bytes, at most 4 supported",
        1,
    ),
    "transaction-id:indefinite": ("transaction-id: indefinite length is not allowed", 1),
    "transaction-id:length-cut": ("transaction-id: length truncated", 1),
    "transaction-id:long-form": None,
    "transaction-id:long-overrun": ("transaction-id: 256 bytes announced, 9 left", 1),
    "transaction-id:missing": ("transaction-id: length missing, data ends", 1),
    "transaction-id:overrun": ("transaction-id: 127 bytes announced, 9 left", 1),
    "transaction-id:padded-long-form": None,
    "transaction-id:too-long": ("transaction-id is 10 bytes, expected 9 (CRA flag + counter)", 1),
    "transaction-id:too-short": ("transaction-id is 8 bytes, expected 9 (CRA flag + counter)", 1),
}
PRE_COMMAND_ONLY: dict[str, Pinned] = {
    "bad-tag": ("first byte 0xDE is not 0xDF (General-Signing APDU)", 0),
    "code:0008:then-cut": ("content: 57 bytes announced, 0 left", 33),
    "code:0012": None,
    "code:0012:then-cut": ("content: 57 bytes announced, 0 left", 33),
    "code:011B:then-cut": ("content: 57 bytes announced, 0 left", 33),
    "code:FFFF": None,
    "code:FFFF:then-cut": ("content: 57 bytes announced, 0 left", 33),
    "content:overrun": ("content: 58 bytes announced, 57 left", 33),
    "content:short": (
        "CS06 content: SEQUENCE of 55 bytes overruns its container (54 bytes left)",
        34,
    ),
    "cra:00": None,
    "cra:00:then-cut": ("originator-system-title: length missing, data ends", 11),
    "cra:01": None,
    "cra:01:then-cut": ("originator-system-title: length missing, data ends", 11),
    "cra:03": None,
    "cra:03:then-cut": ("originator-system-title: length missing, data ends", 11),
    "date-time:long-form-too-long": ("date-time is 13 bytes, expected 0 or 12", 29),
    "date-time:long-form-too-short": ("date-time is 11 bytes, expected 0 or 12", 29),
    "empty": ("pre-command is empty", 0),
    "message-code:long-form-too-long": (
        "other-information is 3 bytes, expected a 2-byte message code",
        30,
    ),
    "message-code:long-form-too-short": (
        "other-information is 1 bytes, expected a 2-byte message code",
        30,
    ),
    "originator:long-form-too-long": (
        "originator-system-title is 9 bytes, expected an 8-byte EUI-64",
        11,
    ),
    "originator:long-form-too-short": (
        "originator-system-title is 7 bytes, expected an 8-byte EUI-64",
        11,
    ),
    "recipient:long-form-too-long": (
        "recipient-system-title is 9 bytes, expected an 8-byte EUI-64",
        20,
    ),
    "recipient:long-form-too-short": (
        "recipient-system-title is 7 bytes, expected an 8-byte EUI-64",
        20,
    ),
    "transaction-id:long-form-too-long": (
        "transaction-id is 10 bytes, expected 9 (CRA flag + counter)",
        1,
    ),
    "transaction-id:long-form-too-short": (
        "transaction-id is 8 bytes, expected 9 (CRA flag + counter)",
        1,
    ),
}
RESPONSE_ONLY: dict[str, Pinned] = {
    "bad-tag": (
        "first byte 0xDE is neither 0xDD (General-Ciphering) nor 0xDF (General-Signing)",
        0,
    ),
    "code:0008:then-cut": ("content: 41 bytes announced, 0 left", 33),
    "code:0012": (
        "message code 0x0012 is not a 6.24.1 response (0x0008 (CS02a), 0x011B (CS02f))",
        31,
    ),
    "code:0012:then-cut": (
        "message code 0x0012 is not a 6.24.1 response (0x0008 (CS02a), 0x011B (CS02f))",
        31,
    ),
    "code:011B:then-cut": ("content: 41 bytes announced, 0 left", 33),
    "code:FFFF": (
        "message code 0xFFFF is not a 6.24.1 response (0x0008 (CS02a), 0x011B (CS02f))",
        31,
    ),
    "code:FFFF:then-cut": (
        "message code 0xFFFF is not a 6.24.1 response (0x0008 (CS02a), 0x011B (CS02f))",
        31,
    ),
    "content:overrun": ("General-Signing truncated before its signature field", 76),
    "content:short": ("signature field starts 0x53, expected 0x00 (none) or 0x40 + 64 bytes", 74),
    "cra:00": ("CRA flag 0x00 (unknown); a security credentials response has 0x02", 2),
    "cra:00:then-cut": ("CRA flag 0x00 (unknown); a security credentials response has 0x02", 2),
    "cra:01": ("CRA flag 0x01 (command); a security credentials response has 0x02", 2),
    "cra:01:then-cut": ("CRA flag 0x01 (command); a security credentials response has 0x02", 2),
    "cra:03": ("CRA flag 0x03 (alert); a security credentials response has 0x02", 2),
    "cra:03:then-cut": ("CRA flag 0x03 (alert); a security credentials response has 0x02", 2),
    "date-time:long-form-too-long": ("date-time is 13 bytes, expected 0 or 12", 30),
    "date-time:long-form-too-short": ("date-time is 11 bytes, expected 0 or 12", 31),
    "empty": ("payload is empty", 0),
    "enveloped": None,
    "enveloped:content-overrun": ("content: 53 bytes announced, 42 left", 47),
    "enveloped:header-only": ("date-time: length missing, data ends", 43),
    "enveloped:long-form-too-short": (
        "originator-system-title is 7 bytes, expected an 8-byte EUI-64",
        26,
    ),
    "enveloped:no-signature-field": ("General-Signing truncated before its signature field", 89),
    "message-code:long-form-too-long": (
        "other-information is 3 bytes, expected a 2-byte message code",
        31,
    ),
    "message-code:long-form-too-short": (
        "other-information is 1 bytes, expected a 2-byte message code",
        32,
    ),
    "originator:long-form-too-long": (
        "originator-system-title is 9 bytes, expected an 8-byte EUI-64",
        12,
    ),
    "originator:long-form-too-short": (
        "originator-system-title is 7 bytes, expected an 8-byte EUI-64",
        13,
    ),
    "recipient:long-form-too-long": (
        "recipient-system-title is 9 bytes, expected an 8-byte EUI-64",
        21,
    ),
    "recipient:long-form-too-short": (
        "recipient-system-title is 7 bytes, expected an 8-byte EUI-64",
        22,
    ),
    "transaction-id:long-form-too-long": (
        "transaction-id is 10 bytes, expected 9 (CRA flag + counter)",
        2,
    ),
    "transaction-id:long-form-too-short": (
        "transaction-id is 8 bytes, expected 9 (CRA flag + counter)",
        3,
    ),
}
SIGNED_COMMAND_PINNED: dict[str, Pinned] = {
    "content:short": (
        "CS06 content: SEQUENCE of 55 bytes overruns its container (54 bytes left)",
        34,
    ),
    "message-code:overrun": ("other-information: 127 bytes announced, 67 left", 30),
    "originator:too-short": ("originator-system-title is 7 bytes, expected an 8-byte EUI-64", 11),
    "transaction-id:long-form-too-long": (
        "transaction-id is 10 bytes, expected 9 (CRA flag + counter)",
        1,
    ),
}


def with_field(pinned: dict[str, Pinned], field: str) -> dict[str, Outcome]:
    return {name: None if p is None else (p[0], field, p[1]) for name, p in pinned.items()}


PRE_COMMAND = with_field(SAME | PRE_COMMAND_ONLY, "pre_command")
RESPONSE = with_field(SAME | RESPONSE_ONLY, "gbcs_payload")


def test_every_case_is_pinned() -> None:
    assert set(PRE_COMMAND) == set(PRE_COMMAND_CASES)
    assert set(SIGNED_COMMAND_PINNED) == set(SIGNED_COMMAND_CASES)
    assert set(RESPONSE) == set(RESPONSE_CASES)


@pytest.mark.parametrize("name", sorted(PRE_COMMAND_CASES))
def test_pre_command_header_errors(name: str) -> None:
    assert outcome(parse_pre_command, PRE_COMMAND_CASES[name]) == PRE_COMMAND[name]


@pytest.mark.parametrize("name", sorted(SIGNED_COMMAND_CASES))
def test_signed_command_header_errors(name: str) -> None:
    expected = with_field(SIGNED_COMMAND_PINNED, "signed_command")[name]
    assert outcome(signed, SIGNED_COMMAND_CASES[name]) == expected


@pytest.mark.parametrize("name", sorted(RESPONSE_CASES))
def test_security_credentials_response_header_errors(name: str) -> None:
    assert outcome(parse_security_credentials_response, RESPONSE_CASES[name]) == RESPONSE[name]
