"""The fleet an activation benchmark needs on top of bench/setup_env.py's environment.

A three-entry strict CPL (BENCH-1 -> BENCH-2 -> BENCH-3, ESME, model BENCH-M1; BENCH-3 records
the benchmark image), devices bulk-inserted with inventory on BENCH-2 (so the pathway permits
the upgrade) whose Supplier digital-signing cell names the token's Supplier key, and the CS06
pre-commands the DCC would return for the SR 11.3 requests built for them.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import time
from collections.abc import Callable
from typing import cast

from setup_env import (  # bench/ is sys.path[0]
    CELLS,
    MANUFACTURER_CODE,
    SUPPLIER_EUI,
    supplier_cells,
)
from sqlalchemy import Table, insert

from signer.registry.db import open_database
from signer.registry.models import Device

BATCH = 1000  # device IDs (or pre-commands) per stream message
IMAGE = bytes((i * 13 + 5) & 0xFF for i in range(300))  # the Manufacturer Image activated
DIGEST = hashlib.sha256(IMAGE).digest()
FILE_VERSION = 2  # harness.ota_header's file version: the CPL writes it as 00000002
MODEL = "BENCH-M1"
TARGET_ENTRY = "BENCH-3"
CURRENT_ENTRY = "BENCH-2"
HARDWARE_VERSION = 1

EuiOf = Callable[[int], str]


def activation_eui(i: int) -> str:
    """Devices of the throughput runs (prefix 00-DA), disjoint from setup_env's 00-DB."""
    return f"00-DA-00-00-00-{i >> 16 & 0xFF:02X}-{i >> 8 & 0xFF:02X}-{i & 0xFF:02X}"


def campaign_eui(i: int) -> str:
    """Devices of the campaign (prefix 00-DC), up to 2**24."""
    return f"00-DC-00-00-00-{i >> 16 & 0xFF:02X}-{i >> 8 & 0xFF:02X}-{i & 0xFF:02X}"


def cpl_csv(image_hash: bytes) -> list[str]:
    head = (
        "entry_id,manufacturer_code,device_type,model,image_type,hardware_version,"
        "firmware_version,image_hash,upgrade_from,zigbee_chipset_vendor,"
        "zigbee_stack_version,band_join_option"
    )
    rows = [
        ("BENCH-1", "00000000", hashlib.sha256(b"BENCH-1").hexdigest(), "N/A"),
        (CURRENT_ENTRY, "00000001", hashlib.sha256(b"BENCH-2").hexdigest(), "BENCH-1"),
        (TARGET_ENTRY, f"{FILE_VERSION:08X}", image_hash.hex(), CURRENT_ENTRY),
    ]
    return [head] + [
        f"{e},{MANUFACTURER_CODE:04X},ESME,{MODEL},0001,{HARDWARE_VERSION:04X},{v},{h},{p},,,"
        for e, v, h, p in rows
    ]


def import_cpl(db_url: str) -> None:
    from signer.cpl.parse import read_csv
    from signer.registry import cpl

    db = open_database(db_url)
    report = cpl.import_entries(db, read_csv(cpl_csv(DIGEST)), dt.datetime.now(dt.UTC))
    db.dispose()
    if not report.applied:
        raise RuntimeError(f"CPL import failed: {report.errors}")


def add_inventory_devices(db_url: str, eui_of: EuiOf, n: int, ski_hex: str) -> float:
    """``n`` devices with inventory (ESME, hw 1, on BENCH-2) and a Supplier digital-signing
    management cell naming ``ski_hex``: batched SQLAlchemy Core inserts, generated batch by
    batch (1,000,000 never sit in memory). Returns the seconds it took."""
    t = time.perf_counter()
    now = dt.datetime.now(dt.UTC)
    db = open_database(db_url)
    step = 10_000
    with db.engine.begin() as conn:
        for start in range(0, n, step):
            chunk = [eui_of(i).replace("-", "") for i in range(start, min(n, start + step))]
            conn.execute(
                insert(cast(Table, Device.__table__)),
                [
                    {
                        "eui": e,
                        "updated_at": now,
                        "device_type": "ESME",
                        "hardware_version": HARDWARE_VERSION,
                        "current_entry_id": CURRENT_ENTRY,
                    }
                    for e in chunk
                ],
            )
            conn.execute(insert(CELLS), supplier_cells(chunk, ski_hex))
    db.dispose()
    return time.perf_counter() - t


def cs06_pre_command(
    *,
    originator: str,
    recipient: str,
    counter: int,
    firmware_hash: bytes,
    execution_time: str | None = None,
    message_code: int = 0x0012,
    cra_flag: int = 0x01,
) -> bytes:
    """A GBCS CS06 pre-command laid out by hand from spec section 6, as the DCC would send it
    (a copy of tests/support/independent.py's, so the bench does not import tests/)."""
    content = b"\x04\x20" + firmware_hash
    value = counter.to_bytes((counter.bit_length() + 8) // 8, "big")
    content += bytes([0x02, len(value)]) + value
    if execution_time is not None:
        content += bytes([0x18, len(execution_time)]) + execution_time.encode()
    content = bytes([0x30, len(content)]) + content
    return (
        bytes([0xDF, 0x09, cra_flag])
        + counter.to_bytes(8, "big")
        + b"\x08"
        + bytes.fromhex(originator.replace("-", ""))
        + b"\x08"
        + bytes.fromhex(recipient.replace("-", ""))
        + b"\x00"
        + b"\x02"
        + message_code.to_bytes(2, "big")
        + bytes([len(content)])
        + content
    )


def pre_commands(built: list[tuple[str, int]]) -> list[bytes]:
    """The CS06 pre-commands answering the 11.3 requests built for (device, counter)."""
    return [
        cs06_pre_command(originator=str(SUPPLIER_EUI), recipient=d, counter=c, firmware_hash=DIGEST)
        for d, c in built
    ]
