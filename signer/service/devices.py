"""Devices: the lists a request names, as the wire gives them (checked before anything is
looked up), and bulk imports of their trust anchor cells."""

from __future__ import annotations

import binascii
import datetime as dt
import gc
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from sqlalchemy.orm import Session

from signer.caller import current
from signer.duis.response import gbcs_payload_of
from signer.errors import InvalidInput
from signer.gbcs.eui import Eui64
from signer.gbcs.trust_anchor import (
    DeviceCredentials,
    decode_payload_text,
    parse_security_credentials_response,
)
from signer.registry import audit
from signer.registry import devices as registry
from signer.registry.auditchain import AuditEntry
from signer.registry.db import Database
from signer.service import dcc
from signer.service.dcc import Origin

# DUIS DeviceIDList holds at most 1,199,999 characters: 50,000 dashed EUI-64s.
MAX_DEVICES = 50_000


def parse_devices(device_ids: Sequence[str], *, field: str = "device_ids") -> list[Eui64]:
    """Parse a device list: non-empty, bounded, no duplicates, every EUI well-formed."""
    if not device_ids:
        raise InvalidInput("at least one device is needed", field=field)
    if len(device_ids) > MAX_DEVICES:
        raise InvalidInput(
            f"{len(device_ids)} devices exceed the DUIS limit of {MAX_DEVICES}", field=field
        )
    values = _duis_form_values(device_ids)
    if values is None:  # some ID in another form, or wrong: one by one
        out = _parse_each(device_ids, field)
        values = [e.value for e in out]
    else:
        out = [_eui(v) for v in values]
    if len(set(values)) != len(out):
        seen: set[bytes] = set()
        for i, eui in enumerate(out):
            if eui.value in seen:
                raise InvalidInput(f"device {eui} is listed twice", field=f"{field}[{i}]")
            seen.add(eui.value)
    return out


def _parse_each(device_ids: Sequence[str], field: str) -> list[Eui64]:
    """``Eui64.parse`` of each ID (the general path: every form it accepts, its errors)."""
    parse = Eui64.parse
    try:
        return [parse(text, field=field) for text in device_ids]
    except InvalidInput as exc:  # named with its index only when one is wrong
        bad = next(i for i, text in enumerate(device_ids) if not _parses(text))
        raise InvalidInput(exc.message, field=f"{field}[{bad}]") from None


def _duis_form_values(device_ids: Sequence[str]) -> list[bytes] | None:
    """The 8-byte values of a list whose every ID is in the DUIS form (``00-DB-12-...``,
    what ``Eui64.parse`` takes on its hot path), decoded for the whole list at once, or None
    when some ID is not (the caller then parses one by one).

    Joined with commas, such a list has its separators at every third position, exactly:
    ``-------,`` over and over. With those in place, every other position must be a hex
    digit (the list without its commas and dashes decodes to 8 bytes per ID only then), so
    no ID holds a comma or a dash out of place and each ID is 23 characters in the DUIS
    form."""
    n = len(device_ids)
    try:
        joined = ",".join(device_ids)
    except TypeError:
        return None
    if len(joined) != 24 * n - 1 or joined[2::3] != ("-------," * n)[:-1]:
        return None
    try:  # (unhexlify, unlike bytes.fromhex, skips nothing)
        value = binascii.unhexlify(joined.encode("ascii").translate(None, b"-,"))
    except (UnicodeEncodeError, binascii.Error):
        return None
    if len(value) != 8 * n:
        return None
    return [value[i : i + 8] for i in range(0, 8 * n, 8)]


_new, _set = object.__new__, object.__setattr__


def _eui(value: bytes) -> Eui64:
    """An Eui64 of 8 bytes already checked, made as ``Eui64.parse`` makes it on its hot path."""
    eui = _new(Eui64)
    _set(eui, "value", value)
    return eui


def _parses(text: str) -> bool:
    try:
        Eui64.parse(text)
    except InvalidInput:
        return False
    return True


# -- bulk import of SR 6.24.1 responses (`signer devices import`) ------------------------


@dataclass(frozen=True)
class ImportedDevice:
    """One device an import wrote: its credentials, whether it was new, and what vouched."""

    credentials: DeviceCredentials
    created: bool


@dataclass(frozen=True)
class BulkImport:
    """What ``import_credentials`` did: every response's device in input order (a device
    given twice is listed twice, the last response's cells stand), and the counts."""

    devices: tuple[ImportedDevice, ...]

    @property
    def added(self) -> int:
        return len({d.credentials.device for d in self.devices if d.created})

    @property
    def updated(self) -> int:
        return len({d.credentials.device for d in self.devices}) - self.added


class CredentialsReader:
    """Reads the responses of one import: each DUIS response XML must be signed by one of
    ``dcc_certificates``; raw GBCS (hex or base64) is refused unless
    ``accept_unauthenticated``, and then its acceptance is logged once per import, not once
    per response (100,000 lines of warning help nobody)."""

    def __init__(
        self,
        *,
        dcc_certificates: Sequence[x509.Certificate],
        now: dt.datetime,
        accept_unauthenticated: bool = False,
    ) -> None:
        self._certificates = tuple(dcc_certificates)
        self._now = now
        self._accept = accept_unauthenticated
        self._raw_origin: Origin | None = None

    def parse(self, data: bytes) -> tuple[DeviceCredentials, Origin]:
        """One response, checked (the DCC's signature, or the explicit raw flag) and parsed."""
        if data.lstrip().startswith(b"<"):
            root, origin = dcc.authenticated(data, self._certificates, self._now)
            payload = gbcs_payload_of(root)
        else:
            origin = self._raw_origin or dcc.accept_raw(
                self._accept,
                field="credentials",
                flag="--unauthenticated-gbcs",
                what="a device import",
            )
            self._raw_origin = origin
            payload = decode_payload_text(data)
        return parse_security_credentials_response(payload), origin


@contextmanager
def collector_paused() -> Iterator[None]:
    """Bulk work in one go (a whole import): the cyclic garbage collector does not run
    meanwhile, and runs as before afterwards.

    Parsed responses and their rows are many objects that live until the work ends and
    are in no cycle, yet every full collection walks all of them again: with 100,000
    parsed responses alive (~1.3 million objects) one full collection took ~0.5 s, and the
    writes of an import trigger several. Nothing is kept longer: objects are still freed
    as their last reference goes; only garbage in cycles waits for the end. Where something
    already froze its heap out of the collector's reach (``signer serve``), the collector
    is left alone.
    """
    if gc.get_freeze_count() or not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def import_credentials(
    db: Database,
    parsed: Sequence[tuple[DeviceCredentials, Origin]],
    now: dt.datetime,
    *,
    progress: Callable[[int], None] | None = None,
) -> BulkImport:
    """Responses already parsed (``CredentialsReader``), all or nothing: every device's
    cells are replaced and one ``device-import`` audit record per response is appended, in
    ONE transaction, with the database work batched (100,000 devices in seconds: see
    bench/devices_import.py). ``progress`` is told of every device written."""
    with collector_paused():
        return _import(db, parsed, now, progress)


def _import(
    db: Database,
    parsed: Sequence[tuple[DeviceCredentials, Origin]],
    now: dt.datetime,
    progress: Callable[[int], None] | None,
) -> BulkImport:
    from signer.service.admin import DEVICE_IMPORT

    caller = current()
    entries = []
    vouched: dict[Origin, dict[str, Any]] = {}  # an import has one or a few origins
    for creds, origin in parsed:
        by = vouched.get(origin)
        if by is None:
            by = vouched[origin] = origin.details()
        cell = creds.supplier_signing_cell()
        entries.append(
            AuditEntry(
                at=now,
                client=caller.identity,
                call_id=caller.request_id,
                method=caller.method,
                operation=DEVICE_IMPORT,
                details={
                    "device": str(creds.device),
                    "cells": sum([len(role.cells) for role in creds.roles]),
                    "supplier_ski": cell.ski.hex() if cell else None,
                    **by,
                },
            )
        )
    new: set[str] = set()

    def write_all(s: Session) -> None:  # may run again if its transaction is retried
        new.clear()
        new.update(
            registry.write_many_credentials(s, [c for c, _ in parsed], now, progress=progress)
        )

    audit.record(db, entries, [write_all])
    # a device given twice is "added" once (its first mention), "updated" after that
    seen: set[str] = set()
    out = []
    for creds, _ in parsed:
        key = creds.device.hex
        out.append(ImportedDevice(creds, key in new and key not in seen))
        seen.add(key)
    return BulkImport(tuple(out))
