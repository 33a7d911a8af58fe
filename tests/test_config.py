"""The operational configuration keys: transport security, metrics, logs, shutdown."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from signer.config import load_config
from signer.errors import ConfigurationError

BASE = """
[token]
label = "t"
pin_env = "PIN"
[supplier]
eui = "90-B3-D5-1F-30-01-00-00"
[database]
url = "sqlite:///db.sqlite"
"""
TLS = """
[tls]
cert = "server.pem"
key = "server.key"
client_ca = "clients.pem"
policy = "policy.toml"
"""


def _load(tmp_path: Path, text: str, env: dict[str, str] | None = None):
    path = tmp_path / "signer.toml"
    path.write_text(BASE + text)
    return load_config(path, env or {})


def test_defaults_are_the_production_ones(tmp_path: Path) -> None:
    config = _load(tmp_path, "")
    assert config.dev_mode is False and config.tls is None
    assert config.metrics_listen == "127.0.0.1:9464"
    assert config.log_format == "json" and config.shutdown_grace == 10.0


def test_tls_paths_are_relative_to_the_file_and_env_overrides_them(tmp_path: Path) -> None:
    config = _load(tmp_path, TLS, {"SIGNER_POLICY": "/etc/signer/policy.toml"})
    assert config.tls is not None
    assert config.tls.cert == tmp_path / "server.pem"
    assert config.tls.client_ca == tmp_path / "clients.pem"
    assert config.tls.policy == Path("/etc/signer/policy.toml")
    assert "mTLS" in config.describe()["transport"]


@pytest.mark.parametrize(
    ("text", "env", "named"),
    [
        ('[tls]\ncert = "a"\nkey = "b"\n', {}, "tls.client_ca, tls.policy"),
        ("[server]\ndev_mode = true\n" + TLS, {}, "dev_mode"),
        ("", {"SIGNER_DEV_MODE": "maybe"}, "server.dev_mode 'maybe'"),
        ('[log]\nformat = "xml"\n', {}, "log.format 'xml'"),
        ('[server]\nshutdown_grace = "soon"\n', {}, "server.shutdown_grace"),
        ("[server]\nshutdown_grace = -1\n", {}, "outside 0..3600"),
    ],
)
def test_wrong_settings_are_refused_naming_the_key(
    tmp_path: Path, text: str, env: dict[str, str], named: str
) -> None:
    with pytest.raises(ConfigurationError, match=named):
        _load(tmp_path, text, env)


def test_dev_mode_from_the_environment_and_metrics_off(tmp_path: Path) -> None:
    config = _load(tmp_path, '[metrics]\nlisten = ""\n', {"SIGNER_DEV_MODE": "1"})
    assert config.dev_mode and config.metrics_listen is None
    assert config.describe()["transport"].startswith("DEVELOPMENT MODE")


def test_serve_without_tls_outside_dev_mode_refuses_to_start(tmp_path: Path) -> None:
    path = tmp_path / "signer.toml"
    path.write_text(BASE)
    proc = subprocess.run(
        [sys.executable, "-m", "signer.cli.main", "serve", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PIN": "1234", "PATH": "/usr/bin:/bin"},
    )
    assert proc.returncode == 1
    assert "client certificates are mandatory unless server.dev_mode = true" in proc.stderr
