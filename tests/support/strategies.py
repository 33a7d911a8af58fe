"""Hypothesis strategies for the parsers of outside bytes: near-valid inputs built from valid ones.

Random bytes rarely get past a parser's first check, so most strategies start from a valid
input (a published vector or one built here) and break it the way a hostile or buggy peer
would: wrong lengths, truncation, flipped bytes, oversized or negative DER INTEGERs, huge
long-form lengths, deep nesting. The vectors are read in place from ../shared/vectors.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Callable
from functools import cache
from typing import TypeVar

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from signer.errors import SignerError
from tests.support.vectors import vector_b64, vector_bytes, vector_path, vector_text

T = TypeVar("T")

#: The longest error message a parser may produce, whatever it was given.
MAX_MESSAGE_CHARS = 600

#: Byte values that sit on format boundaries (short/long DER length forms, signs, tags).
INTERESTING_BYTES = (0x00, 0x01, 0x02, 0x04, 0x30, 0x40, 0x7F, 0x80, 0x81, 0x82, 0x84, 0x85, 0xFF)


def only_signer_errors(parse: Callable[[T], object], value: T) -> None:
    """Call ``parse``; the only exceptions allowed out are the project's own, and short."""
    try:
        parse(value)
    except SignerError as exc:
        assert len(str(exc)) <= MAX_MESSAGE_CHARS, f"{len(str(exc))}-char message: {exc!s:.200}"


# -- seeds: valid inputs ----------------------------------------------------------------


@cache
def ota_seeds() -> tuple[bytes, ...]:
    return (
        vector_b64("ota", "esme_11.1_upgrade_image.b64"),
        vector_b64("ota", "ppmid_11.4_upgrade_image.b64"),
    )


@cache
def precommand_seeds() -> tuple[bytes, ...]:
    return tuple(
        bytes.fromhex(vector_text("gbcs", f"CS06_11.3_{case}_{kind}_GBCS.HEX").strip())
        for case in ("IMMEDIATE_SUCCESS", "FUTURE_DATED_SUCCESS", "CANCELLATION_SUCCESS")
        for kind in ("PRECOMMAND", "COMMAND")
    )


@cache
def trust_anchor_seeds() -> tuple[bytes, ...]:
    names = (
        "CS02aMAC_6.24.1_SUCCESS_RESPONSE_GBCS.HEX",
        "CS02fMAC_6.24.1_SUCCESS_RESPONSE_GBCS.HEX",
        "CS02aSignature_NA_SUCCESS_RESPONSE_GBCS.HEX",
    )
    return tuple(bytes.fromhex(vector_text("trust_anchor", n).strip()) for n in names)


@cache
def certificate_seeds() -> tuple[bytes, ...]:
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    pems = sorted(vector_path("certs").glob("*.pem"))[:8]
    return tuple(
        x509.load_pem_x509_certificate(p.read_bytes()).public_bytes(Encoding.DER) for p in pems
    )


@cache
def response_seeds() -> tuple[bytes, ...]:
    """Signed DCC responses and the DUIS 6.24.1 illustration: XML carrying a GBCSPayload."""
    return (
        vector_bytes("xmldsig", "dcc_readfw-response.xml"),
        vector_bytes("xmldsig", "dcc_message.xml"),
        vector_bytes("trust_anchor", "illustration_DUIS_6.24.1_response_envelope.xml"),
    )


def sampled(seeds: Callable[[], tuple[bytes, ...]]) -> st.SearchStrategy[bytes]:
    """Seeds are read when a test runs, so a missing vectors folder skips that test only."""
    return st.deferred(lambda: st.sampled_from(seeds()))


# -- mutations --------------------------------------------------------------------------


@st.composite
def mutated(draw: st.DrawFn, seeds: st.SearchStrategy[bytes], max_mutations: int = 3) -> bytes:
    """A seed with one to ``max_mutations`` byte-level faults applied."""
    data = bytearray(draw(seeds))
    for _ in range(draw(st.integers(1, max_mutations))):
        kind = draw(st.sampled_from(("truncate", "flip", "set", "insert", "delete", "extend")))
        at = draw(st.integers(0, max(len(data) - 1, 0)))
        if kind == "truncate":
            del data[at:]
        elif kind == "flip" and data:
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif kind == "set" and data:
            data[at] = draw(st.sampled_from(INTERESTING_BYTES) | st.integers(0, 255))
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif kind == "delete":
            del data[at : at + draw(st.integers(1, 8))]
        else:
            data += draw(st.binary(min_size=1, max_size=70))
    return bytes(data)


def near_valid(seeds: Callable[[], tuple[bytes, ...]]) -> st.SearchStrategy[bytes]:
    """Mutated seeds, mostly, with some plain random bytes."""
    return st.one_of(mutated(sampled(seeds)), st.binary(max_size=200))


# -- DER / BER building blocks ----------------------------------------------------------


@st.composite
def ber_length(draw: st.DrawFn, n: int) -> bytes:
    """``n`` in short or long form, sometimes with leading zero bytes (GBCS writes them)."""
    if n < 0x80 and draw(st.booleans()):
        return bytes((n,))
    minimal = max(1, (n.bit_length() + 7) // 8)
    size = draw(st.integers(minimal, max(minimal, 4)))
    return bytes((0x80 | size,)) + n.to_bytes(size, "big")


@st.composite
def bad_length(draw: st.DrawFn) -> bytes:
    """Lengths a parser must refuse or bound: indefinite, huge, too many length bytes."""
    return draw(
        st.sampled_from(
            (
                b"\x80",
                b"\x84\xff\xff\xff\xff",
                b"\x84\x7f\xff\xff\xff",
                b"\x85\x01\x00\x00\x00\x00",
                b"\x88" + b"\xff" * 8,
                b"\xff",
                b"\x81",
            )
        )
    )


def tlv(tag: int, content: st.SearchStrategy[bytes]) -> st.SearchStrategy[bytes]:
    return content.flatmap(lambda c: ber_length(len(c)).map(lambda n: bytes((tag,)) + n + c))


def integer_content() -> st.SearchStrategy[bytes]:
    """INTEGER contents: normal, empty, zero, negative, padded, oversized and huge."""
    return st.one_of(
        st.binary(min_size=1, max_size=9),
        st.just(b""),
        st.just(b"\x00"),
        st.binary(min_size=1, max_size=4).map(lambda b: b"\x80" + b),
        st.binary(min_size=1, max_size=8).map(lambda b: b"\x00" * 5 + b),
        st.integers(33, 40).map(lambda n: b"\x01" * n),
        # more than 4300 decimal digits: int -> str refuses it (CPython's conversion limit)
        st.sampled_from((b"\x7f" * 1800, b"\xff" * 1800, b"\x01" + b"\x00" * 2000)),
    )


def der_signatures() -> st.SearchStrategy[bytes]:
    """ECDSA-signature-shaped DER: SEQUENCE of (usually) two INTEGERs, each possibly bad."""
    integer = tlv(0x02, integer_content())
    return st.one_of(
        tlv(0x30, st.lists(integer, min_size=0, max_size=3).map(b"".join)),
        st.tuples(integer, integer).map(lambda p: b"\x30" + b"\x84\xff\xff\xff\xff" + b"".join(p)),
        bad_length().map(lambda n: b"\x30" + n + b"\x02\x01\x01\x02\x01\x01"),
        st.integers(1, 3000).map(lambda depth: b"\x30\x80" * depth),
        st.integers(1, 200).map(nested_sequences),
    )


def nested_sequences(depth: int) -> bytes:
    """``depth`` SEQUENCEs inside each other, definite lengths, an INTEGER at the core."""
    inner = b"\x02\x01\x01"
    for _ in range(depth):
        n = len(inner)
        inner = b"\x30" + (bytes((n,)) if n < 0x80 else b"\x82" + n.to_bytes(2, "big")) + inner
    return inner


# -- GBCS General-Signing APDUs built field by field ------------------------------------


def axdr(value: st.SearchStrategy[bytes]) -> st.SearchStrategy[bytes]:
    """An A-XDR length-prefixed octet string (the header fields of a General-Signing APDU)."""
    return value.flatmap(lambda c: ber_length(len(c)).map(lambda n: n + c))


def _rarely_broken(draw: st.DrawFn, good: bytes) -> bytes:
    """``good`` most of the time; one time in twelve a value of another size or content."""
    if draw(st.integers(0, 11)) != 5:  # not 0: hypothesis favours boundary values
        return good
    return draw(st.binary(max_size=len(good) + 3))


@st.composite
def general_signing(draw: st.DrawFn, cra: int, code: int, content: bytes) -> bytes:
    """``DF`` + header fields + content, each field usually right-sized, rarely not."""
    counter = draw(st.binary(min_size=8, max_size=8))
    date_time = draw(st.sampled_from((b"", b"\x0c" * 12)))
    values = (
        _rarely_broken(draw, bytes((cra,)) + counter),
        _rarely_broken(draw, bytes.fromhex("90B3D51F30010000")),
        _rarely_broken(draw, bytes.fromhex("00DB1234567890A0")),
        _rarely_broken(draw, date_time),
        _rarely_broken(draw, code.to_bytes(2, "big")),
        content,
    )
    return b"\xdf" + b"".join(draw(axdr(st.just(v))) for v in values)


@st.composite
def pre_commands(draw: st.DrawFn) -> bytes:
    """CS06 pre-commands (``SEQUENCE { hash, counter, [time] }``) with hostile fields."""
    parts = [
        draw(tlv(0x04, st.one_of(st.binary(min_size=32, max_size=32), st.binary(max_size=40)))),
        draw(tlv(0x02, integer_content())),
    ]
    if draw(st.booleans()):
        time = st.one_of(
            st.just(b"20300115090000Z"),
            st.just(b"99991231235959Z"),
            st.binary(max_size=20),
            st.text("0123456789Z", min_size=15, max_size=15).map(str.encode),
            st.just(b"\xff" * 3000),
        )
        parts.append(draw(tlv(draw(st.sampled_from((0x18, 0x17, 0x04))), time)))
    content = draw(tlv(0x30, st.just(b"".join(parts))))
    apdu = draw(general_signing(0x01, 0x0012, content))
    tail = draw(st.sampled_from((b"", b"\x00", b"\x40" + b"\x11" * 64, b"\x01")))
    return apdu + tail


@st.composite
def trust_anchor_payloads(draw: st.DrawFn) -> bytes:
    """6.24.1 responses: roles and cells with hostile INTEGERs, BIT STRINGs and OCTET STRINGs."""

    def cell() -> st.SearchStrategy[bytes]:
        usage = tlv(
            0x03, st.one_of(st.sampled_from((b"\x07\x80", b"\x03\x08")), st.binary(max_size=4))
        )
        cell_usage = st.one_of(st.just(b""), tlv(0x02, integer_content()))
        octets = tlv(0x04, st.one_of(st.binary(min_size=8, max_size=8), st.binary(max_size=10)))
        parts = st.tuples(usage, cell_usage, octets, octets).map(b"".join)
        return tlv(0x30, parts)

    role = st.tuples(
        tlv(0x02, st.one_of(st.sampled_from((b"\x02", b"\x03")), integer_content())),
        tlv(0x0A, integer_content()),
        tlv(0x02, integer_content()),
        tlv(0x30, st.lists(cell(), max_size=3).map(b"".join)),
    ).map(b"".join)
    content = draw(tlv(0x30, st.lists(tlv(0x30, role), max_size=2).map(b"".join)))
    code = draw(st.sampled_from((0x0008, 0x011B)))
    apdu = draw(general_signing(0x02, code, content)) + draw(
        st.sampled_from((b"\x00", b"\x40" + b"\x22" * 64, b""))
    )
    if not draw(st.booleans()):
        return apdu
    inner = b"\x11" + b"\x00" * 4 + apdu + b"\x33" * 12
    envelope = b"\xdd" + b"\x00" * 5 + b"\x00" + draw(ber_length(len(inner))) + inner
    return envelope


# -- text inputs ------------------------------------------------------------------------


def eui_texts() -> st.SearchStrategy[str]:
    hexes = st.binary(min_size=8, max_size=8)
    return st.one_of(
        hexes.map(lambda b: b.hex("-")),
        hexes.map(lambda b: b.hex(":")),
        hexes.map(bytes.hex),
        st.text(alphabet="0123456789abcdefABCDEF-: \t\n", max_size=30),
        st.text(max_size=40),
        st.text(min_size=23, max_size=23).map(
            lambda t: "".join("-" if i % 3 == 2 else c for i, c in enumerate(t))
        ),
    )


def request_id_texts() -> st.SearchStrategy[str]:
    counter = st.one_of(
        st.integers(0, 2**64 + 5).map(str),
        st.text(alphabet="0123456789+-_ ", max_size=25),
        st.just("9" * 5000),
    )
    return st.one_of(
        st.tuples(eui_texts(), eui_texts(), counter).map(":".join),
        st.text(max_size=80),
        st.just("x" * 10_000),
    )


def base64_of(data: st.SearchStrategy[bytes]) -> st.SearchStrategy[str]:
    return data.map(lambda b: base64.b64encode(b).decode("ascii"))


def property_settings(examples: int = 200) -> settings:
    """The suite's bound: ``examples`` per property (SIGNER_PROPERTY_EXAMPLES overrides),
    no deadline (a shared CI core is slow), no example database written into the tree."""
    return settings(
        max_examples=int(os.environ.get("SIGNER_PROPERTY_EXAMPLES", examples)),
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
