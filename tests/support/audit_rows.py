"""The audit trail read and re-hashed without the project's code: sqlite3 or psycopg and the
README's canonical form, so a bug shared by the writer and the verifier cannot hide.

Each function takes the database as a SQLite file path or as the service's URL (SQLite or
PostgreSQL).
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.support.postgres import libpq_of

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

Target = Path | str


def db_file(url: str) -> Path:
    return Path(url.removeprefix("sqlite:///"))


@contextmanager
def _cursor(target: Target) -> Iterator[Any]:
    """A DB-API cursor with ``?`` placeholders turned into the driver's own."""
    if isinstance(target, str) and target.startswith("postgresql"):
        import psycopg
        from psycopg.rows import dict_row

        with psycopg.connect(libpq_of(target), row_factory=dict_row) as conn:
            yield _Pg(conn)
        return
    path = db_file(target) if isinstance(target, str) else target
    with sqlite3.connect(path) as conn:
        conn.row_factory = sqlite3.Row
        yield conn


class _Pg:
    def __init__(self, conn: Any) -> None:
        self._conn = conn

    def execute(self, sql: str, params: tuple[Any, ...] = ()) -> Any:
        return self._conn.execute(sql.replace("?", "%s"), params)


def rows(target: Target, after: int = 0) -> list[dict[str, Any]]:
    with _cursor(target) as conn:
        found = conn.execute(
            "SELECT * FROM audit_records WHERE seq > ? ORDER BY seq", (after,)
        ).fetchall()
    return [dict(r) for r in found]


def head(target: Target) -> tuple[int, str]:
    with _cursor(target) as conn:
        row = dict(conn.execute("SELECT seq, hash FROM audit_head").fetchone())
    return int(row["seq"]), str(row["hash"])


def expected_hash(row: dict[str, Any]) -> str:
    """SHA-256 of the documented form: ["signer-audit/1", seq, at, ..., details, prev_hash]."""
    values = ["signer-audit/1", *(row[f] for f in FIELDS)]
    return hashlib.sha256(json.dumps(values, separators=(",", ":")).encode()).hexdigest()


def assert_chain(path: Target) -> int:
    """Every record hashes to its stored hash and links to the one before; returns the count."""
    prev, n = "0" * 64, 0
    for n, row in enumerate(rows(path), start=1):
        assert row["seq"] == n, row
        assert row["prev_hash"] == prev, row
        assert expected_hash(row) == row["hash"], row
        prev = row["hash"]
    assert head(path) == (n, prev)
    return n


def execute(target: Target, sql: str, *params: Any) -> None:
    """Tamper with the database directly, as someone with write access could."""
    with _cursor(target) as conn:
        conn.execute(sql, params)


def query(target: Target, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    """Rows of a read, as tuples, straight from the driver."""
    with _cursor(target) as conn:
        return [tuple(dict(r).values()) for r in conn.execute(sql, params).fetchall()]


def _is_pg(target: Target) -> bool:
    return isinstance(target, str) and target.startswith("postgresql")


def fail_inserts(target: Target, table: str, name: str, message: str) -> None:
    """A trigger that makes every insert into ``table`` fail, as a full or broken store would
    (the trigger dialect differs: SQLite RAISE(ABORT), PostgreSQL a PL/pgSQL function)."""
    if _is_pg(target):
        execute(
            target,
            f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS "
            f"$$ BEGIN RAISE EXCEPTION '{message}'; END $$",
        )
        execute(
            target,
            f"CREATE TRIGGER {name} BEFORE INSERT ON {table} FOR EACH ROW "
            f"EXECUTE FUNCTION {name}()",
        )
    else:
        execute(
            target,
            f"CREATE TRIGGER {name} BEFORE INSERT ON {table} "
            f"BEGIN SELECT RAISE(ABORT, '{message}'); END",
        )


def allow_inserts(target: Target, table: str, name: str) -> None:
    if _is_pg(target):
        execute(target, f"DROP TRIGGER {name} ON {table}")
        execute(target, f"DROP FUNCTION {name}()")
    else:
        execute(target, f"DROP TRIGGER {name}")
