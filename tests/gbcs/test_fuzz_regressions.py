"""Inputs the properties and fuzz/ found escaping the GBCS parsers as something other than a
FormatError, each now refused by name. Built from the published vectors at test time."""

from __future__ import annotations

import pytest

from signer.errors import FormatError
from signer.gbcs.precommand import parse_pre_command
from signer.gbcs.signature import der_to_raw
from signer.gbcs.trust_anchor import parse_security_credentials_response
from tests.support.vectors import vector_text

HEADER = "DF 81 09 02 0000000000000000 81 08 90B3D51F30010000 08 00DB1234567890A0 81 00 81 02 0008"


def huge_integer() -> bytes:
    """An INTEGER of 1800 bytes: 4335 decimal digits, past CPython's int-to-str limit."""
    return bytes.fromhex("02 82 07 08") + b"\x7f" * 1800


def test_huge_remote_party_role_is_a_format_error() -> None:
    """Used to escape as ValueError (Exceeds the limit (4300 digits)) from the role message."""
    role = huge_integer() + bytes.fromhex("0A 81 01 00 02 81 00 30 00")
    role = bytes.fromhex("30 82") + len(role).to_bytes(2, "big") + role
    content = bytes.fromhex("30 82") + len(role).to_bytes(2, "big") + role
    data = (
        bytes.fromhex(HEADER)
        + bytes.fromhex("82")
        + len(content).to_bytes(2, "big")
        + content
        + b"\x00"
    )
    with pytest.raises(FormatError, match="remotePartyRole: INTEGER of 14399 bits") as exc:
        parse_security_credentials_response(data)
    assert len(str(exc.value)) < 120


def test_huge_pre_command_counter_is_a_format_error() -> None:
    """A counter of 1800 bytes used to parse, and then broke every message that printed it."""
    vector = bytes.fromhex(
        vector_text("gbcs", "CS06_11.3_IMMEDIATE_SUCCESS_PRECOMMAND_GBCS.HEX").strip()
    )
    counter_at = vector.index(bytes.fromhex("0202 03E8"))  # INTEGER 1000 after the hash
    hash_tlv = vector[counter_at - 34 : counter_at]
    seq = hash_tlv + huge_integer()
    content = bytes.fromhex("30 82") + len(seq).to_bytes(2, "big") + seq
    header_end = counter_at - 34 - 2 - 1  # the content length byte, the SEQUENCE tag and length
    data = vector[:header_end] + b"\x82" + len(content).to_bytes(2, "big") + content
    with pytest.raises(FormatError, match="counter: INTEGER of 14399 bits") as exc:
        parse_pre_command(data)
    assert len(str(exc.value)) < 120


def test_signature_integers_keep_their_own_limit() -> None:
    """r and s may have 257 bits of padding-free value before the P-256 check speaks."""
    r = b"\x00" + b"\xff" * 32
    der = bytes.fromhex("30 46 02 21") + r + bytes.fromhex("02 21") + r
    assert der_to_raw(der) == b"\xff" * 64
    big = bytes.fromhex("30 82 0E 18 02 82 07 08") + b"\x7f" * 1800
    big += bytes.fromhex("02 82 07 08") + b"\x7f" * 1800
    with pytest.raises(FormatError, match="signature r: INTEGER of 14399 bits"):
        der_to_raw(big)
