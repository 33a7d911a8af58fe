"""Issue 15: `devices import` of many files, directories and a stream in one transaction,
with a progress bar on a terminal and a summary; commands that need no token run without
token settings."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from pathlib import Path

from signer.gbcs.trust_anchor import parse_security_credentials_response
from tests.support.cli import signer
from tests.support.constants import SUPPLIER_EUI
from tests.support.gbcs_responses import device_eui, response

RAW = "--unauthenticated-gbcs"


def no_token_config(tmp_path: Path, token: str = "") -> Path:
    """A configuration with a database and a Supplier, and ``token`` as its [token] part."""
    path = tmp_path / "signer.toml"
    path.write_text(
        f'{token}\n[supplier]\neui = "{SUPPLIER_EUI}"\n\n'
        f'[database]\nurl = "sqlite:///{tmp_path / "db.sqlite"}"\n'
    )
    return path


def hex_file(directory: Path, n: int) -> Path:
    path = directory / f"device-{n:03}.hex"
    path.write_text(response(n).hex())
    return path


def run_with_input(*args: str, data: bytes) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "signer.cli.main", *args],
        input=data,
        capture_output=True,
        timeout=120,
    )


def shown(config: Path, n: int) -> subprocess.CompletedProcess[str]:
    return signer("devices", "show", device_eui(n), "--json", "--config", str(config), check=False)


def test_the_generated_responses_parse_as_their_devices() -> None:
    for n in (0, 1, 255, 4096):
        creds = parse_security_credentials_response(response(n))
        assert str(creds.device) == device_eui(n) and len(creds.cells) == 5


def test_files_a_directory_and_a_stream_import_together(tmp_path: Path) -> None:
    config = no_token_config(tmp_path)  # no [token] at all: this command needs none
    batch = tmp_path / "batch"
    batch.mkdir()
    for n in range(3):
        hex_file(batch, n)
    (batch / ".hidden").write_text("not a response")
    (batch / "sub").mkdir()
    single = hex_file(tmp_path, 10)
    stream = b"\n".join(response(n).hex().encode() for n in (20, 21)) + b"\n\n"
    proc = run_with_input(
        "devices", "import", RAW, str(batch), str(single), "-", "--config", str(config), data=stream
    )
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout.decode()
    assert f"{device_eui(0)}: added, 5 cells" in out
    summary = out.splitlines()[-1]
    assert summary.startswith("imported 6 response(s) from 5 file(s): 6 device(s) added, 0 ")
    assert summary.endswith(" s")
    # the unauthenticated acceptance is logged once per import, not once per response
    assert proc.stderr.decode().count("unauthenticated GBCS accepted") == 1
    for n in (0, 2, 10, 21):
        assert json.loads(shown(config, n).stdout)["eui"] == device_eui(n)
    again = run_with_input(
        "devices", "import", RAW, str(batch), "-", "--json", "--config", str(config), data=stream
    )
    assert again.returncode == 0, again.stderr
    report = json.loads(again.stdout)
    assert report.pop("elapsed_seconds") >= 0
    assert report == {"files": 4, "responses": 5, "devices": 5, "added": 0, "updated": 5}
    exported = signer("audit", "export", "--config", str(config)).stdout.splitlines()
    assert sum(json.loads(line)["operation"] == "device-import" for line in exported) == 11


def test_one_bad_response_anywhere_imports_none(tmp_path: Path) -> None:
    config = no_token_config(tmp_path)
    batch = tmp_path / "batch"
    batch.mkdir()
    hex_file(batch, 1)
    bad = batch / "device-002.hex"
    bad.write_text("DF0901")
    stream = response(3).hex().encode() + b"\nnot hex\n" + response(4).hex().encode()
    proc = run_with_input(
        "devices", "import", RAW, str(batch), "-", "--config", str(config), data=stream
    )
    assert proc.returncode == 1 and b"Traceback" not in proc.stderr
    err = proc.stderr.decode().splitlines()
    assert any(line.startswith(f"Error: {bad}: ") for line in err)
    assert any(line.startswith("Error: -: line 2: ") for line in err)
    assert err[-1].endswith("(2 bad files: none was imported)")
    for n in (1, 3, 4):
        missing = shown(config, n)
        # README "Exit codes": what was named does not exist
        assert missing.returncode == 5, missing.stderr
        assert missing.stderr == f"Error: device {device_eui(n)} is not registered\n"
    empty = tmp_path / "empty"
    empty.mkdir()
    refused = signer("devices", "import", RAW, str(empty), "--config", str(config), check=False)
    assert refused.returncode == 1
    assert f"Error: {empty}: is a directory with no file to import" in refused.stderr


def test_a_progress_bar_only_on_a_terminal(tmp_path: Path) -> None:
    config = no_token_config(tmp_path)
    files = [str(hex_file(tmp_path, n)) for n in range(4)]
    piped = signer("devices", "import", RAW, *files, "--config", str(config))
    assert "importing" not in piped.stderr and "checking" not in piped.stderr
    argv = [sys.executable, "-m", "signer.cli.main", "devices", "import", RAW, *files]
    leader, follower = pty.openpty()
    try:
        proc = subprocess.run(
            [*argv, "--config", str(config)],
            stdout=subprocess.PIPE,
            stderr=follower,
            timeout=120,
        )
        os.close(follower)
        drawn = b""
        try:
            while chunk := os.read(leader, 4096):
                drawn += chunk
        except OSError:  # the terminal's other end is closed: all was read
            pass
    finally:
        os.close(leader)
    assert proc.returncode == 0
    text = drawn.decode(errors="replace")
    assert "checking" in text and "importing" in text and "4/4" in text
    assert b"4 updated" in proc.stdout


CPL = (
    "entry_id,manufacturer_code,device_type,model,image_type,hardware_version,"
    "firmware_version,image_hash,upgrade_from,zigbee_chipset_vendor,zigbee_stack_version,"
    "band_join_option\n"
    + "".join(
        f"T-{i},121D,ESME,T-M,0001,0001,0000000{i},{f'{i:02x}' * 32},{p},,,\n"
        for i, p in ((1, "N/A"), (2, "T-1"))
    )
)


def test_commands_that_need_no_token_run_without_token_settings(tmp_path: Path) -> None:
    missing_pin = '[token]\nlabel = "absent"\npin_file = "/nonexistent/user.pin"\n'
    for token in ("", missing_pin):
        where = tmp_path / ("none" if not token else "missing-pin")
        where.mkdir()
        config = str(no_token_config(where, token))
        cpl = where / "cpl.csv"
        cpl.write_text(CPL)
        inventory = where / "inventory.csv"
        inventory.write_text(
            f"device_id,device_type,hardware_version,current_entry_id\n{device_eui(2)},ESME,0001,T-1\n"
        )
        hex_path = str(hex_file(where, 1))
        for argv in (
            ("db", "upgrade"),
            ("cpl", "import", str(cpl)),
            ("cpl", "path", "--from", "T-1", "--to", "T-2"),
            ("cpl", "graph", "--out", str(where / "g.dot")),
            ("devices", "inventory", str(inventory)),
            ("devices", "import", RAW, hex_path),
            ("devices", "show", device_eui(1)),
            ("devices", "set", device_eui(1), "--type", "ESME"),
            ("manufacturers", "list"),
            ("audit", "verify"),
            ("audit", "export"),
        ):
            signer(*argv, "--config", config)
        refused = signer("keys", "list", "--config", config, check=False)
        assert refused.returncode == 1 and "Traceback" not in refused.stderr
        why = "token.label is required" if not token else "cannot read PIN file"
        last = refused.stderr.splitlines()[-1]
        assert last.startswith("Error: ") and why in last
