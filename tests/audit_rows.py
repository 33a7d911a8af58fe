"""The audit trail read and re-hashed without the project's code: sqlite3 and the README's
canonical form, so a bug shared by the writer and the verifier cannot hide."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path
from typing import Any

FIELDS = ("seq", "at", "client", "call_id", "method", "operation", "outcome", "image_id",
          "digest", "key_label", "key_ski", "certificate_serial", "device_count",
          "duis_request_id", "details", "prev_hash")


def db_file(url: str) -> Path:
    return Path(url.removeprefix("sqlite:///"))


def rows(path: Path, after: int = 0) -> list[dict[str, Any]]:
    with sqlite3.connect(path) as conn:
        conn.row_factory = sqlite3.Row
        found = conn.execute("SELECT * FROM audit_records WHERE seq > ? ORDER BY seq",
                             (after,)).fetchall()
    return [dict(r) for r in found]


def head(path: Path) -> tuple[int, str]:
    with sqlite3.connect(path) as conn:
        seq, hash_ = conn.execute("SELECT seq, hash FROM audit_head").fetchone()
    return int(seq), str(hash_)


def expected_hash(row: dict[str, Any]) -> str:
    """SHA-256 of the documented form: ["signer-audit/1", seq, at, ..., details, prev_hash]."""
    values = ["signer-audit/1", *(row[f] for f in FIELDS)]
    return hashlib.sha256(json.dumps(values, separators=(",", ":")).encode()).hexdigest()


def assert_chain(path: Path) -> int:
    """Every record hashes to its stored hash and links to the one before; returns the count."""
    prev, n = "0" * 64, 0
    for n, row in enumerate(rows(path), start=1):
        assert row["seq"] == n, row
        assert row["prev_hash"] == prev, row
        assert expected_hash(row) == row["hash"], row
        prev = row["hash"]
    assert head(path) == (n, prev)
    return n


def execute(path: Path, sql: str, *params: Any) -> None:
    """Tamper with the database directly, as someone with write access could."""
    with sqlite3.connect(path) as conn:
        conn.execute(sql, params)
