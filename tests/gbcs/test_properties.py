"""Properties of the GBCS parsers: only the project's errors escape, and round trips hold.

Inputs are near-valid (published vectors broken byte by byte, or APDUs built field by field
with hostile values), so the parsers' deep branches are reached, not just the first check.
"""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from signer.errors import FormatError, InvalidInput
from signer.gbcs.delivery import from_combined, from_gbcs, from_separate, parse_hash_text
from signer.gbcs.eui import Eui64
from signer.gbcs.ota import (
    FC_HARDWARE_VERSIONS,
    FC_SECURITY_CREDENTIAL_VERSION,
    FC_UPGRADE_FILE_DESTINATION,
    OtaHeader,
    expected_header_length,
    parse_ota_header,
    parse_upgrade_image,
)
from signer.gbcs.precommand import (
    ExpectedActivation,
    check_pre_command,
    parse_pre_command,
    parse_signed_command,
)
from signer.gbcs.signature import der_to_raw, normalise_ecdsa_signature, raw_to_der
from signer.gbcs.trust_anchor import decode_payload_text, parse_security_credentials_response
from tests.support.strategies import (
    MAX_MESSAGE_CHARS,
    der_signatures,
    eui_texts,
    mutated,
    near_valid,
    only_signer_errors,
    ota_seeds,
    pre_commands,
    precommand_seeds,
    property_settings,
    sampled,
    trust_anchor_payloads,
    trust_anchor_seeds,
)

SETTINGS = property_settings()
#: for the properties whose inputs are big or deeply built: half the examples, same reach
HEAVY = property_settings(80)
EXPECTED = ExpectedActivation(
    originator=Eui64.parse("90-B3-D5-1F-30-01-00-00"),
    recipient=Eui64.parse("00-DB-12-34-56-78-90-A0"),
    firmware_hash=b"\xaa" * 32,
    counter=1000,
    execution_time=dt.datetime(2030, 1, 15, 9, tzinfo=dt.UTC),
)


# -- OTA header and upgrade image -------------------------------------------------------


@HEAVY
@given(near_valid(ota_seeds), st.booleans())
def test_upgrade_image_raises_only_format_errors(data: bytes, with_tail: bool) -> None:
    only_signer_errors(lambda d: parse_upgrade_image(d, with_tail=with_tail), data)
    only_signer_errors(parse_ota_header, data)


@st.composite
def ota_headers(draw: st.DrawFn) -> OtaHeader:
    fc = draw(st.integers(0, 7))
    u16, u32 = st.integers(0, 0xFFFF), st.integers(0, 0xFFFFFFFF)
    hw = sorted((draw(u16), draw(u16))) if fc & FC_HARDWARE_VERSIONS else (None, None)
    return OtaHeader(
        header_version=0x0100,
        header_length=expected_header_length(fc),
        field_control=fc,
        manufacturer_code=draw(u16),
        image_type=draw(u16),
        file_version=draw(u32),
        zigbee_stack_version=draw(u16),
        header_string=draw(st.binary(min_size=32, max_size=32)),
        total_image_size=draw(u32),
        security_credential_version=(
            draw(st.integers(0, 255)) if fc & FC_SECURITY_CREDENTIAL_VERSION else None
        ),
        upgrade_file_destination=(
            draw(st.binary(min_size=8, max_size=8)) if fc & FC_UPGRADE_FILE_DESTINATION else None
        ),
        min_hardware_version=hw[0],
        max_hardware_version=hw[1],
    )


@SETTINGS
@given(ota_headers(), st.binary(max_size=16))
def test_ota_header_round_trip(header: OtaHeader, trailing: bytes) -> None:
    raw = header.to_bytes()
    assert len(raw) == header.header_length
    assert parse_ota_header(raw + trailing) == header


@SETTINGS
@given(mutated(sampled(ota_seeds)))
def test_parsed_header_serialises_to_its_own_bytes(data: bytes) -> None:
    try:
        header = parse_ota_header(data)
    except FormatError:
        return
    assert header.to_bytes() == data[: header.header_length]


# -- the three delivery shapes ----------------------------------------------------------


@HEAVY
@given(near_valid(ota_seeds), st.binary(max_size=80), st.binary(max_size=70))
def test_deliveries_raise_only_signer_errors(data: bytes, signature: bytes, hash: bytes) -> None:
    only_signer_errors(lambda d: from_gbcs(d, hash=hash or None), data)
    cut = len(data) // 3
    only_signer_errors(
        lambda d: from_combined(header_and_image=d, signature=signature, hash=hash), data
    )
    only_signer_errors(
        lambda d: from_separate(
            ota_header=d[:cut], manufacturer_image=d[cut:], signature=signature, hash=hash
        ),
        data,
    )


@SETTINGS
@given(st.one_of(st.binary(max_size=80), st.text(max_size=80)))
def test_hash_text_raises_only_format_errors(value: bytes | str) -> None:
    only_signer_errors(parse_hash_text, value)


# -- signatures -------------------------------------------------------------------------


@SETTINGS
@given(st.one_of(der_signatures(), st.binary(max_size=80)))
def test_signatures_raise_only_format_errors(sig: bytes) -> None:
    only_signer_errors(der_to_raw, sig)
    only_signer_errors(lambda s: normalise_ecdsa_signature(s, field="signature"), sig)


coordinate = st.integers(1, 2**256 - 1)


@SETTINGS
@given(coordinate, coordinate)
def test_raw_der_round_trip(r: int, s: int) -> None:
    raw = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    der = raw_to_der(raw)
    assert der_to_raw(der) == raw
    assert normalise_ecdsa_signature(der, field="signature") == raw


# -- trust anchor responses and pre-commands --------------------------------------------


@HEAVY
@given(st.one_of(near_valid(trust_anchor_seeds), trust_anchor_payloads()))
def test_trust_anchor_responses_raise_only_format_errors(data: bytes) -> None:
    only_signer_errors(parse_security_credentials_response, data)


@SETTINGS
@given(st.one_of(st.text(max_size=120), st.binary(max_size=120)))
def test_payload_text_raises_only_format_errors(text: str | bytes) -> None:
    only_signer_errors(decode_payload_text, text)


@HEAVY
@given(st.one_of(near_valid(precommand_seeds), pre_commands()))
def test_pre_commands_raise_only_format_errors(data: bytes) -> None:
    try:
        pc = parse_pre_command(data)
    except InvalidInput as exc:
        assert len(str(exc)) <= MAX_MESSAGE_CHARS
    else:
        assert all(len(failure) <= MAX_MESSAGE_CHARS for failure in check_pre_command(pc, EXPECTED))
    only_signer_errors(parse_signed_command, data)


# -- EUIs -------------------------------------------------------------------------------


@SETTINGS
@given(eui_texts())
def test_eui_texts_raise_only_invalid_input(text: str) -> None:
    only_signer_errors(Eui64.parse, text)


@SETTINGS
@given(st.binary(min_size=8, max_size=8), st.sampled_from(("-", ":", "")), st.booleans())
def test_eui_round_trip(value: bytes, sep: str, lower: bool) -> None:
    eui = Eui64(value)
    assert Eui64.parse(str(eui)) == eui
    text = value.hex(sep) if sep else value.hex()
    assert Eui64.parse(text if lower else text.upper()) == eui


@pytest.mark.parametrize(
    "text", ["00-DB-12-34-56-78-  -BC", "  -  -  -  -  -  -  -  ", "00-DB-12-34-56-78-9 -BC"]
)
def test_the_dashed_form_with_spaces_for_digits_is_refused(text: str) -> None:
    """23 characters with dashes in place, but spaces where digits go: ``bytes.fromhex``
    skips them, so the fast path must count the bytes (found by review: 7 and 0 bytes)."""
    with pytest.raises(InvalidInput, match="not an EUI-64"):
        Eui64.parse(text)


@SETTINGS
@given(eui_texts())
def test_accepted_eui_texts_are_eight_hex_bytes(text: str) -> None:
    """Whatever is accepted names the same bytes as its hex digits say (no lenient parsing)."""
    try:
        eui = Eui64.parse(text)
    except InvalidInput:
        return
    digits = "".join(c for c in text if c not in "-:").strip()
    assert digits.lower() == eui.value.hex()
