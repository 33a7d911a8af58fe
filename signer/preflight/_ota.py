"""A GBCS OTA upgrade image read the way the meter reads it, written apart from
``signer.gbcs`` from gbcs-firmware.md section 3.

``OTA Header || Manufacturer Image || Force Replace (1) || 0x40 || ARP signature (64, r||s)``,
header integers little-endian; the ARP signature covers the Manufacturer Image only. An
SR 11.4 (PPMID) image has no tail: ``OTA Header || Manufacturer Image``.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Final

FILE_IDENTIFIER: Final = b"\x1e\xf1\xee\x0b"  # 0x0BEEF11E little-endian
HEADER_VERSION: Final = 0x0100
FIXED_HEADER: Final = 56
TAIL: Final = 66  # Force Replace, length byte 0x40, 64-byte signature
SIGNATURE_LENGTH_BYTE: Final = 0x40
FORCE_REPLACE_VALUES: Final = (0x00, 0x01)
FC_CREDENTIAL_VERSION: Final = 0x01
FC_DESTINATION: Final = 0x02
FC_HARDWARE_VERSIONS: Final = 0x04
_HEAD = struct.Struct("<HHHHHIH32sI")  # from offset 4: version .. total image size


class ImageRefused(Exception):
    """The bytes are not an ARP-signed GBCS upgrade image (the caller names the check)."""


@dataclass(frozen=True, slots=True)
class UpgradeImage:
    header_length: int
    manufacturer_code: int
    image_type: int
    min_hardware_version: int | None
    max_hardware_version: int | None
    image_end: int  # the Manufacturer Image is data[header_length:image_end]
    signature: bytes  # raw r||s; empty without a tail
    force_replace: int | None  # the tail's Force Replace byte; None without a tail


def parse(data: bytes, *, with_tail: bool = True) -> UpgradeImage:
    """The image as the meter reads it; ``with_tail=False``: an SR 11.4 image, which ends
    with its Manufacturer Image (no Force Replace byte, no ARP signature)."""
    if len(data) < FIXED_HEADER:
        raise ImageRefused(f"{len(data)} bytes are shorter than the 56-byte OTA header")
    if data[:4] != FILE_IDENTIFIER:
        raise ImageRefused(f"file identifier {data[:4].hex()} is not 1ef1ee0b (0x0BEEF11E)")
    (version, header_length, field_control, code, image_type, _file_version, _stack, _text,
     total) = _HEAD.unpack_from(data, 4)  # fmt: skip
    if version != HEADER_VERSION:
        raise ImageRefused(f"header version 0x{version:04X} is not 0x0100")
    known = FC_CREDENTIAL_VERSION | FC_DESTINATION | FC_HARDWARE_VERSIONS
    if field_control & ~known:
        raise ImageRefused(f"field control 0x{field_control:04X} sets bits GBCS does not define")
    expected = FIXED_HEADER
    expected += 1 if field_control & FC_CREDENTIAL_VERSION else 0
    expected += 8 if field_control & FC_DESTINATION else 0
    expected += 4 if field_control & FC_HARDWARE_VERSIONS else 0
    if header_length != expected:
        raise ImageRefused(
            f"header length {header_length}, its field control 0x{field_control:04X} "
            f"makes {expected}"
        )
    if total != len(data):
        raise ImageRefused(f"total image size {total} in the header, the image has {len(data)}")
    tail = TAIL if with_tail else 0
    if len(data) < header_length + tail + 1:
        raise ImageRefused(
            f"{len(data)} bytes leave no Manufacturer Image"
            + (" and signature tail" if with_tail else "")
            + f" after the {header_length}-byte header"
        )
    min_hw = max_hw = None
    if field_control & FC_HARDWARE_VERSIONS:
        min_hw, max_hw = struct.unpack_from("<HH", data, header_length - 4)
        if min_hw > max_hw:
            raise ImageRefused(f"min hardware version 0x{min_hw:04X} is above max 0x{max_hw:04X}")
    if not with_tail:
        return UpgradeImage(
            header_length=header_length,
            manufacturer_code=code,
            image_type=image_type,
            min_hardware_version=min_hw,
            max_hardware_version=max_hw,
            image_end=len(data),
            signature=b"",
            force_replace=None,
        )
    image_end = len(data) - TAIL
    if data[image_end + 1] != SIGNATURE_LENGTH_BYTE:
        raise ImageRefused(
            f"the signature tail's length byte is 0x{data[image_end + 1]:02X}, not 0x40: "
            "the image carries no ARP signature"
        )
    if data[image_end] not in FORCE_REPLACE_VALUES:
        raise ImageRefused(f"Force Replace byte 0x{data[image_end]:02X} is neither 0x00 nor 0x01")
    return UpgradeImage(
        header_length=header_length,
        manufacturer_code=code,
        image_type=image_type,
        min_hardware_version=min_hw,
        max_hardware_version=max_hw,
        image_end=image_end,
        signature=bytes(data[image_end + 2 :]),
        force_replace=data[image_end],
    )
