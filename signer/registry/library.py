"""The firmware library: every Manufacturer Image the service checked, keyed by image ID."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from signer.errors import PolicyRefused
from signer.registry.db import Database
from signer.registry.models import FirmwareImage


@dataclass(frozen=True)
class LibraryImage:
    image_id: str
    manufacturer_code: int
    image_type: int
    file_version: int
    header_bytes: bytes
    with_tail: bool
    force_replace: bool | None
    delivery_shape: str
    verified: bool
    verdict_json: str
    manufacturer_image: bytes | None
    verified_at: dt.datetime
    manufacturer_fingerprint: str | None = None  # of the certificate that verified it


def record(db: Database, image: LibraryImage) -> None:
    """Store a verdict.

    A failed verdict never replaces a verified image, and a verified image is never given
    another OTA header: what was verified is what gets signed. Two deliveries racing to
    create the same row retry once as an update.
    """
    for attempt in (1, 2):
        try:
            _record(db, image)
            return
        except IntegrityError:
            if attempt == 2:
                raise


def _record(db: Database, image: LibraryImage) -> None:
    with db.session() as s:
        row = s.get(FirmwareImage, image.image_id, with_for_update=True)
        if row is not None and row.verified:
            if not image.verified:
                return
            if row.header_bytes != image.header_bytes:
                raise PolicyRefused(
                    f"image {image.image_id} is already in the library with "
                    "another OTA header; it was not replaced"
                )
        if row is None:
            row = FirmwareImage(image_id=image.image_id)
            s.add(row)
        row.manufacturer_code = image.manufacturer_code
        row.image_type = image.image_type
        row.file_version = image.file_version
        row.header_bytes = image.header_bytes
        row.with_tail = image.with_tail
        row.force_replace = image.force_replace
        row.delivery_shape = image.delivery_shape
        row.verified = image.verified
        row.verdict_json = image.verdict_json
        row.manufacturer_image = image.manufacturer_image if image.verified else None
        row.verified_at = image.verified_at
        row.manufacturer_fingerprint = image.manufacturer_fingerprint if image.verified else None


def get(db: Database, image_id: str) -> LibraryImage | None:
    with db.session() as s:
        row = s.get(FirmwareImage, image_id.lower())
        if row is None:
            return None
        return LibraryImage(
            image_id=row.image_id,
            manufacturer_code=row.manufacturer_code,
            image_type=row.image_type,
            file_version=row.file_version,
            header_bytes=row.header_bytes,
            with_tail=row.with_tail,
            force_replace=row.force_replace,
            delivery_shape=row.delivery_shape,
            verified=row.verified,
            verdict_json=row.verdict_json,
            manufacturer_image=row.manufacturer_image,
            verified_at=row.verified_at,
            manufacturer_fingerprint=row.manufacturer_fingerprint,
        )


def verified_by(db: Database, image_id: str) -> tuple[bool, str | None]:
    """Whether the image is (still) in the library, and the fingerprint of the certificate
    that verified it (None: verified before the library recorded it). Read, not cached from
    the image: a re-verification or a deletion in another process changes them."""
    with db.read() as conn:
        found = conn.execute(
            select(FirmwareImage.manufacturer_fingerprint).where(
                FirmwareImage.image_id == image_id.lower()
            )
        ).first()
    if found is None:
        return False, None
    return True, None if found[0] is None else str(found[0])


def exists(db: Database, image_id: str) -> bool:
    with db.session() as s:
        found = s.scalar(
            select(FirmwareImage.image_id).where(FirmwareImage.image_id == image_id.lower())
        )
    return found is not None
