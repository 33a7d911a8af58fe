"""A small fleet for server tests: an image on a three-step CPL and devices that trust Z1.

The image (CPL entry T-3) may be installed from T-2; devices are added on any entry.
"""

from __future__ import annotations

import hashlib

from signer.gbcs.eui import Eui64
from signer.gbcs.roles import RemotePartyRole
from signer.gbcs.trust_anchor import (
    CellUsage,
    DeviceCredentials,
    KeyUsage,
    RoleCredentials,
    TrustAnchorCell,
)
from signer.registry import devices
from signer.registry.db import Database
from tests.conftest import PINNED, SUPPLIER_EUI
from tests.independent import ota_header

Z1_SKI = bytes.fromhex("44899792D196F4B8")  # Z1-supplier-ds, in the vectors
IMAGE = b"fleet test firmware " * 50
HEADER = ota_header(len(IMAGE), file_version=0x00000200)
IMAGE_HASH = hashlib.sha256(IMAGE).digest()


def cpl_csv() -> str:
    head = (
        "entry_id,manufacturer_code,device_type,model,image_type,hardware_version,"
        "firmware_version,image_hash,upgrade_from,zigbee_chipset_vendor,"
        "zigbee_stack_version,band_join_option\n"
    )
    rows = [
        ("T-1", "00000100", hashlib.sha256(b"T-1").hexdigest(), "N/A"),
        ("T-2", "00000150", hashlib.sha256(b"T-2").hexdigest(), "T-1"),
        ("T-3", "00000200", IMAGE_HASH.hex(), "T-2"),
    ]
    return head + "".join(f"{e},121D,ESME,M1,0001,0001,{v},{h},{p},,,\n" for e, v, h, p in rows)


def add_device(db: Database, eui: str, *, entry: str = "T-2") -> None:
    """A device whose Supplier digital-signing cell names Z1, running ``entry``."""
    cell = TrustAnchorCell(
        role=int(RemotePartyRole.SUPPLIER),
        key_usage=KeyUsage.DIGITAL_SIGNATURE,
        cell_usage=CellUsage.MANAGEMENT,
        subject_eui=Eui64.parse(SUPPLIER_EUI),
        ski=Z1_SKI,
    )
    devices.store_credentials(
        db,
        DeviceCredentials(
            device=Eui64.parse(eui),
            roles=(
                RoleCredentials(
                    role=int(RemotePartyRole.SUPPLIER), status=0, sequence_number=0, cells=(cell,)
                ),
            ),
        ),
        PINNED,
    )
    devices.set_inventory(
        db,
        Eui64.parse(eui),
        device_type="ESME",
        hardware_version=1,
        current_entry_id=entry,
        now=PINNED,
    )
