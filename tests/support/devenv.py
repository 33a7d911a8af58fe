"""A development environment as the README builds it: `softhsm/init-token`, `signer dev
provision`, a dev server, and the CLI run from the directory holding `var/dev`.

Everything runs in its own process with the user's view: the working directory is the one
holding `var/dev` (so the README's relative paths work), no SIGNER_* variables leak in from
the test run, and client commands get the server's address with `--server` (it listens on a
port the system picked).
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509

from tests.support.constants import ROOT
from tests.support.hsm import MODULE
from tests.support.server import ServerProcess, start_server

CLIENT_COMMANDS = ("verify", "resign", "build-duis", "activate", "sign-precommand", "health")
DEV_DIR = Path("var/dev")
CONFIG = DEV_DIR / "signer.toml"


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("SIGNER_", "SOFTHSM2_"))}


@dataclass
class DevEnv:
    """A provisioned `var/dev` under ``root``; ``server`` once started."""

    root: Path
    provision_output: str
    server: ServerProcess | None = None
    env: dict[str, str] = field(default_factory=clean_env)

    @property
    def config(self) -> Path:
        return self.root / CONFIG

    def signer(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """``signer ARGS`` from ``root``; client commands go to the running server."""
        extra: list[str] = []
        if args and args[0] in CLIENT_COMMANDS and self.server is not None:
            extra = ["--server", self.server.address]
        proc = subprocess.run(
            [sys.executable, "-m", "signer.cli.main", *args, *extra],
            cwd=self.root,
            capture_output=True,
            text=True,
            timeout=120,
            env=self.env,
            check=False,
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"signer {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
            )
        return proc

    def start(self) -> ServerProcess:
        self.server = start_server(
            self.config,
            self.root / "server.log",
            env={
                "SIGNER_LISTEN": "127.0.0.1:0",
                "SIGNER_METRICS_LISTEN": "127.0.0.1:0",
                "SIGNER_EPHEMERAL_PORTS_FOR_TESTS": "1",
            },
        )
        return self.server

    def stop(self) -> int:
        assert self.server is not None
        code = self.server.stop()
        self.server = None
        return code

    def token_certificate(self, label: str) -> x509.Certificate:
        """A certificate on the dev token, read with OpenSC's pkcs11-tool (not our code)."""
        der = self.root / f"{label}.der"
        subprocess.run(
            [
                "pkcs11-tool",
                "--module",
                MODULE,
                "--token-label",
                "signer-dev",
                "--read-object",
                "--type",
                "cert",
                "--label",
                label,
                "-o",
                str(der),
            ],
            check=True,
            capture_output=True,
            env={**self.env, "SOFTHSM2_CONF": str(self.root / DEV_DIR / "softhsm2.conf")},
        )
        return x509.load_der_x509_certificate(der.read_bytes())


def provision(root: Path, schema_dir: Path | None = None) -> DevEnv:
    """`softhsm/init-token var/dev signer-dev` and `signer dev provision`, as the dev server
    runs them, in ``root``."""
    env = clean_env()
    subprocess.run(
        [str(ROOT / "softhsm/init-token"), str(DEV_DIR), "signer-dev"],
        cwd=root,
        check=True,
        capture_output=True,
        env=env,
    )
    schema = ["--schema-dir", str(schema_dir)] if schema_dir else []
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "signer.cli.main",
            "dev",
            "provision",
            "--dir",
            str(DEV_DIR),
            *schema,
        ],
        cwd=root,
        check=True,
        capture_output=True,
        text=True,
        env=env,
    )
    return DevEnv(root, done.stdout, env=env)


def printed_activation_steps(provision_output: str) -> list[list[str]]:
    """The commands `dev provision` prints after the three calls (indented four spaces),
    as argument lists without the program."""
    commands = re.findall(
        r"^    (\.venv/bin/signer .*?)(?=\n    \.venv|\n\n|\n\Z|\Z)",
        provision_output,
        flags=re.S | re.M,
    )
    return [shlex.split(c.replace("\\\n", " "))[1:] for c in commands]
