"""The console script answers `--version` before importing click, with click's own text."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

from click.testing import CliRunner

from signer.cli.main import cli

ROOT = Path(__file__).resolve().parents[2]

# `signer ARGS...` through the console script's function, then whether click was imported
_PROBE = """
import sys
sys.argv = ["/usr/local/bin/signer", *sys.argv[1:]]
from signer.cli.entry import main
try:
    main()
except SystemExit as exc:
    code = exc.code
print(f"exit={code} click={'click' in sys.modules}", file=sys.stderr)
"""


def _entry(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", _PROBE, *args], capture_output=True, text=True, timeout=120
    )


def test_the_console_script_is_the_entry() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert project["project"]["scripts"]["signer"] == "signer.cli.entry:main"


def test_version_without_click_prints_what_click_prints() -> None:
    fast = _entry("--version")
    assert fast.stderr.strip().splitlines()[-1] == "exit=0 click=False"
    clicks = CliRunner().invoke(cli, ["--version"], prog_name="signer")
    assert clicks.exit_code == 0
    assert fast.stdout == clicks.output


def test_anything_else_goes_to_click() -> None:
    for args in (["-v", "--version"], ["--version", "x"], ["--help"]):
        done = _entry(*args)
        assert done.stderr.strip().splitlines()[-1].endswith("click=True"), (args, done.stderr)
    helped = _entry("--help")
    assert "Usage: signer" in helped.stdout
    assert helped.stderr.strip().splitlines()[-1] == "exit=0 click=True"
