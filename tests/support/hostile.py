"""Pathological values for every bytes and string field of the API: what an attacker or a
broken client sends. Each is (name, value); names become test IDs."""

from __future__ import annotations

import random

from tests.support.constants import RTDS_DEVICE, SUPPLIER_EUI
from tests.support.independent import cs06_pre_command

TEN_MB = 10 * 1024 * 1024
#: the CS06 header before the content length: DF 09, CRA flag, counter, EUIs, message code
_HEADER = 33


def der(tag: int, body: bytes) -> bytes:
    """A DER TLV with a definite length."""
    n = len(body)
    if n < 0x80:
        return bytes([tag, n]) + body
    size = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(size)]) + size + body


def nested_sequences(depth: int) -> bytes:
    out = b"\x05\x00"
    for _ in range(depth):
        out = der(0x30, out)
    return out


def _pre_command(counter: int = 1) -> bytes:
    return cs06_pre_command(
        originator=SUPPLIER_EUI, recipient=RTDS_DEVICE, counter=counter, firmware_hash=b"\x11" * 32
    )


def hostile_bytes() -> list[tuple[str, bytes]]:
    rnd = random.Random(13)
    good = _pre_command()
    return [
        ("empty", b""),
        ("one zero byte", b"\x00"),
        ("10MB of 0xFF", b"\xff" * TEN_MB),
        ("random 4KB", rnd.randbytes(4096)),
        ("random 64 bytes", rnd.randbytes(64)),
        ("DER INTEGER of 1000 bytes", der(0x30, der(0x02, b"\x7f" * 1000) + der(0x02, b"\x01"))),
        ("DER negative INTEGERs", der(0x30, der(0x02, b"\xff") + der(0x02, b"\x80" + b"\0" * 31))),
        ("DER zero-length INTEGERs", der(0x30, der(0x02, b"") + der(0x02, b""))),
        ("DER length 2^32-1", b"\x30\x84\xff\xff\xff\xff\x02\x01\x01"),
        ("DER 9-byte length", b"\x30\x89" + b"\xff" * 9 + b"\x02\x01\x01"),
        ("DER 127-byte length", b"\x30\xff" + b"\xff" * 127),
        ("DER indefinite length", b"\x30\x80\x02\x01\x01\x00\x00"),
        ("DER high tag number", b"\x1f" + b"\xff" * 64 + b"\x01\x00"),
        ("DER 20000 nested SEQUENCEs", nested_sequences(20000)),
        ("DER 200 nested SEQUENCEs", nested_sequences(200)),
        ("DER truncated", der(0x30, der(0x02, b"\x01" * 40))[:-10]),
        ("CS06 truncated", good[: len(good) // 2]),
        ("CS06 with a 1MB tail", good + b"\x00" * (1 << 20)),
        ("CS06 counter of 300 bytes", _huge_counter_pre_command()),
        ("CS06 length 0xFF", good[:_HEADER] + b"\xff" + good[_HEADER + 1 :]),
        ("CS06 unknown general-ciphering tag", b"\xdf\x09\x01" + b"\xff" * 40),
        ("64 non-hex characters", b"z" * 64),
        ("63 hex digits", b"a" * 63),
        ("hex with spaces", b"00 11 22 33" * 8),
        ("XML not well-formed", b"<a><b></a>"),
        ("XML nested 100000 deep", b"<a>" * 100000),
        ("XML entity expansion", _lol()),
        ("XML not UTF-8", b"<?xml version='1.0' encoding='utf-8'?><a>\xff\xfe</a>"),
        ("XML DUIS root, empty body", _empty_duis()),
        ("PEM garbage", b"-----BEGIN CERTIFICATE-----\n" + b"A" * 5000 + b"\n-----END"),
    ]


def hostile_strings() -> list[tuple[str, str]]:
    return [
        ("empty", ""),
        ("spaces", "   "),
        ("NUL", "\x00"),
        ("control characters", "\x01\x02\x1b[31m\n\r"),
        ("EUI of 1000 characters", "00-DB-" + "12-" * 331 + "A0"),
        ("1MB string", "x" * (1 << 20)),
        ("EUI with a trailing garbage", RTDS_DEVICE + "-FF"),
        ("EUI odd hex", "0DB123456789" + "0A0"),
        ("non-hex 64", "z" * 64),
        ("hex 63", "a" * 63),
        ("hex 65", "a" * 65),
        ("hex 64 with unicode digits", "\u0661" * 64),
        ("unicode", "ü€𝄞" * 100),
        ("right-to-left override", "\u202e0A-09-87-65-43-21-BD-00"),
        ("huge number", "9" * 5000),
        ("negative number", "-1"),
        ("format string", "%s%s%n{0}{__class__}"),
        ("path traversal", "../../../../etc/passwd"),
        ("XML metacharacters", "<a>&amp;</a>]]>"),
    ]


def _huge_counter_pre_command() -> bytes:
    """The CS06 layout (header up to the message code, then length and content) with a
    300-byte counter INTEGER, its length in long form."""
    body = der(0x30, der(0x04, b"\x11" * 32) + der(0x02, b"\x01" * 300))
    return _pre_command()[:_HEADER] + der(0x00, body)[1:]


def _lol() -> bytes:
    ents = "".join(f'<!ENTITY e{i} "{f"&e{i - 1};" * 10}">' for i in range(1, 10))
    return f'<?xml version="1.0"?><!DOCTYPE a [<!ENTITY e0 "lol">{ents}]><a>&e9;</a>'.encode()


def _empty_duis() -> bytes:
    return (
        b'<?xml version="1.0"?><sr:Response '
        b'xmlns:sr="http://www.dccinterface.co.uk/ServiceUserGateway"/>'
    )
