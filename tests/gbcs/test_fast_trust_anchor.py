"""The one-pass 6.24.1 reader against the general one: it accepts only what the general
reader accepts, and reads it the same (values, types and enum members); everything else
falls through to the general reader, so every refusal keeps its words, field and offset.

Inputs: responses built field by field in the layout devices send (every keyUsage
encoding, cellUsage absent or present, duplicate cells, long-form lengths, the MAC'd
envelope, the signature field's forms), the same broken byte by byte, the RTDS vectors
broken byte by byte, the hostile payloads of tests/support/strategies.py, and the
benchmark's responses.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import pytest
from hypothesis import given
from hypothesis import strategies as st

from signer.errors import FormatError
from signer.gbcs.trust_anchor import (
    FIELD,
    DeviceCredentials,
    _read_common_response,
    _read_response,
    parse_security_credentials_response,
)
from tests.support.gbcs_responses import response
from tests.support.strategies import (
    mutated,
    near_valid,
    property_settings,
    trust_anchor_payloads,
    trust_anchor_seeds,
)

T = TypeVar("T")
#: cheap examples (~2 ms each): many of them, so that rare hostile values meet the fast path
MANY = property_settings(1000)


def _mostly(draw: st.DrawFn, good: tuple[T, ...], bad: tuple[T, ...]) -> T:
    """Mostly one of ``good``, now and then one of ``bad``: most examples stay readable,
    so the fast path is exercised, and each hostile value still comes up."""
    return draw(st.sampled_from(bad if draw(st.integers(0, 19)) == 19 else good))


def _length(draw: st.DrawFn, n: int) -> bytes:
    """Short form, or (sometimes) a long form GBCS writes: minimal, or with a leading zero."""
    size = max(1, (n.bit_length() + 7) // 8)
    long_forms = tuple(bytes((0x80 | k,)) + n.to_bytes(k, "big") for k in (size, size + 1))
    if n >= 0x80:
        return draw(st.sampled_from(long_forms))
    return _mostly(draw, (bytes((n,)),), long_forms)


def _tlv(draw: st.DrawFn, tag: int, content: bytes) -> bytes:
    return bytes((tag,)) + _length(draw, len(content)) + content


@st.composite
def _integer(draw: st.DrawFn, values: st.SearchStrategy[int]) -> bytes:
    """A non-negative INTEGER's content, minimal or padded with a leading zero."""
    value = draw(values)
    size = max(1, (value.bit_length() + 8) // 8)
    return value.to_bytes(size + draw(st.integers(0, 1)), "big")


@st.composite
def _cell(draw: st.DrawFn) -> bytes:
    # every one-byte encoding of one set bit (the general reader decides which it takes)
    bit = _mostly(draw, (0, 4), (1, 7))
    unused = draw(st.integers(0, 7)) if draw(st.booleans()) else {0: 7, 4: 3}.get(bit, 0)
    usage = bytes((unused, 0x80 >> bit))
    if draw(st.integers(0, 9)) == 9:  # a longer BIT STRING: the general reader's
        usage += b"\x00"
    parts = _tlv(draw, 0x03, usage)
    cell_usage: int | None = _mostly(draw, (None, None, 0, 1), (2, 0x80))
    if cell_usage is not None:
        parts += _tlv(draw, 0x02, bytes((cell_usage,)))
    octets = st.binary(min_size=8, max_size=8)
    return _tlv(draw, 0x30, parts + _tlv(draw, 0x04, draw(octets)) + _tlv(draw, 0x04, draw(octets)))


@st.composite
def common_responses(draw: st.DrawFn) -> bytes:
    """6.24.1 responses in the layout devices send, with the variations it allows."""
    roles = b""
    for _ in range(draw(st.integers(0, 3))):
        role = _mostly(draw, (0x02, 0x03, 0x04, 0x7F), (0x00, 0x87, 0x80))
        status = draw(_integer(st.sampled_from((0, 1, 0x80, 2**64 - 1))))
        sequence = draw(_integer(st.sampled_from((0, 1, 300, 2**63))))
        cells = b"".join(draw(st.lists(_cell(), max_size=3)))
        roles += _tlv(
            draw,
            0x30,
            _tlv(draw, 0x02, bytes((role,)))
            + _tlv(draw, 0x0A, status)
            + _tlv(draw, 0x02, sequence)
            + _tlv(draw, 0x30, cells)
            + _mostly(draw, (b"",), (b"\x30\x00", b"\x02\x01\x00")),
        )
    content = _tlv(draw, 0x30, roles)
    code = _mostly(draw, (0x0008, 0x011B), (0x0012, 0x0000))
    cra = _mostly(draw, (0x02,), (0x01, 0x03))
    date_time = _mostly(draw, (b"", b"\x07" * 12), (b"\x07" * 11,))
    fields = (
        bytes((cra,)) + draw(st.binary(min_size=8, max_size=8)),
        draw(st.binary(min_size=8, max_size=8)),
        draw(st.binary(min_size=8, max_size=8)),
        date_time,
        code.to_bytes(2, "big"),
    )
    header = b"".join(bytes((len(f),)) + f for f in fields)
    signature = _mostly(draw, (b"\x00", b"\x40" + b"\x5a" * 64), (b"", b"\x01", b"\x40" * 64))
    apdu = b"\xdf" + header + _length(draw, len(content)) + content + signature
    if draw(st.integers(0, 3)):
        return apdu
    inner = b"\x11" + draw(st.binary(min_size=4, max_size=4)) + apdu + b"\x33" * 12
    return b"\xdd" + b"\x00" * 6 + _length(draw, len(inner)) + inner


def _outcome(read: Callable[[bytes], DeviceCredentials], data: bytes) -> tuple[object, ...]:
    """What a reader made of ``data``: its result with its repr (enum members and all), or
    the refusal's words, field and offset."""
    try:
        result = read(data)
    except FormatError as exc:
        return ("refused", str(exc), exc.field, exc.offset)
    return ("read", result, repr(result))


def _general(data: bytes) -> DeviceCredentials:
    return _read_response(data, field=FIELD)


def _agree(data: bytes) -> bool:
    """The fast path and the general reader agree on ``data``; True if the fast path read it."""
    general = _outcome(_general, data)
    fast = _read_common_response(data)
    if fast is not None:
        assert general[0] == "read", (
            f"the fast path accepted what the general reader refuses: {general}"
        )
        assert ("read", fast, repr(fast)) == general
    # and the parser as callers see it: the same result, or the same refusal
    assert _outcome(parse_security_credentials_response, data) == general
    return fast is not None


@MANY
@given(common_responses())
def test_built_responses_read_as_the_general_reader_reads_them(data: bytes) -> None:
    _agree(data)


@MANY
@given(
    st.one_of(
        mutated(common_responses()),
        near_valid(trust_anchor_seeds),
        trust_anchor_payloads(),
        mutated(st.integers(0, 10**6).map(response)),
    )
)
def test_broken_responses_read_as_the_general_reader_reads_them(data: bytes) -> None:
    _agree(data)


@pytest.mark.parametrize("n", [0, 1, 2, 127, 128, 99_999, 10**9])
def test_the_benchmark_responses_take_the_fast_path(n: int) -> None:
    data = response(n)
    fast = _read_common_response(data)
    assert fast is not None
    general = _general(data)
    assert (fast, repr(fast)) == (general, repr(general))
    assert len(fast.cells) == 5


def test_the_rtds_vectors_take_the_fast_path() -> None:
    """The published responses (MAC'd envelope, long-form lengths) are read in one pass."""
    for seed in trust_anchor_seeds():
        fast = _read_common_response(seed)
        assert fast is not None
        general = _general(seed)
        assert (fast, repr(fast)) == (general, repr(general))


def test_a_duplicate_cell_is_named_by_the_general_reader() -> None:
    """The fast path leaves a duplicate to the general reader, which names both offsets."""
    data = bytearray(response(7))
    # the Supplier's key-agreement cell (2nd) becomes a second digital-signing cell
    second = data.index(bytes.fromhex("3018030203080408"))
    data[second + 4 : second + 6] = b"\x07\x80"
    assert _read_common_response(bytes(data)) is None
    with pytest.raises(FormatError, match=r"second digitalSignature/management cell for role 2"):
        parse_security_credentials_response(bytes(data))


def test_other_buffers_take_the_general_reader() -> None:
    data = response(3)
    assert _read_common_response(bytearray(data)) is None  # type: ignore[arg-type]
    assert parse_security_credentials_response(bytearray(data)) == _general(data)  # type: ignore[arg-type]


def _one_byte_changes(data: bytes) -> list[bytes]:
    out = []
    for at in range(len(data)):
        for value in range(256):
            if value != data[at]:
                out.append(data[:at] + bytes((value,)) + data[at + 1 :])
    return out


def test_every_one_byte_change_reads_as_the_general_reader() -> None:
    """Exhaustive where it is cheap: every byte of a response in the MAC'd envelope and of
    a bare one set to every other value (every length, tag, flag, count and value)."""
    envelope = min(trust_anchor_seeds(), key=len)  # CS02a from the ACB: one cell per usage
    read = sum(
        _agree(changed) for seed in (envelope, response(5)) for changed in _one_byte_changes(seed)
    )
    assert read > 1000  # the SKIs, subjects, counters and other free values
