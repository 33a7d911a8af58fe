"""The client commands' mTLS options: all three files or none, from flags or environment."""

from __future__ import annotations

from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from signer.cli import client

COMMANDS = [
    client.verify,
    client.resign,
    client.build_duis,
    client.activate,
    client.sign_precommand,
]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c.name)
def test_every_client_command_offers_the_tls_options(command: click.Command) -> None:
    text = CliRunner().invoke(command, ["--help"]).output
    for option, env in (
        ("--tls-ca", "SIGNER_CLIENT_CA"),
        ("--tls-cert", "SIGNER_CLIENT_CERT"),
        ("--tls-key", "SIGNER_CLIENT_KEY"),
    ):
        assert option in text and f"${env}" in text


def test_some_but_not_all_tls_files_is_a_usage_error_naming_the_missing(tmp_path: Path) -> None:
    pem = tmp_path / "x.pem"
    pem.write_text("not used")
    args = [
        "--image-id",
        "00",
        "--device",
        "00-DB-12-34-56-78-90-A0",
        "--out-dir",
        str(tmp_path / "out"),
        "--server",
        "127.0.0.1:1",
    ]
    result = CliRunner().invoke(
        client.resign,
        [*args, "--tls-ca", str(pem)],
        env={"SIGNER_CLIENT_CERT": "", "SIGNER_CLIENT_KEY": str(pem)},
    )
    assert result.exit_code == 2
    assert "Error: missing --tls-cert (or $SIGNER_CLIENT_CERT): mTLS needs" in result.stderr
    assert not (tmp_path / "out").exists()  # refused before any work
