"""What bench/kill9.py and bench/load.py share: a production-like fleet and the audit read.

The environment is bench/setup_env.py's (token, Supplier and XML-signing keys with self-issued
SMKI certificates, manufacturer key, ``[duis] schema_dir`` so every document is validated,
the audit trail on as always) plus activation_env's strict CPL (BENCH-1 -> BENCH-2 ->
BENCH-3, BENCH-3 = the image) and devices with inventory on BENCH-2 whose Supplier cell names
the token key. ``[cpl] mode = "strict"`` is written out. The server runs in development mode
(plaintext, no client certificates): mTLS is not what these scripts test.

The audit trail is read and re-hashed here with sqlite3 / psycopg and the README's canonical
form, not with the project's code (as tests/support/audit_rows.py does; bench does not import
tests/).
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from activation_env import (  # bench/ is sys.path[0]
    DIGEST,
    FILE_VERSION,
    IMAGE,
    activation_eui,
    add_inventory_devices,
    cs06_pre_command,
    import_cpl,
)
from harness import ROOT, Env, Harness, Server, child_env, log, stub, verify_delivery
from setup_env import SUPPLIER_EUI

from signer.api._proto.signer.v1 import signer_pb2 as pb

FIRMWARE_VERSION = f"{FILE_VERSION:08X}"  # BuildDUIS must name the image's CPL version
TARGET_ENTRY, START_ENTRY = "BENCH-3", "BENCH-1"


@dataclass
class Fleet:
    """The environment, its devices and the verified image."""

    env: Env
    devices: list[str]
    image_id: str = ""


def prepare(h: Harness, devices: int, db_url: str | None, *, server: str = "") -> Fleet:
    """Token, keys, strict CPL imported, ``devices`` inventory devices; ``server`` is added
    to the [server] section (e.g. ``workers = 16``)."""
    log(f"setting up token, DB and config in {h.tmp}")
    env = h.provision(0, db_url)
    import_cpl(env.db_url)
    add_inventory_devices(env.db_url, activation_eui, devices, env.supplier_ski)
    with open(env.config, encoding="utf-8") as f:
        text = f.read()
    text = text.replace("dev_mode = true\n", f"dev_mode = true\n{server}\n", 1)
    with open(env.config, "w", encoding="utf-8") as f:
        f.write(text + '\n[cpl]\nmode = "strict"\n')
    return Fleet(env, [activation_eui(i) for i in range(devices)])


def verify_image(fleet: Fleet, server: Server) -> str:
    fleet.image_id = verify_delivery(stub(server.address), fleet.env.manufacturer(), IMAGE)
    return fleet.image_id


def counter_of(request_id: str) -> int:
    return int(request_id.rsplit(":", 1)[1])


def pre_command(device: str, counter: int) -> bytes:
    """The CS06 pre-command the DCC returns for the 11.3 request (device, counter)."""
    return cs06_pre_command(
        originator=str(SUPPLIER_EUI), recipient=device, counter=counter, firmware_hash=DIGEST
    )


def sign_request(device: str, counter: int) -> pb.SignPreCommandRequest:
    return pb.SignPreCommandRequest(
        pre_command=pre_command(device, counter), accept_unauthenticated=True
    )


def audit_verify(env: Env) -> subprocess.CompletedProcess[str]:
    """The operator's ``signer audit verify`` on the environment's config."""
    return subprocess.run(
        [sys.executable, "-m", "signer.cli.main", "audit", "verify", "--config", env.config],
        capture_output=True,
        text=True,
        env=child_env({"SOFTHSM2_CONF": env.softhsm2_conf}),
        cwd=ROOT,
        timeout=600,
        check=False,
    )


# -- the audit trail, read without the project's code --------------------------------------

FIELDS = (
    "seq",
    "at",
    "client",
    "call_id",
    "method",
    "operation",
    "outcome",
    "image_id",
    "digest",
    "key_label",
    "key_ski",
    "certificate_serial",
    "device_count",
    "duis_request_id",
    "details",
    "prev_hash",
)


@contextmanager
def _rows_of(db_url: str, sql: str) -> Iterator[list[dict[str, Any]]]:
    if db_url.startswith("postgresql"):
        import psycopg
        from psycopg.rows import dict_row

        libpq = "postgresql://" + db_url.split("://", 1)[1]  # without SQLAlchemy's +driver
        with psycopg.connect(libpq, row_factory=dict_row) as pg:
            yield [dict(r) for r in pg.execute(sql).fetchall()]
        return
    with sqlite3.connect(db_url.removeprefix("sqlite:///")) as conn:
        conn.row_factory = sqlite3.Row
        yield [dict(r) for r in conn.execute(sql).fetchall()]


def audit_rows(db_url: str) -> list[dict[str, Any]]:
    with _rows_of(db_url, "SELECT * FROM audit_records ORDER BY seq") as rows:
        return rows


def chain_breaks(db_url: str, rows: list[dict[str, Any]]) -> list[str]:
    """Every record re-hashed (SHA-256 of ["signer-audit/1", seq, at, ..., prev_hash]) and
    linked to the one before, and the head row naming the last: what is wrong, if anything."""
    problems: list[str] = []
    prev = "0" * 64
    for n, row in enumerate(rows, start=1):
        values = ["signer-audit/1", *(row[f] for f in FIELDS)]
        digest = hashlib.sha256(json.dumps(values, separators=(",", ":")).encode()).hexdigest()
        if row["seq"] != n or row["prev_hash"] != prev or row["hash"] != digest:
            problems.append(f"audit record {row['seq']} does not chain (position {n})")
        prev = row["hash"]
    with _rows_of(db_url, "SELECT seq, hash FROM audit_head") as head:
        if not head or (int(head[0]["seq"]), str(head[0]["hash"])) != (len(rows), prev):
            problems.append(f"audit_head {head} does not name the last record")
    return problems
