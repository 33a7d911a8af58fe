"""CS06 Activate Firmware pre-commands: the RTDS vectors, checks, signing, malformed input.

Expected values come from the 11.3 templates (RequestID counters 1000..1002, execution times)
and a manual reading of the hex; signatures are checked with `cryptography` directly, never
through the project's own verification code.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, utils

from signer.errors import FormatError, InvalidInput, PolicyRefused
from signer.gbcs.eui import Eui64
from signer.gbcs.precommand import (
    DUIS_CANCEL_EXECUTION_TIME,
    GBCS_CANCEL_EXECUTION_TIME,
    ExpectedActivation,
    PreCommand,
    check_pre_command,
    parse_pre_command,
    parse_signed_command,
    sign_checked_pre_command,
    sign_pre_command,
)
from tests.support.independent import raw_signature_verifies
from tests.support.vectors import vector_bytes, vector_text

SUPPLIER = Eui64.parse("90-B3-D5-1F-30-01-00-00")
DEVICE = Eui64.parse("00-DB-12-34-56-78-90-A0")
HASH = bytes.fromhex("AA758690730934FF0685AA758690730934FF0685657788990011223344556677")
UTC = dt.UTC

# name -> (RequestID counter, execution time as the 11.3 request gave it, cancellation)
CASES: dict[str, tuple[int, dt.datetime | None, bool]] = {
    "IMMEDIATE_SUCCESS": (1000, None, False),
    "FUTURE_DATED_SUCCESS": (1001, dt.datetime(2030, 1, 15, 9, tzinfo=UTC), False),
    "CANCELLATION_SUCCESS": (1002, None, True),
    "FUTURE_DATED_ERROR": (1004, dt.datetime(2030, 1, 1, tzinfo=UTC), False),
    "IMMEDIATE_ERROR": (1005, None, False),
}

# Byte offsets in every CS06 pre-command, from the hex: DF 09 | CRA | counter(8) | 08 orig |
# 08 recip | 00 | 02 code | len | 30 len | 04 20 hash | 02 02 counter | [18 0F time]
CRA_AT = 2
ORIG_COUNTER_AT = 3
ORIGINATOR_AT = 12
RECIPIENT_AT = 21
DATE_TIME_AT = 29
CODE_AT = 31
CONTENT_LENGTH_AT = 33
HASH_AT = 38
COUNTER_AT = 72  # the INTEGER's two value bytes
TIME_AT = 76  # the GeneralizedTime's 15 value bytes

# The RTDS COMMAND is the signed APDU inside a MAC-only General-Ciphering envelope:
# DD, five empty A-XDR fields, key-info 00, 81 len, security control 11, invocation counter (4),
# then APDU || 40 || r||s, then a 12-byte MAC.
ENVELOPE_HEADER = 14
MAC = 12


def hex_vector(name: str) -> bytes:
    return bytes.fromhex(vector_text("gbcs", name).strip())


def pre_command_bytes(case: str) -> bytes:
    return hex_vector(f"CS06_11.3_{case}_PRECOMMAND_GBCS.HEX")


def command_bytes(case: str) -> bytes:
    return hex_vector(f"CS06_11.3_{case}_COMMAND_GBCS.HEX")


def inner_signed_apdu(command: bytes) -> bytes:
    assert command[0] == 0xDD and command[1:7] == bytes(6)
    assert command[7] == 0x81 and command[8] == len(command) - 9
    assert command[9] == 0x11
    return command[ENVELOPE_HEADER:-MAC]


def expected_for(case: str) -> ExpectedActivation:
    counter, when, cancel = CASES[case]
    return ExpectedActivation(
        originator=SUPPLIER,
        recipient=DEVICE,
        firmware_hash=HASH,
        counter=counter,
        execution_time=when,
        cancel=cancel,
    )


@pytest.fixture(scope="module")
def supplier_cert() -> x509.Certificate:
    return x509.load_pem_x509_certificate(vector_bytes("certs", "Z1-supplier-ds.pem"))


@pytest.fixture(scope="module")
def supplier_sign() -> Callable[[bytes], bytes]:
    """The published Z1-supplier-ds key behind the sign_digest callback (DER -> raw)."""
    key = serialization.load_pem_private_key(vector_bytes("keys", "Z1-supplier-ds.key.pem"), None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)

    def sign(digest: bytes) -> bytes:
        assert len(digest) == 32
        r, s = utils.decode_dss_signature(
            key.sign(digest, ec.ECDSA(utils.Prehashed(hashes.SHA256())))
        )
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")

    return sign


def tamper(data: bytes, at: int, value: bytes) -> bytes:
    return data[:at] + value + data[at + len(value) :]


# -- the RTDS vectors ------------------------------------------------------------------------


@pytest.mark.parametrize("case", sorted(CASES))
def test_rtds_pre_command_parses(case: str) -> None:
    raw = pre_command_bytes(case)
    counter, when, cancel = CASES[case]
    pc = parse_pre_command(raw)
    assert pc.apdu == raw
    assert pc.signed_bytes == raw[1:]
    assert pc.cra_flag == 0x01
    assert pc.originator_counter == counter
    assert pc.counter == counter
    assert pc.originator == SUPPLIER
    assert pc.recipient == DEVICE
    assert pc.date_time is None
    assert pc.message_code == 0x0012
    assert pc.firmware_hash == HASH
    assert pc.execution_time == (GBCS_CANCEL_EXECUTION_TIME if cancel else when)


def test_cancellation_carries_9999_in_gbcs() -> None:
    pc = parse_pre_command(pre_command_bytes("CANCELLATION_SUCCESS"))
    assert pc.execution_time == dt.datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)
    assert pre_command_bytes("CANCELLATION_SUCCESS")[TIME_AT:] == b"99991231235959Z"


@pytest.mark.parametrize("case", sorted(CASES))
def test_trailing_no_signature_byte_is_not_part_of_the_apdu(case: str) -> None:
    raw = pre_command_bytes(case)
    pc = parse_pre_command(raw + b"\x00")
    assert pc.apdu == raw
    assert pc == parse_pre_command(raw)


@pytest.mark.parametrize("case", sorted(CASES))
def test_rtds_command_signature_covers_the_apdu_without_its_tag(
    case: str, supplier_cert: x509.Certificate
) -> None:
    raw = pre_command_bytes(case)
    inner = inner_signed_apdu(command_bytes(case))
    assert inner[: len(raw)] == raw
    assert inner[len(raw)] == 0x40
    signature = inner[len(raw) + 1 :]
    assert len(signature) == 64
    assert raw_signature_verifies(supplier_cert, raw[1:], signature)
    assert raw_signature_verifies(supplier_cert, parse_pre_command(raw).signed_bytes, signature)
    # Not the whole APDU, and not the last 64 bytes of the command (that is MAC-shifted).
    assert not raw_signature_verifies(supplier_cert, raw, signature)
    assert not raw_signature_verifies(supplier_cert, raw[1:], command_bytes(case)[-64:])


@pytest.mark.parametrize("case", sorted(CASES))
def test_signing_reproduces_the_rtds_command_but_the_signature(
    case: str, supplier_cert: x509.Certificate, supplier_sign: Callable[[bytes], bytes]
) -> None:
    pc = parse_pre_command(pre_command_bytes(case))
    assert check_pre_command(pc, expected_for(case)) == []
    signed = sign_checked_pre_command(pc, expected_for(case), supplier_sign)
    rtds = inner_signed_apdu(command_bytes(case))
    assert len(signed) == len(rtds) == len(pc.apdu) + 65
    assert signed[:-64] == rtds[:-64]
    assert raw_signature_verifies(supplier_cert, pc.apdu[1:], signed[-64:])
    assert signed[-64:] != rtds[-64:]  # ECDSA is randomised: a fresh signature
    again, signature = parse_signed_command(signed)
    assert again == pc and signature == signed[-64:]


def test_sign_digest_receives_sha256_of_the_signed_bytes() -> None:
    pc = parse_pre_command(pre_command_bytes("IMMEDIATE_SUCCESS"))
    seen: list[bytes] = []

    def fake(digest: bytes) -> bytes:
        seen.append(digest)
        return bytes(range(64))

    assert sign_pre_command(pc, fake) == pc.apdu + b"\x40" + bytes(range(64))
    assert seen == [hashlib.sha256(pre_command_bytes("IMMEDIATE_SUCCESS")[1:]).digest()]


def test_signer_returning_der_is_refused() -> None:
    pc = parse_pre_command(pre_command_bytes("IMMEDIATE_SUCCESS"))
    with pytest.raises(ValueError, match="64"):
        sign_pre_command(pc, lambda d: b"\x30" * 70)


def test_non_minimal_content_length_is_read() -> None:
    raw = pre_command_bytes("IMMEDIATE_SUCCESS")
    assert raw[CONTENT_LENGTH_AT] == 0x28
    longer = raw[:CONTENT_LENGTH_AT] + b"\x81\x28" + raw[CONTENT_LENGTH_AT + 1 :]
    pc = parse_pre_command(longer + b"\x00")
    assert pc.apdu == longer
    assert pc.firmware_hash == HASH and pc.counter == 1000


# -- the checks ------------------------------------------------------------------------------

IMMEDIATE = "IMMEDIATE_SUCCESS"
FUTURE = "FUTURE_DATED_SUCCESS"


@pytest.mark.parametrize(
    ("at", "value", "prefix", "found"),
    [
        (HASH_AT, bytes(32), "firmware_hash:", "0" * 64),
        (
            ORIGINATOR_AT,
            bytes.fromhex("90B3D51F30020000"),
            "originator:",
            "90-B3-D5-1F-30-02-00-00",
        ),
        (RECIPIENT_AT, bytes.fromhex("00DB1234567890A1"), "recipient:", "00-DB-12-34-56-78-90-A1"),
        (COUNTER_AT, bytes.fromhex("03E9"), "counter:", "1001"),
        (ORIG_COUNTER_AT, (1001).to_bytes(8, "big"), "originator_counter:", "1001"),
        (CODE_AT, bytes.fromhex("0013"), "message_code:", "0x0013"),
        (CRA_AT, b"\x02", "cra_flag:", "0x02 (response)"),
    ],
)
def test_each_tampered_field_is_named(at: int, value: bytes, prefix: str, found: str) -> None:
    raw = tamper(pre_command_bytes(IMMEDIATE), at, value)
    failures = check_pre_command(parse_pre_command(raw), expected_for(IMMEDIATE))
    assert len(failures) == 1, failures
    assert failures[0].startswith(prefix)
    assert f"found {found}" in failures[0]


def test_every_failure_is_reported_at_once() -> None:
    raw = pre_command_bytes(IMMEDIATE)
    for at, value in [
        (HASH_AT, bytes(32)),
        (CODE_AT, b"\x00\x13"),
        (CRA_AT, b"\x03"),
        (COUNTER_AT, b"\x03\xe9"),
        (RECIPIENT_AT, bytes(8)),
    ]:
        raw = tamper(raw, at, value)
    failures = check_pre_command(parse_pre_command(raw), expected_for(IMMEDIATE))
    fields = sorted(f.split(":")[0] for f in failures)
    assert fields == ["counter", "cra_flag", "firmware_hash", "message_code", "recipient"]


def test_expected_values_are_compared_not_just_the_pre_command() -> None:
    pc = parse_pre_command(pre_command_bytes(IMMEDIATE))
    other = ExpectedActivation(
        originator=Eui64.parse("90-B3-D5-1F-30-02-00-00"),
        recipient=DEVICE,
        firmware_hash=hashlib.sha256(b"another image").digest(),
        counter=1003,
        execution_time=None,
    )
    failures = check_pre_command(pc, other)
    assert [f.split(":")[0] for f in failures] == [
        "originator",
        "firmware_hash",
        "counter",
        "originator_counter",
    ]
    assert (
        "expected 90-B3-D5-1F-30-02-00-00 (our Supplier EUI), found 90-B3-D5-1F-30-01-00-00"
        in (failures[0])
    )
    assert "expected 1003 (the 11.3 RequestID counter), found 1000" in failures[2]


def test_execution_time_must_be_as_requested() -> None:
    immediate = parse_pre_command(pre_command_bytes(IMMEDIATE))
    future = parse_pre_command(pre_command_bytes(FUTURE))
    want_future = expected_for(FUTURE)
    # a future-dated pre-command for an immediate request, and the reverse
    ask_immediate = ExpectedActivation(SUPPLIER, DEVICE, HASH, 1001, None)
    assert check_pre_command(future, ask_immediate) == [
        "execution_time: expected none (immediate), found 2030-01-15T09:00:00Z"
    ]
    ask_future = ExpectedActivation(SUPPLIER, DEVICE, HASH, 1000, want_future.execution_time)
    assert check_pre_command(immediate, ask_future) == [
        "execution_time: expected 2030-01-15T09:00:00Z, found none (immediate)"
    ]
    # a different time, even by one second
    later = ExpectedActivation(
        SUPPLIER, DEVICE, HASH, 1001, dt.datetime(2030, 1, 15, 9, 0, 1, tzinfo=UTC)
    )
    assert len(check_pre_command(future, later)) == 1
    # the same instant written in another zone is the same time
    zone = dt.timezone(dt.timedelta(hours=1))
    same = ExpectedActivation(
        SUPPLIER, DEVICE, HASH, 1001, dt.datetime(2030, 1, 15, 10, tzinfo=zone)
    )
    assert check_pre_command(future, same) == []


def test_cancellation_mapping() -> None:
    cancel = parse_pre_command(pre_command_bytes("CANCELLATION_SUCCESS"))
    # DUIS 3000-12-31T00:00:00Z given as the request's time means the same as cancel=True
    as_duis = ExpectedActivation(SUPPLIER, DEVICE, HASH, 1002, DUIS_CANCEL_EXECUTION_TIME)
    assert as_duis.is_cancellation
    assert check_pre_command(cancel, as_duis) == []
    # ... but a cancellation pre-command does not answer a request that did not cancel
    not_cancel = ExpectedActivation(SUPPLIER, DEVICE, HASH, 1002, None)
    assert check_pre_command(cancel, not_cancel) == [
        "execution_time: expected none (immediate), found 9999-12-31T23:59:59Z"
    ]
    # and a future-dated pre-command does not answer a cancellation
    future = parse_pre_command(pre_command_bytes(FUTURE))
    asked = ExpectedActivation(SUPPLIER, DEVICE, HASH, 1001, None, cancel=True)
    assert check_pre_command(future, asked) == [
        "execution_time: expected 9999-12-31T23:59:59Z (cancellation), found 2030-01-15T09:00:00Z"
    ]


def test_refused_pre_command_is_never_signed() -> None:
    raw = tamper(pre_command_bytes(IMMEDIATE), HASH_AT, bytes(32))
    called: list[bytes] = []

    def sign(digest: bytes) -> bytes:
        called.append(digest)
        return bytes(64)

    with pytest.raises(PolicyRefused, match="firmware_hash: expected AA7586") as info:
        sign_checked_pre_command(parse_pre_command(raw), expected_for(IMMEDIATE), sign)
    assert "1 failed check" in str(info.value)
    assert called == []


@pytest.mark.parametrize(
    "kwargs",
    [
        {"firmware_hash": bytes(31)},
        {"execution_time": dt.datetime(2030, 1, 1)},  # naive
        {"execution_time": dt.datetime(2030, 1, 1, tzinfo=UTC), "cancel": True},
    ],
)
def test_expected_activation_refuses_nonsense(kwargs: dict[str, object]) -> None:
    base: dict[str, object] = {
        "originator": SUPPLIER,
        "recipient": DEVICE,
        "firmware_hash": HASH,
        "counter": 1,
        "execution_time": None,
    }
    base.update(kwargs)
    with pytest.raises(InvalidInput, match=r"execution time|32 bytes"):
        ExpectedActivation(**base)  # type: ignore[arg-type]


# -- malformed input ---------------------------------------------------------------------------


def assert_format_error(
    data: bytes, offset: int | None = None, match: str | None = None
) -> FormatError:
    with pytest.raises(FormatError, match=match) as info:
        parse_pre_command(data)
    assert info.value.field == "pre_command"
    assert info.value.offset is not None
    if offset is not None:
        assert info.value.offset == offset, info.value
    return info.value


@pytest.mark.parametrize("case", [IMMEDIATE, FUTURE])
def test_every_truncation_is_a_format_error(case: str) -> None:
    raw = pre_command_bytes(case)
    for n in range(len(raw)):
        assert_format_error(raw[:n])


def test_wrong_tag() -> None:
    raw = pre_command_bytes(IMMEDIATE)
    assert_format_error(b"\xdd" + raw[1:], 0, "0xDF")
    assert_format_error(b"", 0, "empty")


def test_content_length_beyond_the_data() -> None:
    raw = pre_command_bytes(IMMEDIATE)
    assert_format_error(tamper(raw, CONTENT_LENGTH_AT, b"\x29"), CONTENT_LENGTH_AT, "announced")


def test_content_length_shorter_than_the_sequence() -> None:
    raw = pre_command_bytes(IMMEDIATE)
    # 0x27: the SEQUENCE (0x28 bytes) overruns its container
    assert_format_error(tamper(raw, CONTENT_LENGTH_AT, b"\x27") + b"\x00", None, "overruns")


def test_bad_field_lengths() -> None:
    raw = pre_command_bytes(IMMEDIATE)
    assert_format_error(tamper(raw, 1, b"\x08"), 1, "transaction-id is 8 bytes")
    assert_format_error(tamper(raw, ORIGINATOR_AT - 1, b"\x07"), ORIGINATOR_AT - 1, "8-byte")
    assert_format_error(tamper(raw, DATE_TIME_AT, b"\x03"), DATE_TIME_AT, "date-time")
    assert_format_error(tamper(raw, CODE_AT - 1, b"\x01"), CODE_AT - 1, "message code")
    assert_format_error(
        raw[:CONTENT_LENGTH_AT] + b"\x80" + raw[CONTENT_LENGTH_AT + 1 :],
        CONTENT_LENGTH_AT,
        "indefinite",
    )


def test_bad_content() -> None:
    raw = pre_command_bytes(IMMEDIATE)
    # hash of 31 bytes: shorten the OCTET STRING and every enclosing length
    short = (
        raw[:CONTENT_LENGTH_AT]
        + b"\x27\x30\x25\x04\x1f"
        + raw[HASH_AT : HASH_AT + 31]
        + raw[HASH_AT + 32 :]
    )
    assert_format_error(short, CONTENT_LENGTH_AT + 3, "31 bytes, expected 32")
    assert_format_error(
        tamper(raw, CONTENT_LENGTH_AT + 1, b"\x31"), CONTENT_LENGTH_AT + 1, "expected SEQUENCE"
    )
    assert_format_error(tamper(raw, COUNTER_AT - 2, b"\x04"), COUNTER_AT - 2, "expected INTEGER")
    future = pre_command_bytes(FUTURE)
    assert_format_error(tamper(future, TIME_AT - 2, b"\x17"), TIME_AT - 2, "GeneralizedTime")
    assert_format_error(tamper(future, TIME_AT + 14, b"+"), TIME_AT - 2, "YYYYMMDDHHMMSSZ")
    assert_format_error(tamper(future, TIME_AT + 4, b"13"), TIME_AT - 2, "not a valid date")


def test_trailing_bytes_and_signatures_are_refused() -> None:
    raw = pre_command_bytes(IMMEDIATE)
    end = len(raw)
    assert_format_error(raw + b"\x00\x00", end, "unexpected bytes")
    assert_format_error(raw + b"\x01", end, "unexpected bytes")
    assert_format_error(raw + b"\x40" + bytes(64), end, "already carries a signature")


@pytest.mark.parametrize(
    "name",
    [
        "CS06_11.3_IMMEDIATE_SUCCESS_RESPONSE_GBCS.HEX",
        "CS06_11.3_8F66_FUTURE_DATED_SUCCESS_ALERT_GBCS.HEX",
        "CS06_11.3_IMMEDIATE_SUCCESS_COMMAND_GBCS.HEX",
    ],
)
def test_responses_alerts_and_commands_are_not_pre_commands(name: str) -> None:
    with pytest.raises(FormatError):
        parse_pre_command(hex_vector(name))


def test_signed_command_must_carry_exactly_one_signature() -> None:
    raw = pre_command_bytes(IMMEDIATE)
    with pytest.raises(FormatError, match="0x40"):
        parse_signed_command(raw)
    with pytest.raises(FormatError, match="0x40"):
        parse_signed_command(raw + b"\x00")
    with pytest.raises(FormatError, match="63 bytes"):
        parse_signed_command(raw + b"\x40" + bytes(63))
    pc, sig = parse_signed_command(raw + b"\x40" + bytes(64))
    assert isinstance(pc, PreCommand) and sig == bytes(64)
