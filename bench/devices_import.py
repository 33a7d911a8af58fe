"""Benchmark: `signer devices import` of 100,000 devices (SR 6.24.1 responses) in one go.

    .venv/bin/python bench/devices_import.py [--runs N] [--quick] [--devices N] [--keep]

A report, not a test: prints one table and exits 0 even when a goal fails.

Data (generated, fixed): one raw 6.24.1 response per device, as the published CS02a
response is made (a General-Signing APDU from the device, two remote parties, five trust
anchor cells: the Supplier's digital-signing, key-agreement and prepayment cells, the
Network Operator's two), one hex line each: the stream `signer devices import
--unauthenticated-gbcs -` reads. Half of the devices are already registered (their cells
are replaced), half are new. Every run uses a fresh SQLite database, migrated, seeded with the
registered half at driver speed (not timed).

Candidate, in-process, what the command does after reading its input: every response
parsed (`signer.service.devices.CredentialsReader`), then `import_credentials`: one
transaction with the devices, their cells and one `device-import` audit record per
response (hash-chained). Rows: the whole import (absolute goal: seconds, not minutes), and
its database part against the BASELINE: the same device and cell rows written with raw
`executemany` through the same driver (sqlite3) in one transaction, on a database seeded the
same way (old cells deleted first, as an import must), without audit records. Context rows:
the parsing alone, and the import as it was before (the ORM, one device at a time) on a
sample, extrapolated.

Candidate and baseline alternate inside every run (this machine's CPU speed drifts); the
table shows medians of the runs and the median per-run ratio.
"""

from __future__ import annotations

import datetime as dt
import shutil
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from harness import ROOT, arguments, log, runs_of  # bench/ is sys.path[0]
from report import RATIO_NOTE, Row, per_run, print_table, title

if str(ROOT) not in sys.path:
    sys.path.insert(1, str(ROOT))  # tests.support.gbcs_responses; bench/ stays sys.path[0]

from signer.caller import Caller, bound
from signer.gbcs.trust_anchor import DeviceCredentials, decode_payload_text
from signer.registry import devices as registry
from signer.registry.db import Database, open_database
from signer.service import devices as service
from signer.service.dcc import Origin
from tests.support.gbcs_responses import response

DEVICES = 100_000
SAMPLE = 2_000  # devices of the "before" (ORM) context row, extrapolated
GOAL_SECONDS = 30.0  # the whole import of 100,000 devices: seconds, not minutes
GOAL_DB_RATIO = 3.0  # its database part against raw executemany of the same rows
NOW = dt.datetime(2024, 6, 1, 12, 0, tzinfo=dt.UTC)


# -- the data: 6.24.1 responses (tests/support/gbcs_responses.py) ------------------------


def stream(count: int) -> list[bytes]:
    """The hex lines `devices import -` reads."""
    return [response(n).hex().upper().encode() for n in range(count)]


# -- the parts ----------------------------------------------------------------------------


def parse_all(lines: Sequence[bytes]) -> list[tuple[DeviceCredentials, Origin]]:
    reader = service.CredentialsReader(dcc_certificates=(), now=NOW, accept_unauthenticated=True)
    return [reader.parse(line) for line in lines]


def fresh(directory: Path, name: str, registered: Sequence[DeviceCredentials]) -> Database:
    """A migrated SQLite database holding ``registered`` (written at driver speed)."""
    path = directory / f"{name}.sqlite"
    for p in directory.glob(f"{name}.sqlite*"):
        p.unlink()
    db = open_database(f"sqlite:///{path}")
    with db.session() as s:
        registry.write_many_credentials(s, registered, NOW)
    return db


def candidate(db: Database, parsed: Sequence[tuple[DeviceCredentials, Origin]]) -> float:
    caller = Caller(identity="cli:bench@host", request_id="bench", method="signer devices import")
    start = time.perf_counter()
    with bound(caller):
        done = service.import_credentials(db, parsed, NOW)
    seconds = time.perf_counter() - start
    assert len(done.devices) == len(parsed)
    return seconds


def baseline(path: Path, parsed: Sequence[tuple[DeviceCredentials, Origin]]) -> float:
    """The same device and cell rows, raw ``executemany`` through sqlite3, one transaction."""
    stamp = NOW.strftime("%Y-%m-%d %H:%M:%S.%f")
    keys = [c.device.hex for c, _ in parsed]
    cells = [
        (c.device.hex, x.role, x.key_usage.value, int(x.cell_usage), x.subject_eui.hex, x.ski.hex())
        for c, _ in parsed
        for x in c.cells
    ]
    conn = sqlite3.connect(path, timeout=30)
    try:
        start = time.perf_counter()
        with conn:
            conn.executemany(
                "DELETE FROM trust_anchor_cells WHERE device_eui = ?", [(k,) for k in keys]
            )
            conn.executemany(
                "INSERT INTO devices (eui, updated_at) VALUES (?, ?) "
                "ON CONFLICT (eui) DO UPDATE SET updated_at = excluded.updated_at",
                [(k, stamp) for k in keys],
            )
            conn.executemany(
                "INSERT INTO trust_anchor_cells (device_eui, role, key_usage, cell_usage, "
                "subject_eui, ski) VALUES (?, ?, ?, ?, ?, ?)",
                cells,
            )
        return time.perf_counter() - start
    finally:
        conn.close()


def before(db: Database, parsed: Sequence[tuple[DeviceCredentials, Origin]]) -> float:
    """The import as it was: the ORM, one device at a time (``write_credentials``)."""
    start = time.perf_counter()
    with db.session() as s:
        for creds, _ in parsed:
            registry.write_credentials(s, creds, NOW)
    return time.perf_counter() - start


def timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> int:
    ap = arguments(
        __doc__ or "",
        quick="smoke run: 1 run of 10,000 devices; not a measurement",
        keep="keep the temp dir (the databases)",
    )
    ap.add_argument("--devices", type=int, default=DEVICES, help="devices (default 100,000)")
    args = ap.parse_args()
    runs = runs_of(args)
    count = 10_000 if args.quick else max(1_000, args.devices)
    directory = Path(tempfile.mkdtemp(prefix="bench-devices-"))
    log(f"generating {count:,} responses")
    lines = stream(count)
    parsed = parse_all(lines)
    # the data is what the command would see: the stream's lines decode and parse
    assert decode_payload_text(lines[-1]) == response(count - 1)
    registered = [c for c, _ in parsed[: count // 2]]
    rows = {
        "whole": Row(
            f"import of {count:,} devices: parse + one transaction (cells, audit)",
            "s",
            goal_kind="max_abs",
            goal=GOAL_SECONDS * count / DEVICES,
        ),
        "db": Row(
            "  its database part (import_credentials) vs raw executemany of the rows",
            "s",
            goal_kind="max_ratio",
            goal=GOAL_DB_RATIO,
        ),
        "parse": Row("  its parsing (CredentialsReader.parse per response)", "s"),
        "before": Row(
            f"import as it was (ORM per device), {SAMPLE:,}-device sample, EXTRAPOLATED",
            "s",
        ),
    }
    try:
        for run in range(runs):
            log(f"run {run + 1} of {runs}")
            parse_s = timed(lambda: parse_all(lines))
            cand_db = fresh(directory, "candidate", registered)
            base_db = fresh(directory, "baseline", registered)
            base_db.dispose()
            if run % 2 == 0:
                cand = candidate(cand_db, parsed)
                base = baseline(directory / "baseline.sqlite", parsed)
            else:
                base = baseline(directory / "baseline.sqlite", parsed)
                cand = candidate(cand_db, parsed)
            cand_db.dispose()
            rows["whole"].add(parse_s + cand)
            rows["db"].add(cand, base)
            rows["parse"].add(parse_s)
            old_db = fresh(directory, "before", registered[: SAMPLE // 2])
            sample = parsed[: SAMPLE // 2] + parsed[count // 2 : count // 2 + SAMPLE // 2]
            rows["before"].add(before(old_db, sample) * count / SAMPLE)
            old_db.dispose()
    finally:
        if not args.keep:
            shutil.rmtree(directory, ignore_errors=True)
        else:
            log(f"kept {directory}")
    table = list(rows.values())
    print_table(table, title("devices import", quick=args.quick, runs=runs))
    print(RATIO_NOTE)
    print(
        f"  {count:,} responses of 5 cells each, half to registered devices; SQLite; "
        f"audit records: one per response"
    )
    per_run(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
