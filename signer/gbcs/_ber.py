"""A small lenient BER reader for GBCS payloads.

GBCS devices emit non-minimal DER lengths (``82 00 9F``), which strict DER parsers refuse, and
errors must carry the byte offset inside the caller's whole payload. So this reader works on
the original buffer with absolute offsets and never copies it.
"""

from __future__ import annotations

from dataclasses import dataclass

from signer.errors import FormatError

TAG_INTEGER = 0x02
TAG_BIT_STRING = 0x03
TAG_OCTET_STRING = 0x04
TAG_ENUMERATED = 0x0A
TAG_SEQUENCE = 0x30

_TAG_NAMES = {
    TAG_INTEGER: "INTEGER",
    TAG_BIT_STRING: "BIT STRING",
    TAG_OCTET_STRING: "OCTET STRING",
    TAG_ENUMERATED: "ENUMERATED",
    TAG_SEQUENCE: "SEQUENCE",
}


def tag_name(tag: int) -> str:
    return _TAG_NAMES.get(tag, f"tag 0x{tag:02X}")


@dataclass(frozen=True, slots=True)
class Tlv:
    """Where one element sits in the buffer; content is ``buf[start:end]``."""

    tag: int
    offset: int
    start: int
    end: int

    @property
    def length(self) -> int:
        return self.end - self.start


def read_length(buf: bytes, pos: int, limit: int, *, field: str, what: str) -> tuple[int, int]:
    """Read a definite BER length at ``pos``; return (length, position after it).

    Long forms with leading zero bytes are accepted on purpose (GBCS writes them).
    """
    if pos >= limit:
        raise FormatError(f"{what}: length missing, data ends", field=field, offset=pos)
    first = buf[pos]
    if first < 0x80:
        return first, pos + 1
    count = first & 0x7F
    if count == 0:
        raise FormatError(f"{what}: indefinite length is not allowed", field=field, offset=pos)
    if count > 4:
        raise FormatError(
            f"{what}: length uses {count} bytes, at most 4 supported", field=field, offset=pos
        )
    if pos + 1 + count > limit:
        raise FormatError(f"{what}: length truncated", field=field, offset=pos)
    return int.from_bytes(buf[pos + 1 : pos + 1 + count], "big"), pos + 1 + count


def read_tlv(buf: bytes, pos: int, limit: int, *, field: str, what: str) -> Tlv:
    """Read one element that must end at or before ``limit``."""
    if pos >= limit:
        raise FormatError(f"{what}: element missing, data ends", field=field, offset=pos)
    tag = buf[pos]
    if tag & 0x1F == 0x1F:
        raise FormatError(
            f"{what}: multi-byte tag 0x{tag:02X} is not supported", field=field, offset=pos
        )
    length, start = read_length(buf, pos + 1, limit, field=field, what=what)
    end = start + length
    if end > limit:
        raise FormatError(
            f"{what}: {tag_name(tag)} of {length} bytes overruns its container "
            f"({limit - start} bytes left)",
            field=field,
            offset=pos,
        )
    return Tlv(tag, pos, start, end)


def expect(buf: bytes, pos: int, limit: int, tag: int, *, field: str, what: str) -> Tlv:
    """Read one element and insist on its tag."""
    tlv = read_tlv(buf, pos, limit, field=field, what=what)
    if tlv.tag != tag:
        raise FormatError(
            f"{what}: expected {tag_name(tag)}, found {tag_name(tlv.tag)}",
            field=field,
            offset=pos,
        )
    return tlv


#: The widest INTEGER a GBCS field holds: a 64-bit unsigned counter and its sign byte.
MAX_INTEGER_BITS = 72


def integer_value(
    buf: bytes, tlv: Tlv, *, field: str, what: str, max_bits: int = MAX_INTEGER_BITS
) -> int:
    """Decode a two's-complement INTEGER/ENUMERATED content (leading padding tolerated).

    Values wider than ``max_bits`` are refused here, so no caller ever formats or compares
    an attacker-sized number (CPython refuses to print one of more than 4300 digits).
    """
    if tlv.length == 0:
        raise FormatError(f"{what}: empty integer", field=field, offset=tlv.offset)
    value = int.from_bytes(buf[tlv.start : tlv.end], "big", signed=True)
    if value.bit_length() > max_bits:
        raise FormatError(
            f"{what}: INTEGER of {value.bit_length()} bits, at most {max_bits} allowed",
            field=field,
            offset=tlv.offset,
        )
    return value


def unsigned_value(buf: bytes, tlv: Tlv, *, field: str, what: str) -> int:
    value = integer_value(buf, tlv, field=field, what=what)
    if value < 0:
        raise FormatError(f"{what}: negative value {value}", field=field, offset=tlv.offset)
    return value


def bit_string_bits(buf: bytes, tlv: Tlv, *, field: str, what: str) -> frozenset[int]:
    """Return the set bit numbers of a BIT STRING, bit 0 being the first byte's MSB."""
    if tlv.length == 0:
        raise FormatError(f"{what}: empty BIT STRING", field=field, offset=tlv.offset)
    unused = buf[tlv.start]
    if unused > 7 or (unused and tlv.length == 1):
        raise FormatError(
            f"{what}: BIT STRING has invalid unused-bit count {unused}",
            field=field,
            offset=tlv.start,
        )
    bits: set[int] = set()
    for index in range(tlv.start + 1, tlv.end):
        byte = buf[index]
        for bit in range(8):
            if byte & (0x80 >> bit):
                bits.add((index - tlv.start - 1) * 8 + bit)
    total = (tlv.length - 1) * 8 - unused
    if any(bit >= total for bit in bits):
        raise FormatError(
            f"{what}: BIT STRING sets bits inside its {unused} unused bits",
            field=field,
            offset=tlv.start,
        )
    return frozenset(bits)


def length_prefixed(data: bytes, pos: int, limit: int, *, field: str, what: str) -> tuple[int, int]:
    """Read a length-prefixed (A-XDR) octet string; return (content start, content end)."""
    length, start = read_length(data, pos, limit, field=field, what=what)
    if start + length > limit:
        raise FormatError(
            f"{what}: {length} bytes announced, {limit - start} left", field=field, offset=pos
        )
    return start, start + length
