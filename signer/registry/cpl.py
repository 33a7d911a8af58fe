"""The Central Products List: entries and their MP231 "upgraded from" lists.

An import is one transaction: every bad row is reported and, if there is any, nothing is
written. Re-importing the same file changes nothing.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from sqlalchemy import select

from signer.cpl.model import (
    NOT_APPLICABLE,
    BandJoinOption,
    CplEntry,
    DeviceType,
    ota_matches_entry,
)
from signer.cpl.parse import RowError
from signer.gbcs.ota import OtaHeader
from signer.registry.db import Database
from signer.registry.models import CplEntryRow

_CHUNK = 1000


@dataclass
class ImportReport:
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    errors: list[RowError] = field(default_factory=list)

    @property
    def applied(self) -> bool:
        return not self.errors


class _Refused(Exception):
    """Raised inside the import transaction to roll it back."""


def import_entries(
    db: Database,
    items: Iterable[CplEntry | RowError],
    now: dt.datetime,
    progress: Callable[[int], None] | None = None,
) -> ImportReport:
    report = ImportReport()
    try:
        with db.session() as s:
            for chunk in _chunks(items):
                entries = [i for i in chunk if isinstance(i, CplEntry)]
                report.errors.extend(i for i in chunk if isinstance(i, RowError))
                ids = [e.entry_id for e in entries]
                stored = {
                    r.entry_id: r
                    for r in s.scalars(select(CplEntryRow).where(CplEntryRow.entry_id.in_(ids)))
                }
                for entry in entries:
                    row = stored.get(entry.entry_id)
                    if row is None:
                        s.add(_row(entry, now))
                        report.added += 1
                    elif _entry(row) == entry:
                        report.unchanged += 1
                    else:
                        _fill(row, entry, now)
                        report.updated += 1
                s.flush()
                if progress is not None:
                    progress(len(chunk))
            if report.errors:
                raise _Refused
    except _Refused:
        report.added = report.updated = report.unchanged = 0
    return report


def get(db: Database, entry_id: str) -> CplEntry | None:
    with db.session() as s:
        row = s.get(CplEntryRow, entry_id)
        return None if row is None else _entry(row)


def for_image(db: Database, image_hash: bytes) -> list[CplEntry]:
    """Every entry recording this Manufacturer Image hash (normally one)."""
    with db.session() as s:
        rows = s.scalars(
            select(CplEntryRow)
            .where(CplEntryRow.image_hash == image_hash.hex())
            .order_by(CplEntryRow.entry_id)
        )
        return [_entry(r) for r in rows]


def matching(db: Database, image_hash: bytes, header: OtaHeader) -> list[CplEntry]:
    """The entries recording this image whose fields agree with its OTA header."""
    return [
        e
        for e in for_image(db, image_hash)
        if not ota_matches_entry(
            header.manufacturer_code, header.image_type, header.file_version, e
        )
    ]


def all_entries(db: Database) -> Iterator[CplEntry]:
    with db.session() as s:
        for row in s.scalars(
            select(CplEntryRow).order_by(CplEntryRow.entry_id).execution_options(yield_per=2000)
        ):
            yield _entry(row)


def generation(db: Database) -> tuple[int, dt.datetime | None]:
    """Changes whenever an import changes the CPL: for caching the upgrade graph."""
    from sqlalchemy import func

    with db.session() as s:
        count, latest = s.execute(
            select(func.count(), func.max(CplEntryRow.imported_at)).select_from(CplEntryRow)
        ).one()
    return int(count), latest


def _chunks(items: Iterable[CplEntry | RowError]) -> Iterator[list[CplEntry | RowError]]:
    chunk: list[CplEntry | RowError] = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= _CHUNK:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _row(entry: CplEntry, now: dt.datetime) -> CplEntryRow:
    row = CplEntryRow(entry_id=entry.entry_id)
    _fill(row, entry, now)
    return row


def _fill(row: CplEntryRow, e: CplEntry, now: dt.datetime) -> None:
    row.manufacturer_code = e.manufacturer_code
    row.device_type = e.device_type.name
    row.model = e.model
    row.image_type = e.image_type
    row.hardware_version = e.hardware_version
    row.firmware_version = e.firmware_version
    row.image_hash = e.image_hash.hex()
    row.upgrade_from = (
        ";".join(sorted(e.upgrade_from))
        if e.upgrade_from
        else NOT_APPLICABLE
        if e.pathway_known
        else ""
    )
    row.zigbee_chipset_vendor = e.zigbee_chipset_vendor
    row.zigbee_stack_version = e.zigbee_stack_version
    row.band_join_option = e.band_join_option.name if e.band_join_option else ""
    row.imported_at = now


def _entry(row: CplEntryRow) -> CplEntry:
    return CplEntry(
        entry_id=row.entry_id,
        manufacturer_code=row.manufacturer_code,
        device_type=DeviceType[row.device_type],
        model=row.model,
        image_type=row.image_type,
        hardware_version=row.hardware_version,
        firmware_version=row.firmware_version,
        image_hash=bytes.fromhex(row.image_hash),
        upgrade_from=frozenset(x for x in row.upgrade_from.split(";") if x and x != NOT_APPLICABLE),
        zigbee_chipset_vendor=row.zigbee_chipset_vendor,
        zigbee_stack_version=row.zigbee_stack_version,
        band_join_option=(BandJoinOption[row.band_join_option] if row.band_join_option else None),
        pathway_known=row.upgrade_from != "",
    )
