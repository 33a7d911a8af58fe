"""A small fleet for server tests: an image on a three-step CPL and devices that trust Z1.

The image (CPL entry T-3) may be installed from T-2; devices are added on any entry with
``tests.support.devices.add_device``.
"""

from __future__ import annotations

import hashlib

from tests.support.independent import ota_header

IMAGE = b"fleet test firmware " * 50
HEADER = ota_header(len(IMAGE), file_version=0x00000200)
IMAGE_HASH = hashlib.sha256(IMAGE).digest()


def cpl_csv(image_hash: bytes = IMAGE_HASH, *, other_models: bool = False) -> str:
    """ESME model M1 on T-1 -> T-2 -> T-3, T-3 being ``image_hash``; with ``other_models``
    also a GSME root G-1 (model G1) and an unrelated ESME root X-1."""
    head = (
        "entry_id,manufacturer_code,device_type,model,image_type,hardware_version,"
        "firmware_version,image_hash,upgrade_from,zigbee_chipset_vendor,"
        "zigbee_stack_version,band_join_option\n"
    )
    rows = [
        ("T-1", "ESME", "M1", "00000100", hashlib.sha256(b"T-1").hexdigest(), "N/A"),
        ("T-2", "ESME", "M1", "00000150", hashlib.sha256(b"T-2").hexdigest(), "T-1"),
        ("T-3", "ESME", "M1", "00000200", image_hash.hex(), "T-2"),
    ]
    if other_models:
        rows += [
            ("G-1", "GSME", "G1", "00000001", hashlib.sha256(b"G-1").hexdigest(), "N/A"),
            ("X-1", "ESME", "M1", "00000050", hashlib.sha256(b"X-1").hexdigest(), "N/A"),
        ]
    return head + "".join(
        f"{e},121D,{t},{m},0001,0001,{v},{h},{p},,,\n" for e, t, m, v, h, p in rows
    )
