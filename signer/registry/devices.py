"""Device EUI-64 -> the trust anchor cells it reported (GBCS SR 6.24.1)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import and_, bindparam, select

from signer.gbcs.eui import Eui64
from signer.gbcs.roles import RemotePartyRole
from signer.gbcs.trust_anchor import (
    CellUsage,
    DeviceCredentials,
    KeyUsage,
    TrustAnchorCell,
)
from signer.registry.db import Database
from signer.registry.models import Device, TrustAnchorCellRow

_BATCH = 5000


@dataclass(frozen=True)
class DeviceRecord:
    eui: Eui64
    cells: tuple[TrustAnchorCell, ...]
    updated_at: dt.datetime


def store_credentials(db: Database, creds: DeviceCredentials, now: dt.datetime) -> bool:
    """Replace a device's cells with those of a 6.24.1 response; True if the device is new."""
    key = creds.device.hex
    with db.session() as s:
        device = s.get(Device, key)
        created = device is None
        if device is None:
            device = Device(eui=key, updated_at=now)
            s.add(device)
        device.updated_at = now
        device.cells = [
            TrustAnchorCellRow(role=c.role, key_usage=c.key_usage.value,
                               cell_usage=int(c.cell_usage), subject_eui=c.subject_eui.hex,
                               ski=c.ski.hex())
            for c in creds.cells
        ]
    return created


def get_device(db: Database, eui: Eui64) -> DeviceRecord | None:
    with db.session() as s:
        device = s.get(Device, eui.hex)
        if device is None:
            return None
        return DeviceRecord(eui=eui, cells=tuple(_cell(r) for r in device.cells),
                            updated_at=device.updated_at)


# Devices with their Supplier digital-signing (management) cell, if any: one statement, built
# once, the device list bound as an expanding IN parameter.
_SUPPLIER_SKIS = (
    select(Device.eui, TrustAnchorCellRow.ski)
    .select_from(Device)
    .outerjoin(TrustAnchorCellRow, and_(
        TrustAnchorCellRow.device_eui == Device.eui,
        TrustAnchorCellRow.role == int(RemotePartyRole.SUPPLIER),
        TrustAnchorCellRow.key_usage == KeyUsage.DIGITAL_SIGNATURE.value,
        TrustAnchorCellRow.cell_usage == int(CellUsage.MANAGEMENT)))
    .where(Device.eui.in_(bindparam("euis", expanding=True)))
)


def supplier_signing_skis(db: Database, euis: Sequence[Eui64]) -> dict[Eui64, bytes | None]:
    """Each known device's Supplier digital-signing (management) cell SKI, in batches.

    A device missing from the result is unknown; one mapped to None is known but has no
    Supplier digital-signing cell.
    """
    out: dict[Eui64, bytes | None] = {}
    by_hex = {e.hex: e for e in euis}
    keys = list(by_hex)
    with db.read() as conn:
        for i in range(0, len(keys), _BATCH):
            for eui_hex, ski in conn.execute(_SUPPLIER_SKIS, {"euis": keys[i:i + _BATCH]}):
                out[by_hex[eui_hex]] = bytes.fromhex(ski) if ski is not None else None
    return out


def _cell(r: TrustAnchorCellRow) -> TrustAnchorCell:
    return TrustAnchorCell(role=r.role, key_usage=KeyUsage(r.key_usage),
                           cell_usage=CellUsage(r.cell_usage),
                           subject_eui=Eui64(bytes.fromhex(r.subject_eui)),
                           ski=bytes.fromhex(r.ski))
