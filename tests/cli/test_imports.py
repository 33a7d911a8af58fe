"""What a command imports before it does anything: every `signer` run pays for it.

A key rotation is about 30 commands and back-office scripts call the CLI in loops, so the
commands that only talk gRPC never load the database, HSM or XML code, and `--help` (or
`--version`) of any command loads none of it, nor grpc or the service layer. Each check runs
the real entry point (`signer.cli.main:cli`) in a fresh interpreter and reads its
``sys.modules`` afterwards. The commands come from walking the click tree, so a command
added later is checked too, and must be classified in `signer.cli.main`.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import click
import pytest

from signer.cli.main import CLIENT_COMMANDS, COMMAND_MODULES, LOCAL_COMMANDS, cli
from tests.support.constants import RTDS_DEVICE
from tests.support.independent import ota_header
from tests.support.manufacturer import Manufacturer
from tests.support.server import Running

# the database layer, the HSM layer and the XML stack
FORBIDDEN = ("sqlalchemy", "alembic", "psycopg", "psycopg2", "pkcs11", "lxml", "xmlschema")
# besides, what printing help or the version has no use for
NOT_FOR_HELP = (
    *FORBIDDEN,
    "grpc",
    "google.protobuf",
    "cryptography",
    "signer.api",
    "signer.service",
    "signer.hsm",
    "signer.registry",
)
NO_SERVER = "127.0.0.1:1"  # nothing listens there: a call fails at once with UNAVAILABLE

# runs the entry point as `signer ARGS...` does, then writes its exit code and sys.modules
_PROBE = """
import json, sys
import click
from signer.cli.main import cli
out, args = sys.argv[1], sys.argv[2:]
try:
    code = cli.main(args, prog_name="signer", standalone_mode=False)
except SystemExit as exc:
    code = exc.code
except click.ClickException as exc:
    exc.show()
    code = exc.exit_code
with open(out, "w") as f:
    json.dump({"exit": code, "modules": sorted(sys.modules)}, f)
"""


def _tree(group: click.Group = cli, prefix: tuple[str, ...] = ()) -> list[tuple[str, bool]]:
    """(path as typed after `signer`, is a group) of everything below ``group``, as click
    resolves it (the root imports its command modules on demand)."""
    ctx = click.Context(group)
    found: list[tuple[str, bool]] = []
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        assert command is not None, name
        path = (*prefix, name)
        if isinstance(command, click.Group):
            found += [(" ".join(path), True), *_tree(command, path)]
        else:
            found.append((" ".join(path), False))
    return found


def _commands() -> list[str]:
    """Every leaf command: "verify", "keys retire"."""
    return [path for path, is_group in _tree() if not is_group]


def _groups() -> list[str]:
    return [path for path, is_group in _tree() if is_group]


def _run(tmp_path: Path, *args: str) -> tuple[int | None, list[str], str]:
    """(exit code, modules loaded, stderr) of ``signer *args`` in a fresh interpreter."""
    out = tmp_path / "modules.json"
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, str(out), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0 and out.exists(), done.stderr
    result = json.loads(out.read_text())
    return result["exit"], result["modules"], done.stderr


def _loaded(modules: list[str], packages: tuple[str, ...]) -> list[str]:
    return [m for m in modules if any(m == p or m.startswith(p + ".") for p in packages)]


def test_every_command_is_either_a_client_or_a_local_command() -> None:
    commands = set(_commands())
    assert not CLIENT_COMMANDS & LOCAL_COMMANDS
    assert commands - (CLIENT_COMMANDS | LOCAL_COMMANDS) == set(), (
        "classify the new command in signer.cli.main: CLIENT_COMMANDS or LOCAL_COMMANDS"
    )
    assert (CLIENT_COMMANDS | LOCAL_COMMANDS) - commands == set()


def test_the_walk_finds_nested_commands() -> None:
    commands = _commands()
    assert {"verify", "keys retire", "dev provision", "db upgrade"} <= set(commands)
    assert "keys" not in commands and "keys" in _groups()


def test_each_command_module_entry_names_its_command() -> None:
    """`signer --help` lists the names the entries give; they are the commands' own."""
    ctx = click.Context(cli)
    for name in COMMAND_MODULES:
        command = cli.get_command(ctx, name)
        assert command is not None and command.name == name


@pytest.mark.parametrize("args", [("--version",), ("--help",)], ids=" ".join)
def test_version_and_help_load_nothing_heavy(tmp_path: Path, args: tuple[str, ...]) -> None:
    code, modules, stderr = _run(tmp_path, *args)
    assert code == 0, stderr
    assert _loaded(modules, NOT_FOR_HELP) == []


@pytest.mark.parametrize("command", [*_commands(), *_groups()])
def test_help_of_every_command_loads_nothing_heavy(tmp_path: Path, command: str) -> None:
    code, modules, stderr = _run(tmp_path, *command.split(), "--help")
    assert code == 0, stderr
    assert _loaded(modules, NOT_FOR_HELP) == []
    assert "signer.cli.main" in modules  # the probe ran the real entry point


def _client_invocations(tmp_path: Path) -> dict[str, list[str]]:
    """Each client command with arguments it accepts: files exist, the server is absent."""
    data = tmp_path / "data.bin"
    data.write_bytes(b"\x01" * 64)
    hex_text = tmp_path / "pre.hex"
    hex_text.write_text("00" * 32 + "\n")
    out = tmp_path / "out"
    image_id = "00" * 32
    return {
        "verify": ["--ota-header", str(data), "--manufacturer-image", str(data)],
        "resign": ["--image-id", image_id, "--device", RTDS_DEVICE, "--out-dir", str(out)],
        "build-duis": [
            "--image-id",
            image_id,
            "--device",
            RTDS_DEVICE,
            "--firmware-version",
            "00000002",
            "--out",
            str(out / "r.xml"),
        ],
        "activate": ["--image-id", image_id, "--device", RTDS_DEVICE, "--out-dir", str(out)],
        "sign-precommand": [
            "--pre-command",
            str(hex_text),
            "--unauthenticated-gbcs",
            "--out-dir",
            str(out),
        ],
        "health": ["--timeout", "5"],
        "campaign plan": [
            "--image-id",
            image_id,
            "--device",
            RTDS_DEVICE,
            "--produce",
            "activation",
            "--as",
            "alice",
        ],
        "campaign show": [image_id, "--devices"],
        "campaign approve": [image_id, "--as", "bob"],
        "campaign reject": [image_id, "--reason", "not this week"],
        "campaign apply": [image_id, "--out-dir", str(out)],
    }


def test_every_client_command_has_an_invocation(tmp_path: Path) -> None:
    assert set(_client_invocations(tmp_path)) == CLIENT_COMMANDS


@pytest.mark.parametrize("command", sorted(CLIENT_COMMANDS))
def test_client_commands_run_without_database_hsm_or_xml(tmp_path: Path, command: str) -> None:
    """Up to and including the call: the request is built and sent, and fails UNAVAILABLE."""
    args = _client_invocations(tmp_path)[command]
    code, modules, stderr = _run(tmp_path, *command.split(), *args, "--server", NO_SERVER)
    assert code == 1 and "server unavailable" in stderr, stderr
    assert "grpc" in modules  # it did reach the call
    assert _loaded(modules, FORBIDDEN) == []


def test_client_commands_against_a_real_server_load_no_database_hsm_or_xml(
    running: Running, manufacturer: Manufacturer, tmp_path: Path
) -> None:
    """The whole of verify, resign, build-duis and health, answers written out."""
    server = ("--server", running.server.address)
    image = b"import check firmware " * 20
    header = ota_header(len(image))
    (tmp_path / "h.bin").write_bytes(header)
    (tmp_path / "i.bin").write_bytes(image)
    (tmp_path / "s.der").write_bytes(manufacturer.sign(header + image))
    image_id = hashlib.sha256(image).hexdigest()
    (tmp_path / "hash.hex").write_text(image_id + "\n")
    out = tmp_path / "out"
    runs = [
        [
            "verify",
            "--ota-header",
            str(tmp_path / "h.bin"),
            "--manufacturer-image",
            str(tmp_path / "i.bin"),
            "--signature",
            str(tmp_path / "s.der"),
            "--hash",
            str(tmp_path / "hash.hex"),
            "--out",
            str(tmp_path / "v.json"),
        ],
        ["resign", "--image-id", image_id, "--device", RTDS_DEVICE, "--out-dir", str(out)],
        [
            "build-duis",
            "--image-id",
            image_id,
            "--device",
            RTDS_DEVICE,
            "--firmware-version",
            "01020304",  # the OTA header's file version
            "--out",
            str(tmp_path / "req.xml"),
        ],
        ["health"],
    ]
    for args in runs:
        code, modules, stderr = _run(tmp_path, *args, *server)
        assert code in (0, None), f"signer {args[0]}: {stderr}"
        assert _loaded(modules, FORBIDDEN) == [], args[0]
    assert json.loads((tmp_path / "v.json").read_text())["verified"] is True
    assert json.loads((out / "result.json").read_text())["images"]
    assert (tmp_path / "req.xml").read_bytes().startswith(b"<")


def test_the_copies_that_spare_an_import_match_their_sources() -> None:
    """Constants the CLI spells out instead of importing the module that defines them."""
    from importlib.metadata import version

    import signer
    from signer.cli import keys, main
    from signer.config import DEFAULT_MODULE
    from signer.smki.lifecycle import KeyPurpose

    assert keys.PURPOSES == tuple(p.value for p in KeyPurpose)
    assert main.DEFAULT_MODULE == DEFAULT_MODULE
    assert signer.__version__ == version("signer")  # after a version change: pip install -e .
