"""GBCS CS06 Activate Firmware pre-commands: parse, check against what we asked for, sign.

The DCC turns our SR 11.3 request into a pre-command the Supplier must check before signing
it, so every field we asked for is compared, not trusted. Pure code: no I/O, no clock;
signing goes through a ``sign_digest`` callback (the HSM). See docs/cs06.md (the layout,
the counters, cancellation).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from signer.errors import FormatError, InvalidInput, PolicyRefused, excerpt
from signer.gbcs import _ber
from signer.gbcs.eui import Eui64
from signer.gbcs.general_signing import CRA_COMMAND, CRA_NAMES, TAG_GENERAL_SIGNING, read_header

FIELD: Final = "pre_command"

TAG_GENERALIZED_TIME: Final = 0x18
MESSAGE_CODE_CS06: Final = 0x0012
FIRMWARE_HASH_LENGTH: Final = 32
SIGNATURE_LENGTH: Final = 64
NO_SIGNATURE: Final = 0x00
SIGNATURE_PRESENT: Final = 0x40  # length byte of the 64-byte raw r||s that follows

#: What a DUIS 11.3 request writes to cancel a pending future-dated activation (templates).
DUIS_CANCEL_EXECUTION_TIME: Final = dt.datetime(3000, 12, 31, tzinfo=dt.UTC)
#: What the DCC writes into the CS06 pre-command for such a cancellation (RTDS vector).
GBCS_CANCEL_EXECUTION_TIME: Final = dt.datetime(9999, 12, 31, 23, 59, 59, tzinfo=dt.UTC)

SignDigest = Callable[[bytes], bytes]
"""Receives SHA-256 of the signed bytes, returns raw r||s (64 bytes): the HSM's job."""


@dataclass(frozen=True)
class PreCommand:
    """A parsed CS06 General-Signing APDU, as the DCC returned it (unsigned)."""

    #: The APDU from its 0xDF tag to the end of its content; never the trailing 0x00.
    apdu: bytes
    cra_flag: int
    originator_counter: int
    originator: Eui64
    recipient: Eui64
    date_time: bytes | None
    message_code: int
    firmware_hash: bytes
    #: The INTEGER inside the content.
    counter: int
    execution_time: dt.datetime | None

    @property
    def signed_bytes(self) -> bytes:
        """What the Supplier's signature covers: the APDU without its first (tag) byte."""
        return self.apdu[1:]


@dataclass(frozen=True)
class ExpectedActivation:
    """What the service issued in the 11.3 request that the pre-command must answer.

    ``execution_time`` is the 11.3 request's ExecutionDateTime (None: immediate). ``cancel``
    marks a cancellation request; the DUIS cancellation value 3000-12-31T00:00:00Z given as
    ``execution_time`` means the same.
    """

    originator: Eui64
    recipient: Eui64
    firmware_hash: bytes
    counter: int
    execution_time: dt.datetime | None
    cancel: bool = False

    def __post_init__(self) -> None:
        if len(self.firmware_hash) != FIRMWARE_HASH_LENGTH:
            raise InvalidInput(
                f"a firmware hash is SHA-256 (32 bytes), got {len(self.firmware_hash)}",
                field="firmware_hash",
            )
        if self.execution_time is not None and self.execution_time.utcoffset() is None:
            raise InvalidInput("execution time must be timezone-aware", field="execution_time")
        if self.cancel and self.execution_time not in (None, DUIS_CANCEL_EXECUTION_TIME):
            raise InvalidInput(
                "a cancellation carries no execution time of its own", field="execution_time"
            )

    @property
    def is_cancellation(self) -> bool:
        return self.cancel or self.execution_time == DUIS_CANCEL_EXECUTION_TIME

    @property
    def gbcs_execution_time(self) -> dt.datetime | None:
        """The execution date-time the pre-command must carry for this request."""
        if self.is_cancellation:
            return GBCS_CANCEL_EXECUTION_TIME
        return self.execution_time


def parse_pre_command(data: bytes, *, field: str = FIELD) -> PreCommand:
    """Parse an unsigned CS06 pre-command; the end is found from the content length.

    A trailing 0x00 ("no signature") byte is accepted and dropped; a signature (0x40 + 64
    bytes) or any other trailing byte is refused: a pre-command arrives unsigned.
    """
    pc, end = _parse_apdu(data, field=field)
    if end == len(data):
        return pc
    if data[end] == NO_SIGNATURE and end + 1 == len(data):
        return pc
    if data[end] == SIGNATURE_PRESENT:
        raise FormatError(
            "the APDU already carries a signature (0x40); a pre-command arrives unsigned",
            field=field,
            offset=end,
        )
    raise FormatError(
        f"{len(data) - end} unexpected bytes after the APDU content (at most one 0x00 "
        "'no signature' byte may follow)",
        field=field,
        offset=end,
    )


def parse_signed_command(data: bytes, *, field: str = "signed_command") -> tuple[PreCommand, bytes]:
    """Split ``APDU || 0x40 || r||s`` into the parsed APDU and the raw signature."""
    pc, end = _parse_apdu(data, field=field)
    if end >= len(data) or data[end] != SIGNATURE_PRESENT:
        found = "nothing" if end >= len(data) else f"0x{data[end]:02X}"
        raise FormatError(
            f"expected the signature length byte 0x40 after the content, found {found}",
            field=field,
            offset=end,
        )
    if len(data) != end + 1 + SIGNATURE_LENGTH:
        raise FormatError(
            f"signature is {len(data) - end - 1} bytes, expected {SIGNATURE_LENGTH} (raw r||s)",
            field=field,
            offset=end + 1,
        )
    return pc, bytes(data[end + 1 :])


def check_pre_command(pc: PreCommand, expected: ExpectedActivation) -> list[str]:
    """Every check the pre-command fails, each naming the field, expected and found values.

    An empty list means the pre-command is exactly the one our 11.3 request asked for.
    """
    failures: list[str] = []
    if pc.message_code != MESSAGE_CODE_CS06:
        failures.append(
            f"message_code: expected 0x{MESSAGE_CODE_CS06:04X} (CS06 Activate Firmware), "
            f"found 0x{pc.message_code:04X}"
        )
    if pc.cra_flag != CRA_COMMAND:
        failures.append(
            f"cra_flag: expected 0x{CRA_COMMAND:02X} (command), found 0x{pc.cra_flag:02X} "
            f"({CRA_NAMES.get(pc.cra_flag, 'unknown')})"
        )
    if pc.originator != expected.originator:
        failures.append(
            f"originator: expected {expected.originator} (our Supplier EUI), found {pc.originator}"
        )
    if pc.recipient != expected.recipient:
        failures.append(
            f"recipient: expected {expected.recipient} (the device of the 11.3 request), "
            f"found {pc.recipient}"
        )
    if pc.firmware_hash != expected.firmware_hash:
        failures.append(
            f"firmware_hash: expected {expected.firmware_hash.hex().upper()}, "
            f"found {pc.firmware_hash.hex().upper()}"
        )
    if pc.counter != expected.counter:
        failures.append(
            f"counter: expected {expected.counter} (the 11.3 RequestID counter), found {pc.counter}"
        )
    if pc.originator_counter != expected.counter:
        failures.append(
            f"originator_counter: expected {expected.counter} (the 11.3 RequestID counter), "
            f"found {pc.originator_counter}"
        )
    want_time = expected.gbcs_execution_time
    if pc.execution_time != want_time:
        failures.append(
            f"execution_time: expected {_describe_time(want_time, expected.is_cancellation)}, "
            f"found {_describe_time(pc.execution_time, False)}"
        )
    return failures


def sign_pre_command(pc: PreCommand, sign_digest: SignDigest) -> bytes:
    """``APDU || 0x40 || r||s``, the signature over SHA-256 of ``pc.signed_bytes``.

    Signs whatever it is given: call ``check_pre_command`` first, or use
    ``sign_checked_pre_command``.
    """
    return signed_pre_command(pc, sign_digest(pre_command_digest(pc)))


def pre_command_digest(pc: PreCommand) -> bytes:
    """What the Supplier key signs: SHA-256 of ``signed_bytes``, the APDU without its tag."""
    return hashlib.sha256(pc.signed_bytes).digest()


def signed_pre_command(pc: PreCommand, raw: bytes) -> bytes:
    """``APDU || 0x40 || r||s`` for a signature made over ``pre_command_digest(pc)``: the
    second half of ``sign_pre_command``, for callers that sign a batch at once."""
    if len(raw) != SIGNATURE_LENGTH:
        raise ValueError(f"sign_digest returned {len(raw)} bytes, expected raw r||s (64)")
    return pc.apdu + bytes((SIGNATURE_PRESENT,)) + bytes(raw)


def sign_checked_pre_command(
    pc: PreCommand, expected: ExpectedActivation, sign_digest: SignDigest
) -> bytes:
    """Check, then sign; a pre-command failing any check is refused and nothing is signed."""
    failures = check_pre_command(pc, expected)
    if failures:
        raise PolicyRefused(
            f"pre-command for {expected.recipient} refused, {len(failures)} failed check(s): "
            + "; ".join(failures)
        )
    return sign_pre_command(pc, sign_digest)


# -- parsing ----------------------------------------------------------------------------


def _parse_apdu(data: bytes, *, field: str) -> tuple[PreCommand, int]:
    """Parse the General-Signing APDU at the start of ``data``; return it and its end."""
    return _parse_common_apdu(data) or _read_apdu(data, field=field)


def _read_apdu(data: bytes, *, field: str) -> tuple[PreCommand, int]:
    """The general reader: any layout GBCS allows, every fault named at its offset."""
    if not data:
        raise FormatError("pre-command is empty", field=field, offset=0)
    if data[0] != TAG_GENERAL_SIGNING:
        raise FormatError(
            f"first byte 0x{data[0]:02X} is not 0xDF (General-Signing APDU)",
            field=field,
            offset=0,
        )
    header = read_header(data, 0, len(data), field=field, size_error_at="length")
    content_end = header.content_end
    firmware_hash, counter, execution_time = _parse_content(
        data, header.content_start, content_end, field=field
    )
    pc = PreCommand(
        apdu=bytes(data[:content_end]),
        cra_flag=header.cra_flag,
        originator_counter=header.originator_counter,
        originator=header.originator,
        recipient=header.recipient,
        date_time=header.date_time,
        message_code=header.message_code,
        firmware_hash=firmware_hash,
        counter=counter,
        execution_time=execution_time,
    )
    return pc, content_end


#: Offsets of the layout the DCC sends for an immediate activation (docs/cs06.md): every
#: length in short form, the header's sizes fixed, the content SEQUENCE with its hash and
#: counter only.
_TRANSACTION_ID_LENGTH_AT: Final = 1
_ORIGINATOR_AT: Final = 12  # after its length byte, 8
_RECIPIENT_AT: Final = 21  # after its length byte, 8
_DATE_TIME_LENGTH_AT: Final = 29
_MAX_FAST_COUNTER_BYTES: Final = 9  # a non-negative INTEGER of at most 72 bits


def _parse_common_apdu(data: bytes) -> tuple[PreCommand, int] | None:
    """The commonest pre-command (immediate, every length in short form) read at fixed
    offsets, or None for anything else, which the general reader parses and names the fault
    of. Accepts only what the general reader accepts and returns what it would
    (tests/duis/test_activation.py and test_properties.py hold the two to each other): a
    campaign parses one per device, and the general reader takes three times as long
    (measured: 23 against 8 us)."""
    n = len(data)
    if (
        type(data) is not bytes
        or n < 30
        or data[0] != TAG_GENERAL_SIGNING
        or data[_TRANSACTION_ID_LENGTH_AT] != 9
        or data[_ORIGINATOR_AT - 1] != 8
        or data[_RECIPIENT_AT - 1] != 8
    ):
        return None
    date_time_length = data[_DATE_TIME_LENGTH_AT]
    if date_time_length not in (0, 12):
        return None
    code = _DATE_TIME_LENGTH_AT + 1 + date_time_length  # other-information: a 2-byte message code
    start = code + 4  # content: SEQUENCE { OCTET STRING (32), INTEGER }
    if n < start + 2 + 34 + 3 or data[code] != 2 or data[code + 3] >= 0x80:
        return None
    end = start + data[code + 3]
    counter_length = data[start + 37]
    if (
        end > n
        or data[start] != _ber.TAG_SEQUENCE
        or data[start + 1] != end - start - 2
        or data[start + 2] != _ber.TAG_OCTET_STRING
        or data[start + 3] != FIRMWARE_HASH_LENGTH
        or data[start + 36] != _ber.TAG_INTEGER
        or not 1 <= counter_length <= _MAX_FAST_COUNTER_BYTES
        or start + 38 + counter_length != end  # no execution date-time: the general reader
        or data[start + 38] >= 0x80  # negative: the general reader refuses it
    ):
        return None
    pc = PreCommand(
        apdu=data[:end],
        cra_flag=data[2],
        originator_counter=int.from_bytes(data[3:11], "big"),
        originator=Eui64(data[_ORIGINATOR_AT : _ORIGINATOR_AT + 8]),
        recipient=Eui64(data[_RECIPIENT_AT : _RECIPIENT_AT + 8]),
        date_time=data[_DATE_TIME_LENGTH_AT + 1 : code] or None,
        message_code=int.from_bytes(data[code + 1 : code + 3], "big"),
        firmware_hash=data[start + 4 : start + 36],
        counter=int.from_bytes(data[start + 38 : end], "big"),
        execution_time=None,
    )
    return pc, end


def _parse_content(
    data: bytes, start: int, end: int, *, field: str
) -> tuple[bytes, int, dt.datetime | None]:
    seq = _ber.expect(data, start, end, _ber.TAG_SEQUENCE, field=field, what="CS06 content")
    if seq.end != end:
        raise FormatError(
            f"{end - seq.end} bytes after the content SEQUENCE", field=field, offset=seq.end
        )
    hash_tlv = _ber.expect(
        data, seq.start, seq.end, _ber.TAG_OCTET_STRING, field=field, what="firmware hash"
    )
    if hash_tlv.length != FIRMWARE_HASH_LENGTH:
        raise FormatError(
            f"firmware hash is {hash_tlv.length} bytes, expected {FIRMWARE_HASH_LENGTH}",
            field=field,
            offset=hash_tlv.offset,
        )
    counter_tlv = _ber.expect(
        data, hash_tlv.end, seq.end, _ber.TAG_INTEGER, field=field, what="counter"
    )
    counter = _ber.unsigned_value(data, counter_tlv, field=field, what="counter")
    execution_time = None
    pos = counter_tlv.end
    if pos < seq.end:
        time_tlv = _ber.read_tlv(data, pos, seq.end, field=field, what="execution date-time")
        if time_tlv.tag != TAG_GENERALIZED_TIME:
            raise FormatError(
                f"execution date-time: expected GeneralizedTime (0x18), found "
                f"{_ber.tag_name(time_tlv.tag)}",
                field=field,
                offset=pos,
            )
        execution_time = _generalized_time(data, time_tlv, field=field)
        pos = time_tlv.end
    if pos != seq.end:
        raise FormatError(
            "unexpected elements after the execution date-time", field=field, offset=pos
        )
    return bytes(data[hash_tlv.start : hash_tlv.end]), counter, execution_time


def _generalized_time(data: bytes, tlv: _ber.Tlv, *, field: str) -> dt.datetime:
    """``YYYYMMDDHHMMSSZ``, the only form the CS06 vectors use; anything else is refused."""
    raw = bytes(data[tlv.start : tlv.end])
    text = raw.decode("ascii", "replace")
    if len(raw) != 15 or not raw.endswith(b"Z") or not raw[:14].isdigit():
        raise FormatError(
            f"execution date-time {excerpt(text)} is not GeneralizedTime YYYYMMDDHHMMSSZ",
            field=field,
            offset=tlv.offset,
        )
    digits = raw[:14]
    try:
        return dt.datetime(
            int(digits[0:4]),
            int(digits[4:6]),
            int(digits[6:8]),
            int(digits[8:10]),
            int(digits[10:12]),
            int(digits[12:14]),
            tzinfo=dt.UTC,
        )
    except ValueError:
        raise FormatError(
            f"execution date-time {excerpt(text)} is not a valid date",
            field=field,
            offset=tlv.offset,
        ) from None


def _describe_time(value: dt.datetime | None, cancellation: bool) -> str:
    if value is None:
        return "none (immediate)"
    text = value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return f"{text} (cancellation)" if cancellation else text
