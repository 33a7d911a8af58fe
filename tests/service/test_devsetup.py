"""The development default, as the README's run command builds it, and its printed examples."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path

import psycopg
from cryptography import x509
from lxml import etree

from tests.support.constants import ROOT
from tests.support.hsm import MODULE
from tests.support.independent import xmlsec1_verify
from tests.support.postgres import Cluster, libpq_of
from tests.support.server import start_server

DS = "{http://www.w3.org/2000/09/xmldsig#}"
README = (ROOT / "README.md").read_text()
#: the README's "Try it" section, up to its first shell block's end
README_TRY_IT = README.split("## Try it", 1)[1].split("```sh", 1)[1].split("```", 1)[0]


def _try_it_calls(text: str) -> list[str]:
    """The verify, resign and build-duis calls in a text, each on one line, blanks collapsed."""
    joined = re.sub(r"\\\n\s*", " ", text)
    return [
        " ".join(line.split())
        for line in joined.splitlines()
        if re.match(r"\s*\.venv/bin/signer (verify|resign|build-duis)\b", line)
    ]


def test_provisioned_token_serves_the_printed_examples(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SIGNER_", "SOFTHSM2_"))}
    subprocess.run(
        [str(ROOT / "softhsm/init-token"), "var/dev", "signer-dev"],
        cwd=tmp_path,
        check=True,
        capture_output=True,
        env=env,
    )
    assert oct((tmp_path / "var/dev/user.pin").stat().st_mode & 0o777) == "0o600"
    provision = subprocess.run(
        [sys.executable, "-m", "signer.cli.main", "dev", "provision", "--dir", "var/dev"],
        cwd=tmp_path,
        check=True,
        capture_output=True,
        text=True,
        env=env,
    )
    again = subprocess.run(
        [sys.executable, "-m", "signer.cli.main", "dev", "provision", "--dir", "var/dev"],
        cwd=tmp_path,
        check=True,
        capture_output=True,
        text=True,
        env=env,
    )
    assert again.stdout == provision.stdout  # provisioning happens once
    # the calls it prints are the README's "Try it" calls, as written there
    image_id = (tmp_path / "var/dev/example/hash.hex").read_text().strip()
    assert _try_it_calls(provision.stdout) == [
        c.replace("<image ID printed by verify>", image_id) for c in _try_it_calls(README_TRY_IT)
    ]
    # other dev ports (README "Try it"): the printed calls carry --server
    moved = subprocess.run(
        [sys.executable, "-m", "signer.cli.main", "dev", "provision", "--dir", "var/dev"],
        cwd=tmp_path,
        check=True,
        capture_output=True,
        text=True,
        env={**env, "SIGNER_LISTEN": "127.0.0.1:50061"},
    )
    calls = _try_it_calls(moved.stdout)
    assert calls and all(c.split()[2:4] == ["--server", "127.0.0.1:50061"] for c in calls), calls
    server = start_server(
        tmp_path / "var/dev/signer.toml",
        tmp_path / "server.log",
        env={"SIGNER_LISTEN": "127.0.0.1:0", "SIGNER_EPHEMERAL_PORTS_FOR_TESTS": "1"},
    )
    try:
        commands = re.findall(
            r"^  (\.venv/bin/signer .*?)(?=\n\n|\Z)", provision.stdout, flags=re.S | re.M
        )
        assert [shlex.split(c)[1] for c in commands] == ["verify", "resign", "build-duis"]
        for command in commands:
            args = shlex.split(command.replace("\\\n", " "))[1:]
            done = subprocess.run(
                [sys.executable, "-m", "signer.cli.main", *args, "--server", server.address],
                cwd=tmp_path,
                capture_output=True,
                text=True,
                env=env,
            )
            assert done.returncode == 0, (command, done.stdout, done.stderr)
    finally:
        assert server.stop() == 0
    request = (tmp_path / "var/dev/out/request.xml").read_bytes()
    # The XML-signing certificate lives in the token: read it with OpenSC, not with our code.
    der = tmp_path / "xml-sign.der"
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
            "xml-sign",
            "-o",
            str(der),
        ],
        check=True,
        capture_output=True,
        env={**env, "SOFTHSM2_CONF": str(tmp_path / "var/dev/softhsm2.conf")},
    )
    cert = x509.load_der_x509_certificate(der.read_bytes())
    serial = etree.fromstring(request).findtext(f".//{DS}X509SerialNumber")
    assert serial == str(cert.serial_number)
    assert xmlsec1_verify(request, cert, tmp_path).returncode == 0
    assert (tmp_path / "var/dev/out/supplier-ds.bin").stat().st_size > 0
    pins = [(tmp_path / "var/dev" / p).read_text().strip() for p in ("user.pin", "so.pin")]
    for text in (provision.stdout, provision.stderr, (tmp_path / "server.log").read_text()):
        assert not any(p in text for p in pins)


def test_provision_keeps_the_database_url_it_was_given(tmp_path: Path, postgres: Cluster) -> None:
    """`--database-url` (or $SIGNER_DATABASE_URL): provisioned there, and written there."""
    url = postgres.create_database("dev")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SIGNER_", "SOFTHSM2_"))}
    subprocess.run(
        [str(ROOT / "softhsm/init-token"), "var/dev", "signer-dev"],
        cwd=tmp_path,
        check=True,
        capture_output=True,
        env=env,
    )
    subprocess.run(
        [
            sys.executable,
            "-m",
            "signer.cli.main",
            "dev",
            "provision",
            "--dir",
            "var/dev",
            "--listen",
            "127.0.0.1:50999",
        ],
        cwd=tmp_path,
        check=True,
        capture_output=True,
        text=True,
        env={**env, "SIGNER_DATABASE_URL": url},
    )
    config_path = tmp_path / "var/dev/signer.toml"
    written = tomllib.loads(config_path.read_text())
    assert written["database"]["url"] == url
    assert written["server"]["listen"] == "127.0.0.1:50999"
    assert oct(config_path.stat().st_mode & 0o777) == "0o600"  # a URL may hold a password
    assert not (tmp_path / "var/dev/signer.db").exists()
    # the development devices and keys are in PostgreSQL, read without the project's code
    with psycopg.connect(libpq_of(url)) as conn:
        [(devices,)] = conn.execute("SELECT COUNT(*) FROM devices").fetchall()
        [(active,)] = conn.execute(
            "SELECT COUNT(*) FROM signing_keys WHERE state = 'active'"
        ).fetchall()
    assert (devices, active) == (3, 2)
