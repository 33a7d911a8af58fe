"""Issue 15: `cpl path` per device from a file, its exit codes (4 no path, 5 not on the
CPL), `--json` for `cpl path` and `cpl import`, and `cpl graph` on a large CPL."""

from __future__ import annotations

import json
from pathlib import Path

from tests.support.cli import signer
from tests.support.constants import SUPPLIER_EUI

HEAD = (
    "entry_id,manufacturer_code,device_type,model,image_type,hardware_version,"
    "firmware_version,image_hash,upgrade_from,zigbee_chipset_vendor,zigbee_stack_version,"
    "band_join_option\n"
)
# P-1 -> P-2 -> P-3 (model P); Q-1 (model Q, a root with no way to P)
ROWS = (("P-1", "P", "N/A"), ("P-2", "P", "P-1"), ("P-3", "P", "P-2"), ("Q-1", "Q", "N/A"))
ON_P1, ON_Q1, NO_ENTRY, UNKNOWN = (
    "00-DB-00-00-00-00-00-01",
    "00-DB-00-00-00-00-00-02",
    "00-DB-00-00-00-00-00-03",
    "00-DB-00-00-00-00-00-04",
)


def setup(tmp_path: Path) -> tuple[str, ...]:
    config = tmp_path / "signer.toml"
    config.write_text(
        f'[supplier]\neui = "{SUPPLIER_EUI}"\n\n'
        f'[database]\nurl = "sqlite:///{tmp_path / "db.sqlite"}"\n'
    )
    cpl = tmp_path / "cpl.csv"
    cpl.write_text(
        HEAD
        + "".join(
            f"{e},121D,ESME,{m},0001,0001,0000000{i},{f'{i:02x}' * 32},{p},,,\n"
            for i, (e, m, p) in enumerate(ROWS, 1)
        )
    )
    imported = json.loads(
        signer("cpl", "import", str(cpl), "--json", "--config", str(config)).stdout
    )
    assert imported.pop("elapsed_seconds") >= 0
    assert imported == {
        "entries": 4,
        "models": 2,
        "added": 4,
        "updated": 0,
        "unchanged": 0,
        "bad_rows": 0,
        "absent_columns": [],
    }
    inventory = tmp_path / "inventory.csv"
    inventory.write_text(
        "device_id,device_type,hardware_version,current_entry_id\n"
        f"{ON_P1},ESME,0001,P-1\n{ON_Q1},ESME,0001,Q-1\n"
    )
    assert (
        json.loads(
            signer("devices", "inventory", str(inventory), "--json", "--config", str(config)).stdout
        )["devices"]
        == 2
    )
    signer("devices", "set", NO_ENTRY, "--type", "ESME", "--config", str(config))
    return ("--config", str(config))


def test_single_path_exit_codes_and_json(tmp_path: Path) -> None:
    cfg = setup(tmp_path)
    ok = signer("cpl", "path", "--from", "P-1", "--to", "P-3", *cfg)
    assert ok.stdout.strip() == "P-1 -> P-2 -> P-3"
    as_json = json.loads(
        signer("cpl", "path", "--from", "P-1", "--to", "P-3", "--json", *cfg).stdout
    )
    assert as_json == {"from": "P-1", "to": "P-3", "path": ["P-1", "P-2", "P-3"]}
    none = signer("cpl", "path", "--from", "Q-1", "--to", "P-3", *cfg, check=False)
    assert none.returncode == 4
    assert none.stderr.strip() == "Error: no permitted upgrade path from Q-1 to P-3"
    none_json = signer("cpl", "path", "--from", "Q-1", "--to", "P-3", "--json", *cfg, check=False)
    assert none_json.returncode == 4 and json.loads(none_json.stdout)["path"] is None
    for args in (("--from", "Z-9", "--to", "P-3"), ("--from", "P-1", "--to", "Z-9")):
        missing = signer("cpl", "path", *args, *cfg, check=False)
        assert missing.returncode == 5
        assert missing.stderr.strip() == "Error: CPL entry 'Z-9' is not on the CPL"
    both = signer("cpl", "path", "--to", "P-3", *cfg, check=False)
    assert both.returncode == 2 and "exactly one of --from or --devices-file" in both.stderr


def test_paths_per_device_from_a_file(tmp_path: Path) -> None:
    cfg = setup(tmp_path)
    listed = tmp_path / "devices.txt"
    listed.write_text(f"{ON_P1}\n{ON_Q1}\n\n{NO_ENTRY}\n{UNKNOWN}\n")
    table = signer("cpl", "path", "--devices-file", str(listed), "--to", "P-3", *cfg, check=False)
    assert table.returncode == 4
    lines = table.stdout.splitlines()
    assert lines[0].split() == ["device", "current", "entry", "path", "to", "P-3"]
    assert lines[1].split() == [ON_P1, "P-1", "P-1", "->", "P-2", "->", "P-3"]
    assert "none (no permitted path)" in lines[2] and "Q-1" in lines[2]
    assert "none (inventory names no current CPL entry)" in lines[3]
    assert "none (not registered)" in lines[4]
    assert table.stderr.strip() == "3 of 4 device(s) have no path to P-3"
    rows = [
        json.loads(line)
        for line in signer(
            "cpl", "path", "--devices-file", str(listed), "--to", "P-3", "--json", *cfg, check=False
        ).stdout.splitlines()
    ]
    assert rows[0] == {
        "device": ON_P1,
        "current_entry_id": "P-1",
        "path": ["P-1", "P-2", "P-3"],
        "reason": None,
    }
    assert [r["reason"] for r in rows[1:]] == ["no_path", "no_current_entry", "not_registered"]
    only_ok = tmp_path / "ok.txt"
    only_ok.write_text(f"{ON_P1}\n")
    signer("cpl", "path", "--devices-file", str(only_ok), "--to", "P-2", *cfg)  # exit 0
    gone = signer("cpl", "path", "--devices-file", str(only_ok), "--to", "Z-9", *cfg, check=False)
    assert gone.returncode == 5 and "not on the CPL" in gone.stderr
    bad = tmp_path / "bad.txt"
    bad.write_text("not-an-eui\n")
    refused = signer("cpl", "path", "--devices-file", str(bad), "--to", "P-3", *cfg, check=False)
    assert refused.returncode == 1 and f"Error: {bad}: " in refused.stderr


def test_an_import_without_optional_columns_says_what_it_empties(tmp_path: Path) -> None:
    """Leaving optional columns out of the header is allowed, but a re-import then writes
    them empty over what was stored: the import says so, naming them."""
    cfg = setup(tmp_path)
    lean = tmp_path / "lean.csv"
    lean.write_text(
        "entry_id,manufacturer_code,device_type,model,hardware_version,firmware_version,"
        f"image_hash\nP-2,121D,ESME,P,0001,00000002,{'02' * 32}\n"
    )
    out = signer("cpl", "import", str(lean), "--json", *cfg)
    report = json.loads(out.stdout)
    assert (report["updated"], report["bad_rows"]) == (1, 0)
    absent = ["image_type", "upgrade_from", "zigbee_chipset_vendor", "zigbee_stack_version"]
    assert report["absent_columns"] == [*absent, "band_join_option"]
    [warning] = out.stderr.splitlines()
    assert warning.startswith(f"Warning: {lean}: the header has no image_type, upgrade_from")
    assert "no upgrade to those entries is permitted" in warning
    # and so P-2 can no longer be reached from P-1
    gone = signer("cpl", "path", "--from", "P-1", "--to", "P-3", *cfg, check=False)
    assert gone.returncode == 4, gone.stderr


def test_bad_rows_counts_rows_not_errors(tmp_path: Path) -> None:
    cfg = setup(tmp_path)
    bad = tmp_path / "bad.csv"
    # one row with three bad cells, one with one: two bad rows
    bad.write_text(
        HEAD
        + "B-1,XYZ,TOASTER,M,0001,0001,00000001,abcd,N/A,,,\n"
        + "B-2,121D,ESME,M,0001,0001,00000002,abcd,N/A,,,\n"
    )
    out = signer("cpl", "import", str(bad), "--json", *cfg, check=False)
    assert out.returncode == 1
    assert json.loads(out.stdout)["bad_rows"] == 2
    assert out.stderr.count("line 2, column") >= 2  # every error of the row is named
    assert "2 bad row(s): nothing was imported" in out.stderr


def test_graph_of_a_large_cpl_warns_and_draws_per_model(tmp_path: Path) -> None:
    cfg = setup(tmp_path)
    out = tmp_path / "g.dot"
    small = signer("cpl", "graph", "--out", str(out), "--target", "P-3", *cfg)
    assert "Warning" not in small.stderr
    assert '"P-3" [' in out.read_text() and "cluster_legend" in out.read_text()
    limited = signer("cpl", "graph", "--out", str(out), "--max-nodes", "2", "--target", "P-3", *cfg)
    warnings = [line for line in limited.stderr.splitlines() if line.startswith("Warning: ")]
    assert len(warnings) == 1 and "drawn one node per model" in warnings[0]
    text = out.read_text()
    assert '"model 121D P" [' in text and '"P-3" [' not in text and "target P-3" in text
    missing = signer("cpl", "graph", "--out", str(out), "--target", "Z-9", *cfg, check=False)
    assert missing.returncode == 5 and "not on the CPL" in missing.stderr
