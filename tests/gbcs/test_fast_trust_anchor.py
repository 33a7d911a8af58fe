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


def _t(tag: int, content: bytes) -> bytes:
    assert len(content) < 0x80
    return bytes((tag, len(content))) + content


def _c(usage: bytes, ski: bytes, cell_usage: int | None = None) -> bytes:
    """A trust anchor cell: keyUsage BIT STRING content ``usage``, optional cellUsage."""
    usage_part = _t(0x03, usage) + (b"" if cell_usage is None else _t(0x02, bytes((cell_usage,))))
    return _t(0x30, usage_part + _t(0x04, b"\x90" * 8) + _t(0x04, ski))


def _r(code: int, *cells: bytes) -> bytes:
    return _t(
        0x30, _t(0x02, bytes((code,))) + b"\x0a\x01\x00\x02\x01\x00" + _t(0x30, b"".join(cells))
    )


def _bare(*roles: bytes) -> bytes:
    """A bare General-Signing 6.24.1 response (CS02a) carrying ``roles``."""
    content = _t(0x30, b"".join(roles))
    header = b"\x09\x02" + bytes(8) + b"\x08" + b"\xd0" * 8 + b"\x08" + b"\xdc" * 8 + b"\x00"
    return b"\xdf" + header + b"\x02\x00\x08" + _length_byte(content) + content + b"\x00"


def _length_byte(content: bytes) -> bytes:
    assert len(content) < 0x80
    return bytes((len(content),))


_DS, _KA, _DS_UNUSED_0 = b"\x07\x80", b"\x03\x08", b"\x00\x80"  # the last: bit 0, 0 unused
_A, _B = b"\xaa" * 8, b"\xbb" * 8


@pytest.mark.parametrize(
    ("first", "second", "roles"),
    [
        (_c(_DS, _A), _c(_DS, _B), "one"),  # the same cell twice in one role, other SKIs
        (_c(_DS, _A), _c(_DS, _A), "one"),  # ... and the very same cell
        (_c(_DS, _A), _c(_DS, _B, 0), "one"),  # cellUsage absent is management
        (_c(_DS, _A), _c(_DS_UNUSED_0, _B), "one"),  # another encoding of digitalSignature
        (_c(_KA, _A, 1), _c(_KA, _B, 1), "one"),  # any (key usage, cell usage)
        (_c(_DS, _A), _c(_DS, _B), "two"),  # the role listed twice, a cell in each
    ],
    ids=[
        "other-ski",
        "same-cell",
        "explicit-management",
        "other-encoding",
        "prepayment",
        "role-twice",
    ],
)
def test_two_cells_of_one_role_and_usage_are_refused_by_both_readers(
    first: bytes, second: bytes, roles: str
) -> None:
    """A device holds one trust anchor cell per (remote party role, key usage, cell usage):
    a response with two is malformed, whichever reader reads it, and is refused in one
    line naming the field, the second cell's offset and the first's."""
    if roles == "one":
        data = _bare(_r(2, first, _c(_KA, b"\xcc" * 8), second))
    else:
        data = _bare(_r(2, first), _r(3, _c(_DS, b"\xcc" * 8)), _r(2, second))
    at_first = data.index(first)
    at_second = data.index(second, at_first + 1)
    assert _read_common_response(data) is None
    with pytest.raises(FormatError) as exc:
        _general(data)
    message = str(exc.value)
    assert "\n" not in message
    usage = "keyAgreement/prepayment_top_up" if first[4:6] == _KA else "digitalSignature/management"
    assert message.endswith(f"second {usage} cell for role 2 (first at offset {at_first})"), message
    assert (exc.value.field, exc.value.offset) == (FIELD, at_second)
    assert not _agree(data)  # and the parser as callers see it refuses it alike


def test_one_usage_under_two_roles_is_two_cells() -> None:
    """The same (key usage, cell usage) for the Supplier and the Network Operator: read."""
    data = _bare(_r(2, _c(_DS, _A)), _r(3, _c(_DS, _B)))
    assert _agree(data)  # in one pass
    creds = parse_security_credentials_response(data)
    assert [(c.role, c.ski) for c in creds.cells] == [(2, _A), (3, _B)]


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
