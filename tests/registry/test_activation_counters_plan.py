"""A campaign batch's latest counters are read from the device index, never by originator.

A plan choice, not a speed: with only (device) beside the primary key (originator,
counter), SQLite without statistics chose the primary key for ``latest_counters`` and read
every activation the Supplier had issued, once per batch of 1,000 devices (252 ms among
500,000 activations, growing with the table). Migration 0010's (device, originator,
counter) index covers the query.
"""

from __future__ import annotations

from pathlib import Path

from signer.registry import activations
from signer.registry.db import open_database


def test_latest_counters_search_the_covering_device_index(tmp_path: Path) -> None:
    db = open_database(f"sqlite:///{tmp_path / 'p.db'}")
    try:
        sql = activations._LATEST_SQL.format(markers=activations._markers(3))
        params = ("90B3D51F30010000", "00DB000000000001", "00DB000000000002", "00DB000000000003")
        with db.engine.connect() as conn:
            rows = conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}", params).all()
    finally:
        db.dispose()
    plan = "\n".join(str(r[-1]) for r in rows)
    assert "COVERING INDEX ix_activations_device_counter (device_eui=? AND originator=?)" in plan
    assert "SCAN" not in plan and "autoindex" not in plan, plan
