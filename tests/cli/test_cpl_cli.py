"""The issue-3 command line as a user runs it: CPL import, paths, graph, inventory, activation."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from tests.support.cli import signer
from tests.support.constants import RTDS_DEVICE, SUPPLIER_EUI
from tests.support.hsm import Hsm
from tests.support.independent import assert_schema_valid, cs06_pre_command, ota_header
from tests.support.manufacturer import Manufacturer
from tests.support.server import prepare, start_server

IMAGE = b"CLI activation firmware " * 30
HEADER = ota_header(len(IMAGE), file_version=0x00000300)
HEAD = (
    "entry_id,manufacturer_code,device_type,model,image_type,hardware_version,"
    "firmware_version,image_hash,upgrade_from,zigbee_chipset_vendor,zigbee_stack_version,"
    "band_join_option\n"
)


def _cpl(tmp: Path) -> Path:
    rows = [
        ("C-1", "00000100", hashlib.sha256(b"C-1").hexdigest(), "N/A"),
        ("C-2", "00000200", hashlib.sha256(b"C-2").hexdigest(), "C-1"),
        ("C-3", "00000300", hashlib.sha256(IMAGE).hexdigest(), "C-2"),
    ]
    path = tmp / "cpl.csv"
    path.write_text(
        HEAD + "".join(f"{e},121D,ESME,CLI-M,0001,0001,{v},{h},{p},,,\n" for e, v, h, p in rows)
    )
    return path


def test_cpl_import_reports_every_bad_row_and_imports_nothing(
    hsm: Hsm, vectors: Path, manufacturer: Manufacturer, tmp_path: Path
) -> None:
    config, _db, _ = prepare(hsm, vectors, manufacturer, tmp_path)
    bad = tmp_path / "bad.csv"
    bad.write_text(
        HEAD
        + "B-1,121D,ESME,M,0001,0001,00000001,"
        + "00" * 32
        + ",N/A,,,\n"
        + "B-2,XYZ,ESME,M,0001,0001,00000002,"
        + "00" * 32
        + ",B-1,,,\n"
        + "B-3,121D,TOASTER,M,0001,0001,00000003,"
        + "11" * 32
        + ",B-2,,,\n"
        + "B-4,121D,ESME,M,0001,0001,00000004,abcd,B-3,,,\n"
    )
    out = signer("cpl", "import", str(bad), "--config", str(config), check=False)
    assert out.returncode == 1
    assert "line 3, column manufacturer_code" in out.stderr
    assert "line 4, column device_type" in out.stderr
    assert "line 5, column image_hash" in out.stderr
    assert "nothing was imported" in out.stderr
    path = signer(
        "cpl", "path", "--from", "B-1", "--to", "B-1", "--config", str(config), check=False
    )
    assert path.returncode == 5 and "not on the CPL" in path.stderr  # B-1 was not imported


def test_worked_example(
    hsm: Hsm, vectors: Path, manufacturer: Manufacturer, tmp_path: Path
) -> None:
    """CPL import, a refused device with its path, an activation and its pre-command."""
    config, _db, _ = prepare(hsm, vectors, manufacturer, tmp_path, cpl_mode="strict")
    cfg = ("--config", str(config))
    first = signer("cpl", "import", str(_cpl(tmp_path)), *cfg)
    assert "3 added" in first.stdout
    assert "3 unchanged" in signer("cpl", "import", str(_cpl(tmp_path)), *cfg).stdout
    assert (
        signer("cpl", "path", "--from", "C-1", "--to", "C-3", *cfg).stdout.strip()
        == "C-1 -> C-2 -> C-3"
    )
    behind = "00-DB-12-34-56-78-90-A1"
    inventory = tmp_path / "inventory.csv"
    inventory.write_text(
        "device_id,device_type,hardware_version,current_entry_id\n"
        f"{RTDS_DEVICE},ESME,0001,C-2\n{behind},ESME,0001,C-1\n"
    )
    assert "2 device(s) recorded" in signer("devices", "inventory", str(inventory), *cfg).stdout
    signer("cpl", "graph", "--model", "CLI-M", "--out", str(tmp_path / "g.dot"), *cfg)
    dot = (tmp_path / "g.dot").read_text()
    assert "C-1" in dot and "C-3" in dot and "1 device" in dot
    assert (tmp_path / "g.svg").read_text().lstrip().startswith(("<?xml", "<svg"))

    server = start_server(config, tmp_path / "server.log")
    try:
        srv = ("--server", server.address)
        for name, data in (("h", HEADER), ("i", IMAGE), ("s", manufacturer.sign(HEADER + IMAGE))):
            (tmp_path / name).write_bytes(data)
        (tmp_path / "hash").write_text(hashlib.sha256(IMAGE).hexdigest())
        verified = signer(
            "verify",
            "--ota-header",
            str(tmp_path / "h"),
            "--manufacturer-image",
            str(tmp_path / "i"),
            "--signature",
            str(tmp_path / "s"),
            "--hash",
            str(tmp_path / "hash"),
            "--out",
            str(tmp_path / "v.json"),
            *srv,
        )
        assert "VERIFIED" in verified.stdout
        image_id = json.loads((tmp_path / "v.json").read_text())["image_id"]
        out = tmp_path / "activation"
        done = signer(
            "activate",
            "--image-id",
            image_id,
            "--device",
            f"{RTDS_DEVICE},{behind}",
            "--out-dir",
            str(out),
            *srv,
            check=False,
        )
        assert done.returncode == 4, done.stderr  # done, with some devices refused
        assert "1 request(s)" in done.stdout and "1 refused" in done.stdout
        refused = json.loads((out / "refused.jsonl").read_text())
        assert refused["device_id"] == behind
        assert refused["upgrade_path"] == ["C-1", "C-2", "C-3"]
        request = (out / f"{RTDS_DEVICE}.xml").read_bytes()
        assert_schema_valid(request, vectors / "xsd")
        rid = request.split(b"<sr:RequestID>")[1].split(b"<")[0].decode()
        pre = tmp_path / "pre.hex"
        pre.write_text(
            cs06_pre_command(
                originator=SUPPLIER_EUI,
                recipient=RTDS_DEVICE,
                counter=int(rid.rsplit(":", 1)[1]),
                firmware_hash=hashlib.sha256(IMAGE).digest(),
            ).hex()
        )
        raw = ("sign-precommand", "--pre-command", str(pre), "--out-dir", str(tmp_path / "signed"))
        refused = signer(*raw, *srv, check=False)  # raw GBCS: the DCC's signature is absent
        assert refused.returncode == 2 and "--unauthenticated-gbcs" in refused.stderr
        signed = signer(*raw, "--unauthenticated-gbcs", *srv)
        assert rid in signed.stdout
        assert_schema_valid(
            (tmp_path / "signed/signed-pre-command.xml").read_bytes(), vectors / "xsd"
        )
    finally:
        assert server.stop() == 0
    assert "now runs CPL entry C-3" in signer("activations", "succeeded", rid, *cfg).stdout
    shown = json.loads(signer("devices", "show", RTDS_DEVICE, "--json", *cfg).stdout)
    assert shown["current_entry_id"] == "C-3"
