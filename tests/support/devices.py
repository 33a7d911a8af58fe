"""The one way the tests make device credentials and registry devices.

A device here has one trust anchor cell: a digital-signing cell for ``role`` naming the key
``ski``, with the test Supplier's EUI as subject (what a 6.24.1 response would record).
"""

from __future__ import annotations

import datetime as dt

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
from tests.support.constants import PINNED, SUPPLIER_EUI

Z1_SKI = bytes.fromhex("44899792D196F4B8")  # Z1-supplier-ds, in the vectors


def credentials(
    eui: str, role: RemotePartyRole = RemotePartyRole.SUPPLIER, ski: bytes = Z1_SKI
) -> DeviceCredentials:
    """A device whose ``role`` digital-signing cell names ``ski``."""
    cell = TrustAnchorCell(
        role=int(role),
        key_usage=KeyUsage.DIGITAL_SIGNATURE,
        cell_usage=CellUsage.MANAGEMENT,
        subject_eui=Eui64.parse(SUPPLIER_EUI),
        ski=ski,
    )
    return DeviceCredentials(
        device=Eui64.parse(eui),
        roles=(RoleCredentials(role=int(role), status=0, sequence_number=0, cells=(cell,)),),
    )


def add_device(
    db: Database,
    eui: str,
    *,
    entry: str | None = "T-2",
    device_type: str = "ESME",
    ski: bytes | None = Z1_SKI,
    now: dt.datetime = PINNED,
) -> None:
    """Store a device's Supplier cell naming ``ski`` (none if None) and, unless ``entry`` is
    None, its inventory: ``device_type`` running CPL entry ``entry``."""
    if ski is not None:
        devices.store_credentials(db, credentials(eui, RemotePartyRole.SUPPLIER, ski), now)
    if entry is not None:
        devices.set_inventory(
            db,
            Eui64.parse(eui),
            device_type=device_type,
            hardware_version=1,
            current_entry_id=entry,
            now=now,
        )
