"""The ZigBee OTA header and the GBCS OTA Upgrade Image that SR 11.1 / 11.4 carry.

Layout (spec §3): ``OTA Header || Manufacturer Image || Force Replace || 0x40 || r||s``; SR 11.4
PPMID images stop after the Manufacturer Image. All header integers are little-endian.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from signer.errors import FormatError

FILE_IDENTIFIER = 0x0BEEF11E
HEADER_VERSION = 0x0100
FIXED_HEADER_LENGTH = 56

FC_SECURITY_CREDENTIAL_VERSION = 0x0001
FC_UPGRADE_FILE_DESTINATION = 0x0002
FC_HARDWARE_VERSIONS = 0x0004
_FC_KNOWN = FC_SECURITY_CREDENTIAL_VERSION | FC_UPGRADE_FILE_DESTINATION | FC_HARDWARE_VERSIONS

FORCE_REPLACE_VALUES = {0x00: False, 0x01: True}
SIGNATURE_LENGTH_BYTE = 0x40
SIGNATURE_LENGTH = 64
TAIL_LENGTH = 66  # Force Replace (1) + length byte (1) + signature (64)

# Offsets of the fixed fields, so errors can point at the faulty bytes.
OFF_IDENTIFIER = 0
OFF_HEADER_VERSION = 4
OFF_HEADER_LENGTH = 6
OFF_FIELD_CONTROL = 8
OFF_TOTAL_IMAGE_SIZE = 52

_FIXED = struct.Struct("<IHHHHHIH32sI")
#: The fields after the file identifier, in ``_FIXED``'s order (and ``OtaHeader``'s).
_FIXED_FIELDS = (
    "header_version",
    "header_length",
    "field_control",
    "manufacturer_code",
    "image_type",
    "file_version",
    "zigbee_stack_version",
    "header_string",
    "total_image_size",
)
_U16_FIELDS = (
    ("header_version", OFF_HEADER_VERSION),
    ("header_length", OFF_HEADER_LENGTH),
    ("field_control", OFF_FIELD_CONTROL),
    ("manufacturer_code", 10),
    ("image_type", 12),
    ("zigbee_stack_version", 18),
)
_U32_FIELDS = (("file_version", 14), ("total_image_size", OFF_TOTAL_IMAGE_SIZE))
_OPTIONAL_BITS = {
    "security_credential_version": FC_SECURITY_CREDENTIAL_VERSION,
    "upgrade_file_destination": FC_UPGRADE_FILE_DESTINATION,
    "min_hardware_version": FC_HARDWARE_VERSIONS,
    "max_hardware_version": FC_HARDWARE_VERSIONS,
}


def expected_header_length(field_control: int) -> int:
    """The header length the field control implies (the spec allows no extra header bytes)."""
    length = FIXED_HEADER_LENGTH
    if field_control & FC_SECURITY_CREDENTIAL_VERSION:
        length += 1
    if field_control & FC_UPGRADE_FILE_DESTINATION:
        length += 8
    if field_control & FC_HARDWARE_VERSIONS:
        length += 4
    return length


def _check_header_version(header_version: int, *, field: str) -> None:
    if header_version != HEADER_VERSION:
        raise FormatError(
            f"header version 0x{header_version:04X}, expected 0x{HEADER_VERSION:04X}",
            field=field,
            offset=OFF_HEADER_VERSION,
        )


def _check_header_length(header_length: int, field_control: int, *, field: str) -> None:
    expected = expected_header_length(field_control)
    if header_length != expected:
        raise FormatError(
            f"header length {header_length} does not match field control "
            f"0x{field_control:04X}, which implies {expected}",
            field=field,
            offset=OFF_HEADER_LENGTH,
        )


def _check_field_control(field_control: int, *, field: str) -> None:
    unknown = field_control & ~_FC_KNOWN
    if unknown:
        raise FormatError(
            f"field control 0x{field_control:04X} sets unknown bits 0x{unknown:04X} "
            "(only bit0..bit2 are defined)",
            field=field,
            offset=OFF_FIELD_CONTROL,
        )


def _check_hardware_versions(
    min_hw: int | None, max_hw: int | None, *, field: str, offset: int
) -> None:
    if min_hw is not None and max_hw is not None and min_hw > max_hw:
        raise FormatError(
            f"min hardware version 0x{min_hw:04X} is above max hardware version 0x{max_hw:04X}",
            field=field,
            offset=offset,
        )


@dataclass(frozen=True)
class OtaHeader:
    """A parsed ZigBee OTA header; optional fields are None when field control omits them."""

    header_version: int
    header_length: int
    field_control: int
    manufacturer_code: int
    image_type: int
    file_version: int
    zigbee_stack_version: int
    header_string: bytes
    total_image_size: int
    security_credential_version: int | None = None
    upgrade_file_destination: bytes | None = None
    min_hardware_version: int | None = None
    max_hardware_version: int | None = None

    @property
    def header_string_text(self) -> str:
        """For display only: the string is free text padded with NULs."""
        return self.header_string.decode("latin-1").rstrip("\x00")

    def to_bytes(self, *, field: str = "ota_header") -> bytes:
        """Serialise, refusing any value the parser would refuse, so we never emit a bad header."""
        for name, offset in _U16_FIELDS:
            _check_uint(getattr(self, name), 16, name, field=field, offset=offset)
        for name, offset in _U32_FIELDS:
            _check_uint(getattr(self, name), 32, name, field=field, offset=offset)
        _check_header_version(self.header_version, field=field)
        _check_field_control(self.field_control, field=field)
        if not isinstance(self.header_string, bytes) or len(self.header_string) != 32:
            raise FormatError(
                f"header string must be 32 bytes, got {self.header_string!r}",
                field=field,
                offset=20,
            )
        _check_header_length(self.header_length, self.field_control, field=field)
        fixed = _FIXED.pack(FILE_IDENTIFIER, *(getattr(self, name) for name in _FIXED_FIELDS))
        optional = bytearray()
        offset = FIXED_HEADER_LENGTH
        credential = self._announced("security_credential_version", field=field, offset=offset)
        if credential is not None:
            _check_uint(credential, 8, "security_credential_version", field=field, offset=offset)
            optional.append(credential)
            offset += 1
        destination = self._announced("upgrade_file_destination", field=field, offset=offset)
        if destination is not None:
            if not isinstance(destination, bytes) or len(destination) != 8:
                raise FormatError(
                    f"upgrade file destination must be 8 bytes, got {destination!r}",
                    field=field,
                    offset=offset,
                )
            optional += destination
            offset += 8
        min_hw = self._announced("min_hardware_version", field=field, offset=offset)
        max_hw = self._announced("max_hardware_version", field=field, offset=offset + 2)
        if min_hw is not None and max_hw is not None:
            _check_uint(min_hw, 16, "min_hardware_version", field=field, offset=offset)
            _check_uint(max_hw, 16, "max_hardware_version", field=field, offset=offset + 2)
            _check_hardware_versions(min_hw, max_hw, field=field, offset=offset)
            optional += struct.pack("<HH", min_hw, max_hw)
        return fixed + bytes(optional)

    def _announced(self, name: str, *, field: str, offset: int) -> Any:
        """The optional value ``name``, refused if it disagrees with its field-control bit."""
        value = getattr(self, name)
        present = self.field_control & _OPTIONAL_BITS[name]
        if present and value is None:
            raise FormatError(
                f"field control announces {name} but it is None", field=field, offset=offset
            )
        if not present and value is not None:
            raise FormatError(
                f"{name} is set but field control does not announce it",
                field=field,
                offset=OFF_FIELD_CONTROL,
            )
        return value


def _check_uint(value: object, bits: int, name: str, *, field: str, offset: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < (1 << bits):
        raise FormatError(
            f"{name} must be an unsigned {bits}-bit integer, got {value!r}",
            field=field,
            offset=offset,
        )


def parse_ota_header(data: bytes, *, field: str = "ota_header") -> OtaHeader:
    """Parse the OTA header at the start of ``data``; trailing bytes are the caller's business.

    ``total_image_size`` is not compared with ``len(data)`` here because only the caller knows
    whether ``data`` is the whole file.
    """
    if len(data) < 4:
        raise _truncated(data, field=field)
    (identifier,) = struct.unpack_from("<I", data, 0)
    if identifier != FILE_IDENTIFIER:
        raise FormatError(
            f"file identifier 0x{identifier:08X} is not the OTA identifier "
            f"0x{FILE_IDENTIFIER:08X} (bytes 1E F1 EE 0B)",
            field=field,
            offset=OFF_IDENTIFIER,
        )
    if len(data) < FIXED_HEADER_LENGTH:
        raise _truncated(data, field=field)
    fixed = dict(zip(_FIXED_FIELDS, _FIXED.unpack_from(data, 0)[1:], strict=True))
    header_version, header_length = fixed["header_version"], fixed["header_length"]
    field_control = fixed["field_control"]
    _check_header_version(header_version, field=field)
    _check_field_control(field_control, field=field)
    _check_header_length(header_length, field_control, field=field)
    if len(data) < header_length:
        raise FormatError(
            f"OTA header truncated: header length is {header_length}, {len(data)} bytes given",
            field=field,
            offset=len(data),
        )
    pos = FIXED_HEADER_LENGTH
    security_credential_version: int | None = None
    upgrade_file_destination: bytes | None = None
    min_hw: int | None = None
    max_hw: int | None = None
    if field_control & FC_SECURITY_CREDENTIAL_VERSION:
        security_credential_version = data[pos]
        pos += 1
    if field_control & FC_UPGRADE_FILE_DESTINATION:
        upgrade_file_destination = bytes(data[pos : pos + 8])
        pos += 8
    if field_control & FC_HARDWARE_VERSIONS:
        min_hw, max_hw = struct.unpack_from("<HH", data, pos)
        _check_hardware_versions(min_hw, max_hw, field=field, offset=pos)
    return OtaHeader(
        **fixed,
        security_credential_version=security_credential_version,
        upgrade_file_destination=upgrade_file_destination,
        min_hardware_version=min_hw,
        max_hardware_version=max_hw,
    )


def _truncated(data: bytes, *, field: str) -> FormatError:
    return FormatError(
        f"OTA header truncated: {len(data)} bytes given, at least {FIXED_HEADER_LENGTH} needed",
        field=field,
        offset=len(data),
    )


@dataclass(frozen=True)
class UpgradeImage:
    """A parsed GBCS OTA Upgrade Image; the tail fields are None for a tail-less SR 11.4 image."""

    header: OtaHeader
    header_bytes: bytes
    manufacturer_image: bytes
    force_replace: bool | None
    signature: bytes | None

    @cached_property
    def image_id(self) -> str:
        """SHA-256 of the Manufacturer Image: the GBCS Firmware Hash, so also our image key."""
        return hashlib.sha256(self.manufacturer_image).hexdigest()

    @property
    def signed_region(self) -> bytes:
        """The ARP signature covers the Manufacturer Image alone (spec §3, vector)."""
        return self.manufacturer_image

    @property
    def has_tail(self) -> bool:
        return self.signature is not None

    def to_bytes(self) -> bytes:
        if self.signature is None or self.force_replace is None:
            if self.signature is not None or self.force_replace is not None:
                raise FormatError(
                    "force_replace and signature must both be set or both be None",
                    field="upgrade_image",
                )
            return b"".join((self.header_bytes, self.manufacturer_image))
        return build_upgrade_image(
            self.header_bytes,
            self.manufacturer_image,
            force_replace=self.force_replace,
            signature=self.signature,
        )


def parse_upgrade_image(
    data: bytes, *, with_tail: bool = True, field: str = "upgrade_image"
) -> UpgradeImage:
    """Split a whole upgrade image file into header, Manufacturer Image and tail."""
    header = parse_ota_header(data, field=field)
    header_length = header.header_length
    if header.total_image_size != len(data):
        raise FormatError(
            f"total image size in the header is {header.total_image_size} but "
            f"{len(data)} bytes were given"
            + (" (truncated)" if len(data) < header.total_image_size else " (trailing bytes)"),
            field=field,
            offset=min(len(data), header.total_image_size),
        )
    tail = TAIL_LENGTH if with_tail else 0
    image_end = len(data) - tail
    if image_end <= header_length:
        raise FormatError(
            f"no Manufacturer Image: {len(data)} bytes hold only the {header_length}-byte header"
            + (f" and the {TAIL_LENGTH}-byte signature tail" if with_tail else ""),
            field=field,
            offset=header_length,
        )
    force_replace: bool | None = None
    signature: bytes | None = None
    if with_tail:
        length_byte = data[image_end + 1]
        if length_byte != SIGNATURE_LENGTH_BYTE:
            raise FormatError(
                f"signature length byte is 0x{length_byte:02X}, expected "
                f"0x{SIGNATURE_LENGTH_BYTE:02X}",
                field=field,
                offset=image_end + 1,
            )
        force_byte = data[image_end]
        if force_byte not in FORCE_REPLACE_VALUES:
            raise FormatError(
                f"Force Replace byte is 0x{force_byte:02X}; only 0x00 and 0x01 are known",
                field=field,
                offset=image_end,
            )
        force_replace = FORCE_REPLACE_VALUES[force_byte]
        signature = bytes(data[image_end + 2 :])
    return UpgradeImage(
        header=header,
        header_bytes=bytes(data[:header_length]),
        manufacturer_image=bytes(data[header_length:image_end]),
        force_replace=force_replace,
        signature=signature,
    )


def build_upgrade_image(
    header_bytes: bytes, manufacturer_image: bytes, *, force_replace: bool, signature: bytes
) -> bytes:
    """Assemble a signed image, refusing anything a device would reject."""
    header = parse_ota_header(header_bytes, field="ota_header")
    if len(header_bytes) != header.header_length:
        raise FormatError(
            f"{len(header_bytes)} header bytes given but the header length is "
            f"{header.header_length}",
            field="ota_header",
            offset=header.header_length,
        )
    if not manufacturer_image:
        raise FormatError("Manufacturer Image is empty", field="manufacturer_image", offset=0)
    if len(signature) != SIGNATURE_LENGTH:
        raise FormatError(
            f"signature must be {SIGNATURE_LENGTH} bytes (raw r||s), got {len(signature)}",
            field="signature",
        )
    total = header.header_length + len(manufacturer_image) + TAIL_LENGTH
    if header.total_image_size != total:
        raise FormatError(
            f"total image size in the header is {header.total_image_size} but the image "
            f"would be {total} bytes",
            field="ota_header",
            offset=OFF_TOTAL_IMAGE_SIZE,
        )
    force_byte = 0x01 if force_replace else 0x00
    return b"".join(
        (header_bytes, manufacturer_image, bytes((force_byte, SIGNATURE_LENGTH_BYTE)), signature)
    )
