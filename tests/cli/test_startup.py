"""`signer serve` misconfigured: one line naming the setting, a non-zero exit, nothing left.

Each refusal comes before the next step starts: the file against the schema, the files it
names, the ports, the token and its XML-signing key, the database path, the migrations.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.hsm import Hsm
from tests.support.server import start_server, write_config


def _serve(config: Path) -> tuple[subprocess.CompletedProcess[str], float]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("SIGNER_")}
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "signer.cli.main", "serve", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        env=environ,
        check=False,
    )
    return done, time.monotonic() - started


def _refused(done: subprocess.CompletedProcess[str], named: str) -> str:
    """The one error line, which names the setting; no traceback, never READY."""
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr and "READY" not in done.stdout
    [line] = [ln for ln in done.stderr.splitlines() if ln.startswith("Error:")]
    assert named in line, done.stderr
    return line


@pytest.fixture()
def taken() -> Iterator[str]:
    """A port in use (listening) for the test's duration."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield f"127.0.0.1:{s.getsockname()[1]}"


def _config(tmp_path: Path, hsm: Hsm, extra: str = "", **kwargs: object) -> Path:
    return write_config(
        tmp_path / "signer.toml",
        hsm,
        f"sqlite:///{tmp_path / 'signer.db'}",
        extra=extra,
        **kwargs,  # type: ignore[arg-type]
    )


def test_a_misspelt_section_is_one_line_and_creates_nothing(hsm: Hsm, tmp_path: Path) -> None:
    config = _config(tmp_path, hsm, '\n[tsl]\ncert = "server.pem"\n')
    done, seconds = _serve(config)
    line = _refused(done, "unknown section [tsl] (did you mean tls?)")
    assert done.stderr.strip() == line  # nothing else printed
    assert not (tmp_path / "signer.db").exists()
    assert seconds < 15  # no waiting on the HSM or a database


def test_production_without_the_duis_schema_refuses_to_start(hsm: Hsm, tmp_path: Path) -> None:
    config = _config(tmp_path, hsm, dev_mode=False)
    done, _ = _serve(config)
    line = _refused(done, "duis.schema_dir is required outside development mode")
    assert "DUIS 5.4 schema" in line and done.stderr.strip() == line
    assert not (tmp_path / "signer.db").exists()


def test_files_are_checked_before_the_ports(hsm: Hsm, tmp_path: Path, taken: str) -> None:
    """A missing SMKI issuer and a port in use: the issuer is named, no port was tried."""
    config = _config(tmp_path, hsm, f'\n[smki]\nissuers = ["{tmp_path / "absent.pem"}"]\n')
    config.write_text(config.read_text().replace('"127.0.0.1:0"', f'"{taken}"', 1))
    done, _ = _serve(config)
    _refused(done, "smki.issuers")
    assert "already in use" not in done.stderr
    assert not (tmp_path / "signer.db").exists()


def test_ports_are_checked_before_the_token(hsm: Hsm, tmp_path: Path, taken: str) -> None:
    config = _config(tmp_path, hsm, "", dev_mode=True)
    text = config.read_text().replace('"127.0.0.1:0"', f'"{taken}"', 1)
    config.write_text(text.replace("[supplier]\n", '[supplier]\nxml_signing_key = "nope"\n'))
    done, _ = _serve(config)
    _refused(done, f"server.listen {taken}: address already in use")
    assert not (tmp_path / "signer.db").exists()


def test_an_xml_signing_key_not_on_the_token_stops_before_the_database(
    hsm: Hsm, tmp_path: Path
) -> None:
    config = _config(tmp_path, hsm)
    config.write_text(
        config.read_text().replace("[supplier]\n", '[supplier]\nxml_signing_key = "nope"\n')
    )
    done, _ = _serve(config)
    _refused(done, "supplier.xml_signing_key 'nope'")
    assert not (tmp_path / "signer.db").exists()  # neither created nor migrated


def test_a_text_file_as_the_database_is_refused_and_left_alone(hsm: Hsm, tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("meeting notes\n")
    config = write_config(tmp_path / "signer.toml", hsm, f"sqlite:///{notes}")
    done, _ = _serve(config)
    _refused(done, "database.url")
    assert "not an SQLite database" in done.stderr
    assert notes.read_text() == "meeting notes\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt", "signer.toml"]


def test_development_mode_says_once_what_it_runs_without(hsm: Hsm, tmp_path: Path) -> None:
    server = start_server(_config(tmp_path, hsm), tmp_path / "server.log")
    assert server.stop() == 0
    log = (tmp_path / "server.log").read_text()
    lines = [ln for ln in log.splitlines() if "DEVELOPMENT MODE runs without" in ln]
    assert len(lines) == 1, log
    assert "duis.schema_dir" in lines[0] and "smki.issuers" in lines[0]
