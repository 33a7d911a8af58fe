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
from itertools import chain

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
        roles = self.roles
        if len(roles) == 1:
            return roles[0].cells
        return tuple(chain.from_iterable([role.cells for role in roles]))

    def supplier_signing_cell(self) -> TrustAnchorCell | None:
        """The cell whose SKI picks the key for this device's ARP signatures."""
        for role in self.roles:
            for cell in role.cells:
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
    return _read_common_response(data) or _read_response(data, field=field)


def _read_response(data: bytes, *, field: str) -> DeviceCredentials:
    """The general reader: any layout GBCS allows, every fault named at its offset."""
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


# -- the fast reader ----------------------------------------------------------------------
#
# A bulk import parses one response per device (100,000 in one `signer devices import`), and
# the general reader above spends ~65 us on each, most of it making a Tlv per element and
# checking what it cannot meet in a well-formed response. The reader below walks the same
# bytes with the same checks in place, making nothing but the result; anything it does not
# recognise as well-formed it hands to the general reader (returns None), which then accepts
# or names the fault exactly as before. So it never raises, and it accepts only what the
# general reader accepts and returns what it would (tests/gbcs/test_fast_trust_anchor.py
# holds the two to each other on valid, built and mutated inputs). Measured: ~12 against
# ~65 us for the five-cell response of bench/devices_import.py.

_new, _set = object.__new__, object.__setattr__

#: keyUsage BIT STRINGs of one content byte that the general reader takes for exactly one
#: of its two bits: every unused-bit count that leaves the bit inside the string
_FAST_KEY_USAGES: dict[bytes, tuple[KeyUsage, int]] = {
    bytes((_ber.TAG_BIT_STRING, 2, unused, 0x80 >> bit)): (KeyUsage(name), bit)
    for bit, name in _KEY_USAGE_BITS.items()
    for unused in range(8)
    if bit < 8 - unused
}
#: remotePartyRole INTEGERs of one content byte (non-negative) that name a known role
_FAST_ROLES: dict[int, RemotePartyRole] = {int(r): r for r in RemotePartyRole if r < 0x80}
_FAST_CELL_USAGES: dict[int, CellUsage] = {int(u): u for u in CellUsage}
_OCTETS_8 = bytes((_ber.TAG_OCTET_STRING, 8))
_CELL_USAGE_INTEGER = bytes((_ber.TAG_INTEGER, 1))
_EMPTY_ENVELOPE_FIELDS = bytes(6)  # five empty A-XDR fields, then key-info absent (0x00)
#: Eui64s met before (a fleet's cells name a handful of subjects, its responses one
#: recipient): shared, as they are immutable; bounded, whatever the input
_EUIS: dict[bytes, Eui64] = {}
_MAX_EUIS = 4096


def _fast_eui(value: bytes) -> Eui64:
    eui = _EUIS.get(value)
    if eui is None:
        if len(_EUIS) >= _MAX_EUIS:
            _EUIS.clear()
        eui = _new(Eui64)
        _set(eui, "value", value)  # 8 bytes: every caller slices exactly 8
        _EUIS[value] = eui
    return eui


def _fast_length(data: bytes, pos: int, limit: int) -> tuple[int, int]:
    """``_ber.read_length`` where it succeeds (length, position after it); (-1, 0) where
    it would raise."""
    if pos >= limit:
        return -1, 0
    first = data[pos]
    if first < 0x80:
        return first, pos + 1
    count = first & 0x7F
    if count == 0 or count > 4 or pos + 1 + count > limit:
        return -1, 0
    return int.from_bytes(data[pos + 1 : pos + 1 + count], "big"), pos + 1 + count


def _fast_unsigned(data: bytes, pos: int, limit: int, tag: int) -> tuple[int, int]:
    """A non-negative INTEGER/ENUMERATED of 1 to 9 content bytes (short-form length) at
    ``pos``, as ``_ber.unsigned_value`` reads it: (value, position after it), or (-1, 0)."""
    if pos + 3 > limit or data[pos] != tag:
        return -1, 0
    size = data[pos + 1]
    end = pos + 2 + size
    if not 1 <= size <= 9 or end > limit or data[pos + 2] >= 0x80:
        return -1, 0
    return int.from_bytes(data[pos + 2 : end], "big"), end


def _read_common_response(data: bytes) -> DeviceCredentials | None:
    """The response as devices send it, read in one pass, or None for the general reader.

    Recognised: a General-Signing APDU, bare or in a MAC-only General-Ciphering envelope
    whose five header fields are empty; its header in short-form lengths; cells of one
    keyUsage content byte, an optional one-byte cellUsage and two 8-byte OCTET STRINGs.
    Lengths elsewhere may be long-form (the RTDS vectors write ``82 00 9F``).
    """
    if type(data) is not bytes:
        return None
    n = len(data)
    if n < 34:
        return None
    if data[0] == TAG_GENERAL_CIPHERING:
        if data[1:7] != _EMPTY_ENVELOPE_FIELDS:
            return None
        length, pos = _fast_length(data, 7, n)
        if (
            length < 5 + MAC_LENGTH + 1
            or pos + length != n
            or data[pos] != SECURITY_CONTROL_MAC_ONLY
        ):
            return None
        data = data[pos + 5 : n - MAC_LENGTH]  # the General-Signing APDU
        n = len(data)
        if n < 34:
            return None
    if (
        data[0] != TAG_GENERAL_SIGNING
        or data[1] != 9  # transaction-id: CRA flag + originator counter
        or data[2] != CRA_RESPONSE
        or data[11] != 8  # originator-system-title
        or data[20] != 8  # recipient-system-title
    ):
        return None
    date_time_length = data[29]
    if date_time_length != 0 and date_time_length != 12:
        return None
    code_at = 30 + date_time_length  # other-information: a 2-byte message code
    if n < code_at + 4 or data[code_at] != 2:
        return None
    code = int.from_bytes(data[code_at + 1 : code_at + 3], "big")
    if code not in SECURITY_CREDENTIALS_RESPONSE_CODES:
        return None
    length, start = _fast_length(data, code_at + 3, n)
    end = start + length  # the content; then the signature field: 0x00, or 0x40 + 64 bytes
    if length < 0 or not (
        (end + 1 == n and data[end] == 0x00) or (end + 65 == n and data[end] == 0x40)
    ):
        return None
    # content: SEQUENCE OF remote party details, filling the content exactly
    if length < 2 or data[start] != _ber.TAG_SEQUENCE:
        return None
    length, pos = _fast_length(data, start + 1, end)
    if length < 0 or pos + length != end:
        return None
    roles: list[RoleCredentials] = []
    seen: set[int] = set()  # role, keyUsage bit and cellUsage of each cell, as one int
    management = CellUsage.MANAGEMENT
    key_usages, cell_usages = _FAST_KEY_USAGES, _FAST_CELL_USAGES
    while pos < end:
        if data[pos] != _ber.TAG_SEQUENCE:
            return None
        length, at = _fast_length(data, pos + 1, end)
        role_end = at + length
        if length < 3 or role_end > end or data[at] != _ber.TAG_INTEGER or data[at + 1] != 1:
            return None
        role_code = data[at + 2]
        role = _FAST_ROLES.get(role_code)
        if role is None:
            return None
        status, at = _fast_unsigned(data, at + 3, role_end, _ber.TAG_ENUMERATED)
        if status < 0:
            return None
        sequence_number, at = _fast_unsigned(data, at, role_end, _ber.TAG_INTEGER)
        if sequence_number < 0 or at >= role_end or data[at] != _ber.TAG_SEQUENCE:
            return None
        length, at = _fast_length(data, at + 1, role_end)
        if length < 0 or at + length != role_end:  # the cells end the remote party's details
            return None
        cells: list[TrustAnchorCell] = []
        while at < role_end:
            if at + 2 > role_end or data[at] != _ber.TAG_SEQUENCE:
                return None
            size = data[at + 1]
            cell_end = at + 2 + size
            if cell_end > role_end:
                return None
            if size == 24:  # keyUsage, subject EUI-64, SKI
                cell_usage = management
                octets = at + 6
            elif size == 27 and data[at + 6 : at + 8] == _CELL_USAGE_INTEGER:  # and cellUsage
                usage = cell_usages.get(data[at + 8])
                if usage is None:
                    return None
                cell_usage = usage
                octets = at + 9
            else:
                return None
            found = key_usages.get(data[at + 2 : at + 6])
            if (
                found is None
                or data[octets : octets + 2] != _OCTETS_8
                or data[octets + 10 : octets + 12] != _OCTETS_8
            ):
                return None
            key_usage, bit = found
            key = role_code << 4 | bit << 1 | cell_usage  # role < 0x80, bit 0 or 4, usage 0 or 1
            if key in seen:  # the general reader names both offsets
                return None
            seen.add(key)
            cell = _new(TrustAnchorCell)
            _set(cell, "role", role)
            _set(cell, "key_usage", key_usage)
            _set(cell, "cell_usage", cell_usage)
            _set(cell, "subject_eui", _fast_eui(data[octets + 2 : octets + 10]))
            _set(cell, "ski", data[octets + 12 : octets + 20])
            cells.append(cell)
            at = cell_end
        details = _new(RoleCredentials)
        _set(details, "role", role)
        _set(details, "status", status)
        _set(details, "sequence_number", sequence_number)
        _set(details, "cells", tuple(cells))
        roles.append(details)
        pos = role_end
    device = _new(Eui64)
    _set(device, "value", data[12:20])
    creds = _new(DeviceCredentials)
    _set(creds, "device", device)
    _set(creds, "roles", tuple(roles))
    _set(creds, "recipient", _fast_eui(data[21:29]))
    _set(creds, "originator_counter", int.from_bytes(data[3:11], "big"))
    _set(creds, "message_code", code)
    return creds
