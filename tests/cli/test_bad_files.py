"""Issue 13: every command that reads a file refuses a bad one in one line naming it.

Certificates the libraries refuse in any way, files that are not UTF-8, empty, nested 100,000
deep, holding huge numbers, or directories: each command answers ``Error: <file>: ...`` (or
click's one-line usage error naming it) and a non-zero exit, never a Python traceback. The
commands run as a user runs them, in their own process; each command's cases run two at a
time.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import click
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from signer.cli.common import run
from signer.cli.logs import setup_logging
from tests.support import bad_inputs
from tests.support.cli import signer
from tests.support.hsm import Hsm
from tests.support.independent import ota_header
from tests.support.manufacturer import Manufacturer
from tests.support.server import Running, prepare

Maker = Callable[[Path], Path]


@dataclass(frozen=True)
class Setup:
    config: Path
    files: Path


@pytest.fixture(scope="module")
def setup(
    hsm: Hsm, vectors: Path, manufacturer: Manufacturer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Setup]:
    tmp = tmp_path_factory.mktemp("bad-files")
    config, _db, _ = prepare(hsm, vectors, manufacturer, tmp)
    files = tmp / "files"
    files.mkdir()
    yield Setup(config, files)


def _refusals(
    cases: dict[str, Maker], where: Path, argv: Callable[[Path], Sequence[str]]
) -> list[str]:
    """Run the command once per bad file; the ways any run fell short of the rule."""

    def one(item: tuple[str, Maker]) -> str | None:
        name, make = item
        path = make(where)
        proc = signer(*argv(path), check=False)
        return _fault(name, path, proc)

    # one at a time: two processes opening one SoftHSM2 file-backed token at the same moment
    # can find it missing while the other rewrites its files (seen once the CLI started
    # fast enough to collide: "no token labelled 'signer-test'")
    return [f for f in map(one, cases.items()) if f is not None]


def _fault(name: str, path: Path, proc: subprocess.CompletedProcess[str]) -> str | None:
    err = proc.stderr
    if proc.returncode == 0:
        return f"{name}: accepted (exit 0): {proc.stdout[-300:]}"
    if "Traceback" in err:
        return f"{name}: traceback:\n{err[-1500:]}"
    errors = [ln for ln in err.splitlines() if ln.lower().startswith("error")]
    if not any(path.name in ln for ln in errors):
        return f"{name}: no error line names {path.name}: {err[-600:]!r}"
    if any(len(ln) > 600 for ln in errors):
        return f"{name}: an error line of {max(len(ln) for ln in errors)} characters"
    return None


def _assert_none(faults: list[str]) -> None:
    assert not faults, "\n".join(faults)


def _only(*names: str) -> dict[str, Maker]:
    """Some of the bad certificates: each case costs a process (the suite stays fast)."""
    return {n: bad_inputs.CERTIFICATES[n] for n in names}


def _dir(setup: Setup, name: str) -> Path:
    d = setup.files / name
    d.mkdir(exist_ok=True)
    return d


def test_manufacturers_add_refuses_bad_certificates(setup: Setup) -> None:
    config = str(setup.config)
    _assert_none(
        _refusals(
            bad_inputs.CERTIFICATES,
            _dir(setup, "manufacturers"),
            lambda p: (
                "manufacturers",
                "add",
                "--code",
                "1234",
                "--cert",
                str(p),
                "--config",
                config,
            ),
        )
    )


def test_keys_install_cert_refuses_bad_certificates(setup: Setup) -> None:
    config = str(setup.config)
    _assert_none(
        _refusals(
            _only(
                "wrong-version",
                "duplicate-extension",
                "rsa",
                "ed25519",
                "key-agreement",
                "trailing-der",
            ),
            _dir(setup, "install-cert"),
            lambda p: (
                "keys",
                "install-cert",
                "--label",
                "z1-supplier-ds",
                str(p),
                "--config",
                config,
            ),
        )
    )


def test_keys_import_refuses_bad_certificates(setup: Setup) -> None:
    d = _dir(setup, "keys-import")
    key = d / "key.pem"
    key.write_bytes(
        ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    config = str(setup.config)
    faults = _refusals(
        _only("rsa", "p384", "garbage-pem"),
        d,
        lambda p: (
            "keys",
            "import",
            "--label",
            f"bad-{p.stem}",
            "--key",
            str(key),
            "--cert",
            str(p),
            "--purpose",
            "supplier-ds",
            "--config",
            config,
        ),
    )
    _assert_none(faults)


@pytest.mark.parametrize("suffix", ["csv", "json"])
def test_cpl_import_refuses_bad_files(setup: Setup, suffix: str) -> None:
    config = str(setup.config)
    _assert_none(
        _refusals(
            bad_inputs.DATA_FILES,
            _dir(setup, f"cpl-{suffix}"),
            lambda p: ("cpl", "import", str(p), "--format", suffix, "--config", config),
        )
    )


def test_devices_inventory_refuses_bad_files(setup: Setup) -> None:
    config = str(setup.config)
    _assert_none(
        _refusals(
            bad_inputs.DATA_FILES,
            _dir(setup, "inventory"),
            lambda p: ("devices", "inventory", str(p), "--config", config),
        )
    )


def test_devices_import_refuses_bad_files(setup: Setup) -> None:
    config = str(setup.config)
    _assert_none(
        _refusals(
            bad_inputs.DATA_FILES,
            _dir(setup, "devices-import"),
            lambda p: ("devices", "import", "--unauthenticated-gbcs", str(p), "--config", config),
        )
    )


def test_client_commands_refuse_bad_files(running: Running, tmp_path: Path) -> None:
    """The files of verify, resign, build-duis and sign-precommand, against a real server:
    what the client cannot read it names itself; what the server refuses names the field
    the file was sent as, and the client adds the file's name."""
    server = ("--server", running.server.address)
    image = tmp_path / "image.bin"
    image.write_bytes(b"firmware " * 20)
    header = tmp_path / "header.bin"
    header.write_bytes(ota_header(len(image.read_bytes())))
    out = str(tmp_path / "out")
    commands: dict[str, Callable[[Path], Sequence[str]]] = {
        "verify --ota-header": lambda p: (
            "verify",
            "--ota-header",
            str(p),
            "--manufacturer-image",
            str(image),
            *server,
        ),
        "build-duis --upgrade-image": lambda p: (
            "build-duis",
            "--upgrade-image",
            str(p),
            "--device",
            "00-DB-12-34-56-78-90-A0",
            "--firmware-version",
            "1",
            "--out",
            out + ".xml",
            *server,
        ),
        "resign --devices-file": lambda p: (
            "resign",
            "--image-id",
            "00" * 32,
            "--devices-file",
            str(p),
            "--out-dir",
            out,
            *server,
        ),
        "sign-precommand --pre-command": lambda p: (
            "sign-precommand",
            "--pre-command",
            str(p),
            "--unauthenticated-gbcs",
            "--out-dir",
            out,
            *server,
        ),
        "sign-precommand --dcc-response": lambda p: (
            "sign-precommand",
            "--dcc-response",
            str(p),
            "--out-dir",
            out,
            *server,
        ),
    }
    faults: list[str] = []
    for n, (command, argv) in enumerate(commands.items()):
        where = tmp_path / str(n)
        where.mkdir()
        cases = {k: bad_inputs.DATA_FILES[k] for k in ("not-utf8", "empty", "deeply-nested")}
        if n == 0:
            cases["directory"] = bad_inputs.directory
        faults += [f"{command}: {f}" for f in _refusals(cases, where, argv)]
    odd = tmp_path / "odd.hex"
    odd.write_text("DF0")
    fault = _fault(
        "odd hex", odd, signer(*commands["sign-precommand --pre-command"](odd), check=False)
    )
    _assert_none([*faults, *([fault] if fault else [])])


def test_a_csv_cell_over_the_csv_modules_limit_is_a_bad_row(setup: Setup) -> None:
    big = setup.files / "wide.csv"
    big.write_text("entry_id\n" + "x" * 200_000 + "\n")
    proc = signer("cpl", "import", str(big), "--config", str(setup.config), check=False)
    assert _fault("wide cell", big, proc) is None


def test_an_unexpected_error_is_one_line_and_its_traceback_only_with_verbose(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The last resort of `signer.cli.common.run`, for what no handler expected."""

    @click.group()
    @click.option("-v", "verbose", is_flag=True)
    def cli(verbose: bool) -> None:
        setup_logging(verbose)

    @cli.command()
    def boom() -> None:
        raise RuntimeError("a bug\n" + "x" * 5000)

    for argv, traced in ((["signer", "boom"], False), (["signer", "-v", "boom"], True)):
        monkeypatch.setattr(sys, "argv", argv)
        with pytest.raises(SystemExit) as exited:
            run(cli)
        assert exited.value.code == 1
        err = capsys.readouterr().err
        assert "Error: unexpected RuntimeError: a bug" in err
        assert ("Traceback" in err) is traced
        if not traced:
            assert len(err.splitlines()) == 2 and all(len(ln) < 300 for ln in err.splitlines())
