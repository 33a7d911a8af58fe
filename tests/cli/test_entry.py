"""The console script answers `--version` before importing click, with click's own text."""

from __future__ import annotations

import importlib
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner

from signer.cli.main import COMMAND_MODULES, COMMAND_SUMMARIES, LazyGroup, cli

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


def _root(
    group_class: type[click.Group], commands: dict[str, click.Command], **kw: Any
) -> click.Group:
    """A root group like `cli`: its options, help and own commands, and ``commands``."""
    own = {n: c for n, c in cli.commands.items() if n not in COMMAND_MODULES}
    return group_class(
        name="signer",
        commands={**own, **commands},
        params=cli.params,
        help=cli.help,
        context_settings=cli.context_settings,
        **kw,
    )


def _imported() -> dict[str, click.Command]:
    found = {}
    for name, target in COMMAND_MODULES.items():
        module, _, attribute = target.partition(":")
        found[name] = getattr(importlib.import_module(module), attribute)
    return found


def test_help_lists_each_command_with_its_own_first_paragraph() -> None:
    assert set(COMMAND_SUMMARIES) == set(COMMAND_MODULES)
    for name, command in _imported().items():
        assert command.help is not None
        first = " ".join(command.help.partition("\n\n")[0].split())
        assert COMMAND_SUMMARIES[name] == first, f"COMMAND_SUMMARIES[{name!r}] is not its help"
        assert command.short_help is None and not command.hidden and not command.deprecated


@pytest.mark.parametrize("width", [40, 80, 120, 200])
def test_help_without_the_modules_is_clicks_help_with_them(width: int) -> None:
    lazy = _root(LazyGroup, {}, lazy=COMMAND_MODULES, summaries=COMMAND_SUMMARIES)
    reference = _root(click.Group, _imported())  # click's own listing, every module loaded
    fast = CliRunner().invoke(lazy, ["--help"], prog_name="signer", terminal_width=width)
    assert set(lazy.commands) == {"serve"}  # the listing imported none of the modules
    full = CliRunner().invoke(reference, ["--help"], prog_name="signer", terminal_width=width)
    assert fast.exit_code == full.exit_code == 0
    assert fast.output == full.output
