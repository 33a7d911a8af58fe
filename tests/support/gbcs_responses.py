"""SR 6.24.1 security credentials responses made here, one per device, for tests and benches.

Each is made as the published CS02a response is (a General-Signing APDU from the device, no
device signature, two remote parties, five trust anchor cells: the Supplier's digital-signing,
key-agreement and prepayment cells, the Network Operator's two); the parser reads it back
(tests/cli/test_bulk_devices.py checks a few against the parse).
"""

from __future__ import annotations

from collections.abc import Sequence

SUPPLIER = bytes.fromhex("90B3D51F30010000")
NETWORK_OPERATOR = bytes.fromhex("90B3D51F30020000")
ACCESS_CONTROL_BROKER = bytes.fromhex("90B3D51F30000002")
Z1_SKI = bytes.fromhex("44899792D196F4B8")  # Z1-supplier-ds: the Supplier cell of every one


def _length(n: int) -> bytes:
    if n < 0x80:
        return bytes((n,))
    size = (n.bit_length() + 7) // 8
    return bytes((0x80 | size,)) + n.to_bytes(size, "big")


def _tlv(tag: int, content: bytes) -> bytes:
    return bytes((tag,)) + _length(len(content)) + content


def _prefixed(value: bytes) -> bytes:  # A-XDR octet string: length, then the bytes
    return _length(len(value)) + value


def _cell(usage_bits: bytes, subject: bytes, ski: bytes, cell_usage: int | None = None) -> bytes:
    parts = _tlv(0x03, usage_bits)
    if cell_usage is not None:
        parts += _tlv(0x02, bytes((cell_usage,)))
    return _tlv(0x30, parts + _tlv(0x04, subject) + _tlv(0x04, ski))


def _role(role: int, sequence: int, cells: Sequence[bytes]) -> bytes:
    return _tlv(
        0x30,
        _tlv(0x02, bytes((role,)))
        + _tlv(0x0A, b"\x00")
        + _tlv(0x02, bytes((sequence,)))
        + _tlv(0x30, b"".join(cells)),
    )


DS, KA = b"\x07\x80", b"\x03\x08"  # keyUsage digitalSignature, keyAgreement


def response(n: int) -> bytes:
    """Device ``n``'s 6.24.1 response (CS02a, General-Signing, no device signature); its
    EUI is ``device_eui(n)``."""
    device = bytes.fromhex(device_eui(n).replace("-", ""))
    ski = (n * 2654435761 % (1 << 64)).to_bytes(8, "big")  # distinct per device
    content = _tlv(
        0x30,
        _role(
            0x02,
            0,
            [
                _cell(DS, SUPPLIER, Z1_SKI),
                _cell(KA, SUPPLIER, ski),
                _cell(KA, SUPPLIER, ski[::-1], cell_usage=1),
            ],
        )
        + _role(0x03, 1, [_cell(DS, NETWORK_OPERATOR, ski), _cell(KA, NETWORK_OPERATOR, ski)]),
    )
    header = (
        _prefixed(b"\x02" + n.to_bytes(8, "big"))
        + _prefixed(device)
        + _prefixed(ACCESS_CONTROL_BROKER)
        + _prefixed(b"")
        + _prefixed(b"\x00\x08")
    )
    return b"\xdf" + header + _prefixed(content) + b"\x00"


def device_eui(n: int) -> str:
    """The EUI-64 of device ``n``, dashed."""
    return (0x00DB000000000000 + n).to_bytes(8, "big").hex("-").upper()
