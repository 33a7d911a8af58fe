"""`signer audit verify` and `export` as an auditor runs them, against tampering done with
sqlite3 directly; records are re-hashed independently (``tests.audit_rows``)."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path

import pytest

from signer.registry import audit
from signer.registry.auditchain import AuditEntry
from signer.registry.db import open_database
from tests.support.audit_rows import FIELDS, assert_chain, execute, rows
from tests.support.cli import signer
from tests.support.constants import SUPPLIER_EUI
from tests.support.hsm import Hsm, ensure_vector_keys
from tests.support.server import write_config

T0 = dt.datetime(2024, 6, 1, 12, 0, tzinfo=dt.UTC)


@pytest.fixture
def trail(hsm: Hsm, vectors: Path, tmp_path: Path) -> tuple[Path, Path]:
    """A database whose trail holds a refused key command run through the CLI, then five
    signatures; returns (config, database file)."""
    ensure_vector_keys(hsm.token(), vectors, "z1-supplier-ds")
    path = tmp_path / "signer.db"
    config = write_config(tmp_path / "signer.toml", hsm, f"sqlite:///{path}")
    out = signer(
        "keys",
        "csr",
        "--label",
        "z1-supplier-ds",
        "--eui",
        SUPPLIER_EUI,
        "--config",
        str(config),
        check=False,
    )
    assert out.returncode == 1 and "not in the key ledger" in out.stderr
    db = open_database(f"sqlite:///{path}")
    for i in range(5):
        audit.record(
            db,
            [
                AuditEntry(
                    at=T0 + dt.timedelta(minutes=i),
                    client="CN=backoffice",
                    operation="resign",
                    call_id=f"req-{i}",
                    image_id="ab" * 32,
                    digest=hashlib.sha256(bytes([i])).hexdigest(),
                    key_label="z1-supplier-ds",
                    key_ski="44899792d196f4b8",
                    device_count=i + 1,
                    details={"purpose": "supplier-ds"},
                )
            ],
        )
    db.dispose()
    return config, path


def verify(config: Path, *extra: str) -> tuple[int, str]:
    out = signer("audit", "verify", "--config", str(config), *extra, check=False)
    assert out.returncode in (0, 3), out.stderr  # 3: not verified (README "Exit codes")
    return out.returncode, out.stdout


def test_help_describes_the_audit_commands() -> None:
    text = signer("audit", "--help").stdout
    assert "verify" in text and "export" in text and "hash" in text
    assert "--anchor" in signer("audit", "verify", "--help").stdout
    assert "--since" in signer("audit", "export", "--help").stdout
    assert "audit" in signer("--help").stdout


def test_a_fresh_trail_verifies_and_prints_its_head(trail: tuple[Path, Path]) -> None:
    config, path = trail
    first = rows(path)[0]
    assert (first["operation"], first["outcome"]) == ("key-csr", "refused")
    assert first["client"].startswith("cli:") and first["method"] == "signer keys csr"
    assert len(first["call_id"]) == 32  # a fresh request ID per command
    assert assert_chain(path) == 6
    code, text = verify(config)
    head_hash = rows(path)[-1]["hash"]
    assert code == 0, text
    assert "intact" in text and f"seq 6 hash {head_hash}" in text
    assert f"--anchor 6:{head_hash}" in text
    code, text = verify(config, "--json")
    report = json.loads(text)
    assert report["intact"] and report["head"] == {"seq": 6, "hash": head_hash}
    assert verify(config, "--anchor", f"6:{head_hash}")[0] == 0
    code, text = verify(config, "--anchor", "6:" + "0" * 64)
    assert code == 3 and "anchor" in text


def test_an_edited_record_is_named(trail: tuple[Path, Path]) -> None:
    config, path = trail
    execute(path, "UPDATE audit_records SET client = 'CN=someone-else' WHERE seq = 3")
    code, text = verify(config)
    assert code == 3
    assert "BROKEN at record 3 (edited)" in text and "good up to record 2" in text
    report = json.loads(verify(config, "--json")[1])
    assert report["first_bad"]["seq"] == 3 and report["first_bad"]["kind"] == "edited"
    execute(path, "UPDATE audit_records SET client = 'CN=backoffice' WHERE seq = 3")
    assert verify(config)[0] == 0  # put back as it was: intact again


def test_a_deleted_record_is_named(trail: tuple[Path, Path]) -> None:
    config, path = trail
    execute(path, "DELETE FROM audit_records WHERE seq = 4")
    code, text = verify(config)
    assert code == 3 and "BROKEN at record 4 (deleted)" in text


def test_a_deleted_record_is_named_when_the_rest_is_renumbered(trail: tuple[Path, Path]) -> None:
    config, path = trail
    execute(path, "DELETE FROM audit_records WHERE seq = 3")
    for seq in (4, 5, 6):  # close the gap, and move the head back onto the last record
        execute(path, "UPDATE audit_records SET seq = ? WHERE seq = ?", seq - 1, seq)
    execute(path, "UPDATE audit_head SET seq = 5")
    code, text = verify(config)
    assert code == 3 and "BROKEN at record 3 (deleted)" in text, text
    assert "sealed as 4" in text and "good up to record 2" in text
    report = json.loads(verify(config, "--json")[1])
    assert (report["first_bad"]["seq"], report["first_bad"]["kind"]) == (3, "deleted")


def test_a_deleted_tail_is_named_through_the_head(trail: tuple[Path, Path]) -> None:
    config, path = trail
    execute(path, "DELETE FROM audit_records WHERE seq >= 5")
    code, text = verify(config)
    assert code == 3 and "BROKEN at record 5 (truncated)" in text


def test_swapped_records_are_named_as_reordered(trail: tuple[Path, Path]) -> None:
    config, path = trail
    for sql in (
        "UPDATE audit_records SET seq = -2 WHERE seq = 2",
        "UPDATE audit_records SET seq = 2 WHERE seq = 3",
        "UPDATE audit_records SET seq = 3 WHERE seq = -2",
    ):
        execute(path, sql)
    code, text = verify(config)
    assert code == 3 and "BROKEN at record 2 (reordered)" in text


def test_export_writes_every_record_as_a_json_line(
    trail: tuple[Path, Path], tmp_path: Path
) -> None:
    config, path = trail
    db = open_database(f"sqlite:///{path}")
    audit.record(
        db,
        [
            AuditEntry(  # non-ASCII details, as a CertificateRejected reason has
                at=T0,
                client="cli:zoë@host",
                operation="key-install-cert",
                outcome="refused",
                details={"reason": "the certificate's public key (SHA-256 0a1b…) is not the key's"},
            )
        ],
    )
    db.dispose()
    out = tmp_path / "audit.jsonl"
    signer("audit", "export", "--config", str(config), "--out", str(out))
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    stored = rows(path)
    assert len(lines) == len(stored) == 7
    for line, row in zip(lines, stored, strict=True):
        assert {k: line[k] for k in FIELDS if k != "details"} == {
            k: row[k] for k in FIELDS if k != "details"
        }
        assert line["hash"] == row["hash"]
        assert line["details"] == json.loads(row["details"])
        assert line["details_text"] == row["details"]  # the hashed text, verbatim
        # the chain can be checked from the export alone, with the README's form
        values = [
            "signer-audit/1",
            *(line["details_text"] if k == "details" else line[k] for k in FIELDS),
        ]
        assert (
            hashlib.sha256(
                json.dumps(values, ensure_ascii=True, separators=(",", ":")).encode("ascii")
            ).hexdigest()
            == line["hash"]
        )
        # or by re-serialising details exactly as documented: sorted, compact, ASCII-escaped
        assert (
            json.dumps(line["details"], sort_keys=True, separators=(",", ":"), ensure_ascii=True)
            == line["details_text"]
        )
    assert "\\u2026" in lines[-1]["details_text"] and "…" in lines[-1]["details"]["reason"]
    assert (
        json.dumps(lines[-1]["details"], sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        != lines[-1]["details_text"]
    )  # why it matters
    since = signer("audit", "export", "--config", str(config), "--since", "4").stdout
    assert [json.loads(line)["seq"] for line in since.splitlines()] == [5, 6, 7]


def test_no_csr_is_written_without_its_record(trail: tuple[Path, Path], tmp_path: Path) -> None:
    """`signer keys csr` with the audit table refusing inserts: exit 1, no request file."""
    config, path = trail
    signer("keys", "activate", "--label", "z1-supplier-ds", "--config", str(config))
    before = rows(path)
    out_file = tmp_path / "z1.csr"
    execute(
        path,
        "CREATE TRIGGER audit_down BEFORE INSERT ON audit_records "
        "BEGIN SELECT RAISE(ABORT, 'audit store full'); END",
    )
    try:
        out = signer(
            "keys",
            "csr",
            "--label",
            "z1-supplier-ds",
            "--eui",
            SUPPLIER_EUI,
            "--out",
            str(out_file),
            "--config",
            str(config),
            check=False,
        )
    finally:
        execute(path, "DROP TRIGGER audit_down")
    assert out.returncode == 1 and "audit trail unavailable" in out.stderr, out.stderr
    assert not out_file.exists() and "BEGIN CERTIFICATE REQUEST" not in out.stdout
    assert rows(path) == before
    signer(
        "keys",
        "csr",
        "--label",
        "z1-supplier-ds",
        "--eui",
        SUPPLIER_EUI,
        "--out",
        str(out_file),
        "--config",
        str(config),
    )  # the trail is back: it is written
    assert out_file.read_bytes().startswith(b"-----BEGIN CERTIFICATE REQUEST-----")
    assert rows(path)[-1]["operation"] == "key-csr" and assert_chain(path) == len(before) + 1
