"""Trust anchor cells from the GBCS response to SR 6.24.1 Retrieve Device Security Credentials.

The device's Supplier digital-signing cell names the only key it will accept an ARP signature
from, so this is where "which key signs for this device" comes from. The payload layout, and
why its MAC is not checked here, are in docs/trust-anchor.md.
"""

from __future__ import annotations

import binascii
import enum
import re
from dataclasses import dataclass

from signer.errors import FormatError
from signer.gbcs import _ber
from signer.gbcs.eui import Eui64
from signer.gbcs.general_signing import CRA_NAMES, CRA_RESPONSE, TAG_GENERAL_SIGNING, read_header
from signer.gbcs.roles import RemotePartyRole

FIELD = "gbcs_payload"

TAG_GENERAL_CIPHERING = 0xDD
SECURITY_CONTROL_MAC_ONLY = 0x11  # authentication only, security suite 1
MAC_LENGTH = 12

# GBCS message codes of the 6.24.1 responses seen in the RTDS vectors (CS02a, CS02f).
SECURITY_CREDENTIALS_RESPONSE_CODES = {0x0008: "CS02a", 0x011B: "CS02f"}

_KEY_USAGE_BITS = {0: "digitalSignature", 4: "keyAgreement"}


class KeyUsage(enum.Enum):
    DIGITAL_SIGNATURE = "digitalSignature"
    KEY_AGREEMENT = "keyAgreement"


class CellUsage(enum.IntEnum):
    MANAGEMENT = 0
    PREPAYMENT_TOP_UP = 1


@dataclass(frozen=True)
class TrustAnchorCell:
    role: int
    key_usage: KeyUsage
    cell_usage: CellUsage
    subject_eui: Eui64
    ski: bytes


@dataclass(frozen=True)
class RoleCredentials:
    role: int
    status: int
    sequence_number: int
    cells: tuple[TrustAnchorCell, ...]


@dataclass(frozen=True)
class DeviceCredentials:
    """The device's trust anchor cells; ``device`` is the responding device (the originator)."""

    device: Eui64
    roles: tuple[RoleCredentials, ...]
    recipient: Eui64 | None = None
    originator_counter: int | None = None
    message_code: int | None = None

    @property
    def cells(self) -> tuple[TrustAnchorCell, ...]:
        return tuple(cell for role in self.roles for cell in role.cells)

    def supplier_signing_cell(self) -> TrustAnchorCell | None:
        """The cell whose SKI picks the key for this device's ARP signatures."""
        for cell in self.cells:
            if (
                cell.role == RemotePartyRole.SUPPLIER
                and cell.key_usage is KeyUsage.DIGITAL_SIGNATURE
                and cell.cell_usage is CellUsage.MANAGEMENT
            ):
                return cell
        return None


_KNOWN_ROLES = frozenset(int(role) for role in RemotePartyRole)
_KNOWN_CELL_USAGES = frozenset(int(usage) for usage in CellUsage)
_HEX_TEXT = re.compile(rb"[0-9A-Fa-f]*")
_WHITESPACE = re.compile(rb"\s+")


def decode_payload_text(text: str | bytes) -> bytes:
    """Turn a payload as people and DUIS carry it (hex, or base64) into bytes.

    Text made only of hex digits is read as hex. That cannot misread a real payload: base64 of
    ``DD 00 ...`` or ``DF 09 ...`` begins ``3Q`` or ``3w``, which are not hex.
    """
    raw = text.encode("ascii", "replace") if isinstance(text, str) else bytes(text)
    compact = _WHITESPACE.sub(b"", raw)
    if not compact:
        raise FormatError("payload text is empty", field=FIELD, offset=0)
    if len(compact) % 2 == 0 and _HEX_TEXT.fullmatch(compact):
        return bytes.fromhex(compact.decode("ascii"))
    try:
        return binascii.a2b_base64(compact, strict_mode=True)
    except binascii.Error as exc:
        raise FormatError(f"payload text is neither hex nor base64: {exc}", field=FIELD) from None


def parse_security_credentials_response(data: bytes, *, field: str = FIELD) -> DeviceCredentials:
    """Parse a 6.24.1 response, with or without its MAC'd General-Ciphering envelope."""
    if not data:
        raise FormatError("payload is empty", field=field, offset=0)
    if data[0] == TAG_GENERAL_CIPHERING:
        start, end = _unwrap_general_ciphering(data, field=field)
    elif data[0] == TAG_GENERAL_SIGNING:
        start, end = 0, len(data)
    else:
        raise FormatError(
            f"first byte 0x{data[0]:02X} is neither 0xDD (General-Ciphering) nor 0xDF "
            "(General-Signing)",
            field=field,
            offset=0,
        )
    return _parse_general_signing(data, start, end, field=field)


def _unwrap_general_ciphering(data: bytes, *, field: str) -> tuple[int, int]:
    """Return the span of the General-Signing APDU inside a MAC-only General-Ciphering APDU."""
    limit = len(data)
    pos = 1
    for what in (
        "transaction-id",
        "originator-system-title",
        "recipient-system-title",
        "date-time",
        "other-information",
    ):
        _, pos = _ber.length_prefixed(
            data, pos, limit, field=field, what=f"General-Ciphering {what}"
        )
    if pos >= limit:
        raise FormatError("General-Ciphering truncated before key-info", field=field, offset=pos)
    if data[pos] != 0x00:
        raise FormatError(
            f"General-Ciphering key-info present (0x{data[pos]:02X}): an encrypted payload "
            "cannot be read here",
            field=field,
            offset=pos,
        )
    content_start, content_end = _ber.length_prefixed(
        data, pos + 1, limit, field=field, what="General-Ciphering ciphered-content"
    )
    if content_end != limit:
        raise FormatError(
            f"{limit - content_end} trailing bytes after the General-Ciphering APDU",
            field=field,
            offset=content_end,
        )
    if content_end - content_start < 5 + MAC_LENGTH + 1:
        raise FormatError(
            "General-Ciphering ciphered-content too short for security header, APDU and MAC",
            field=field,
            offset=content_start,
        )
    security_control = data[content_start]
    if security_control != SECURITY_CONTROL_MAC_ONLY:
        raise FormatError(
            f"security control 0x{security_control:02X}; only 0x{SECURITY_CONTROL_MAC_ONLY:02X} "
            "(authenticated, not encrypted) can be read",
            field=field,
            offset=content_start,
        )
    apdu_start = content_start + 5  # security control + 4-byte invocation counter
    if data[apdu_start] != TAG_GENERAL_SIGNING:
        raise FormatError(
            f"inner APDU starts with 0x{data[apdu_start]:02X}, expected 0xDF (General-Signing)",
            field=field,
            offset=apdu_start,
        )
    return apdu_start, content_end - MAC_LENGTH


def _refuse_cra(cra: int) -> str | None:
    if cra == CRA_RESPONSE:
        return None
    name = CRA_NAMES.get(cra, "unknown")
    return f"CRA flag 0x{cra:02X} ({name}); a security credentials response has 0x02"


def _refuse_message_code(code: int) -> str | None:
    if code in SECURITY_CREDENTIALS_RESPONSE_CODES:
        return None
    known = ", ".join(
        f"0x{c:04X} ({name})" for c, name in SECURITY_CREDENTIALS_RESPONSE_CODES.items()
    )
    return f"message code 0x{code:04X} is not a 6.24.1 response ({known})"


def _parse_general_signing(data: bytes, start: int, end: int, *, field: str) -> DeviceCredentials:
    header = read_header(
        data,
        start,
        end,
        field=field,
        size_error_at="before_content",
        refuse_cra=_refuse_cra,
        refuse_message_code=_refuse_message_code,
    )
    pos = header.content_end
    if pos >= end:
        raise FormatError(
            "General-Signing truncated before its signature field", field=field, offset=pos
        )
    if data[pos] == 0x00:
        pos += 1
    elif data[pos] == 0x40 and pos + 65 <= end:
        pos += 65  # a device signature we cannot check without the device's key; ignored
    else:
        raise FormatError(
            f"signature field starts 0x{data[pos]:02X}, expected 0x00 (none) or 0x40 + 64 bytes",
            field=field,
            offset=pos,
        )
    if pos != end:
        raise FormatError(
            f"{end - pos} unexpected bytes after the General-Signing APDU", field=field, offset=pos
        )
    roles = _parse_content(data, header.content_start, header.content_end, field=field)
    return DeviceCredentials(
        device=header.originator,
        roles=roles,
        recipient=header.recipient,
        originator_counter=header.originator_counter,
        message_code=header.message_code,
    )


def _parse_content(data: bytes, start: int, end: int, *, field: str) -> tuple[RoleCredentials, ...]:
    outer = _ber.expect(data, start, end, _ber.TAG_SEQUENCE, field=field, what="content")
    if outer.end != end:
        raise FormatError(
            f"{end - outer.end} bytes after the content SEQUENCE", field=field, offset=outer.end
        )
    roles: list[RoleCredentials] = []
    seen: dict[tuple[int, KeyUsage, CellUsage], int] = {}
    pos = outer.start
    while pos < outer.end:
        role_tlv = _ber.expect(
            data, pos, outer.end, _ber.TAG_SEQUENCE, field=field, what="remote party details"
        )
        roles.append(_parse_role(data, role_tlv, seen, field=field))
        pos = role_tlv.end
    return tuple(roles)


def _parse_role(
    data: bytes,
    tlv: _ber.Tlv,
    seen: dict[tuple[int, KeyUsage, CellUsage], int],
    *,
    field: str,
) -> RoleCredentials:
    role_tlv = _ber.expect(
        data, tlv.start, tlv.end, _ber.TAG_INTEGER, field=field, what="remotePartyRole"
    )
    role = _ber.integer_value(data, role_tlv, field=field, what="remotePartyRole")
    if role not in _KNOWN_ROLES:
        raise FormatError(
            f"unknown remote party role {role} (0x{role & 0xFF:02X})",
            field=field,
            offset=role_tlv.offset,
        )
    role = RemotePartyRole(role)
    status_tlv = _ber.expect(
        data, role_tlv.end, tlv.end, _ber.TAG_ENUMERATED, field=field, what="status"
    )
    status = _ber.unsigned_value(data, status_tlv, field=field, what="status")
    seq_tlv = _ber.expect(
        data, status_tlv.end, tlv.end, _ber.TAG_INTEGER, field=field, what="sequenceNumber"
    )
    sequence_number = _ber.unsigned_value(data, seq_tlv, field=field, what="sequenceNumber")
    cells_tlv = _ber.expect(
        data, seq_tlv.end, tlv.end, _ber.TAG_SEQUENCE, field=field, what="trust anchor cells"
    )
    if cells_tlv.end != tlv.end:
        raise FormatError(
            "unexpected elements after the trust anchor cells", field=field, offset=cells_tlv.end
        )
    cells: list[TrustAnchorCell] = []
    pos = cells_tlv.start
    while pos < cells_tlv.end:
        cell_tlv = _ber.expect(
            data, pos, cells_tlv.end, _ber.TAG_SEQUENCE, field=field, what="trust anchor cell"
        )
        cell = _parse_cell(data, cell_tlv, role, field=field)
        key = (role, cell.key_usage, cell.cell_usage)
        if key in seen:
            raise FormatError(
                f"second {cell.key_usage.value}/{cell.cell_usage.name.lower()} cell for role "
                f"{role} (first at offset {seen[key]})",
                field=field,
                offset=cell_tlv.offset,
            )
        seen[key] = cell_tlv.offset
        cells.append(cell)
        pos = cell_tlv.end
    return RoleCredentials(
        role=role, status=status, sequence_number=sequence_number, cells=tuple(cells)
    )


def _parse_cell(data: bytes, tlv: _ber.Tlv, role: int, *, field: str) -> TrustAnchorCell:
    usage_tlv = _ber.expect(
        data, tlv.start, tlv.end, _ber.TAG_BIT_STRING, field=field, what="keyUsage"
    )
    bits = _ber.bit_string_bits(data, usage_tlv, field=field, what="keyUsage")
    if len(bits) != 1 or not bits <= _KEY_USAGE_BITS.keys():
        raise FormatError(
            f"keyUsage sets bits {sorted(bits)}; exactly one of digitalSignature (0) or "
            "keyAgreement (4) is allowed",
            field=field,
            offset=usage_tlv.offset,
        )
    key_usage = KeyUsage(_KEY_USAGE_BITS[next(iter(bits))])
    pos = usage_tlv.end
    cell_usage = CellUsage.MANAGEMENT
    if pos < tlv.end and data[pos] == _ber.TAG_INTEGER:
        usage = _ber.read_tlv(data, pos, tlv.end, field=field, what="cellUsage")
        value = _ber.integer_value(data, usage, field=field, what="cellUsage")
        if value not in _KNOWN_CELL_USAGES:
            raise FormatError(
                f"unknown cellUsage {value} (0 management, 1 prepayment top-up)",
                field=field,
                offset=usage.offset,
            )
        cell_usage = CellUsage(value)
        pos = usage.end
    octets: list[bytes] = []
    for what in ("subject EUI-64", "subject key identifier"):
        item = _ber.expect(data, pos, tlv.end, _ber.TAG_OCTET_STRING, field=field, what=what)
        if item.length != 8:
            raise FormatError(
                f"{what} is {item.length} bytes, expected 8", field=field, offset=item.offset
            )
        octets.append(bytes(data[item.start : item.end]))
        pos = item.end
    if pos != tlv.end:
        raise FormatError(
            "unexpected elements at the end of a trust anchor cell", field=field, offset=pos
        )
    return TrustAnchorCell(
        role=role,
        key_usage=key_usage,
        cell_usage=cell_usage,
        subject_eui=Eui64(octets[0]),
        ski=octets[1],
    )
