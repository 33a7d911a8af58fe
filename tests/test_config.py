"""The configuration: one declared schema; every wrong, unknown or mistyped setting refused
with one line naming it (the files it names: tests/service/test_startup_checks.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from signer.config import ENV_OVERRIDES, SETTINGS, Config, load_config
from signer.config.schema import markdown_table
from signer.errors import ConfigurationError
from tests.support.constants import ROOT
from tests.support.smki_ca import TestCa

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


def _load(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> Config:
    path = tmp_path / "signer.toml"
    path.write_text(BASE + text)
    return load_config(path, env or {})


def test_defaults_are_the_production_ones(tmp_path: Path) -> None:
    config = _load(tmp_path, "")
    assert config.dev_mode is False and config.tls is None
    assert config.metrics_listen == "127.0.0.1:9464"
    assert config.log_format == "json" and config.shutdown_grace == 10.0
    assert config.workers == 16 and config.max_concurrent_rpcs == 1000
    assert config.smki_issuers == () and config.dcc_certificates == ()


def test_tls_paths_are_relative_to_the_file_and_env_overrides_them(tmp_path: Path) -> None:
    config = _load(tmp_path, TLS, {"SIGNER_POLICY": "/etc/signer/policy.toml"})
    assert config.tls is not None
    assert config.tls.cert == tmp_path / "server.pem"
    assert config.tls.client_ca == tmp_path / "clients.pem"
    assert config.tls.policy == Path("/etc/signer/policy.toml")
    assert "mTLS" in config.describe()["transport"]


def test_lists_and_numbers_come_typed_from_toml_and_the_environment(tmp_path: Path) -> None:
    config = _load(
        tmp_path,
        TLS + 'crls = ["a.crl"]\n[dcc]\ncertificates = ["dcc.pem"]\n',
        {
            "SIGNER_SMKI_ISSUERS": "ca1.pem, /etc/ca2.pem",
            "SIGNER_WORKERS": "4",
            "SIGNER_MAX_CONCURRENT_RPCS": "50",
        },
    )
    assert config.smki_issuers == (tmp_path / "ca1.pem", Path("/etc/ca2.pem"))
    assert config.dcc_certificates == (tmp_path / "dcc.pem",)
    assert config.tls is not None and config.tls.crls == (tmp_path / "a.crl",)
    assert config.workers == 4 and config.max_concurrent_rpcs == 50


@pytest.mark.parametrize(
    ("text", "env", "named"),
    [
        ('[tls]\ncert = "a"\nkey = "b"\n', {}, "tls.client_ca, tls.policy"),
        ("[server]\ndev_mode = true\n" + TLS, {}, "dev_mode"),
        ("", {"SIGNER_DEV_MODE": "maybe"}, "server.dev_mode 'maybe'"),
        ('[server]\ndev_mode = "yes"\n', {}, "server.dev_mode 'yes' is not true or false"),
        ('[log]\nformat = "xml"\n', {}, "log.format 'xml'"),
        ('[server]\nshutdown_grace = "soon"\n', {}, "server.shutdown_grace"),
        ("[server]\nshutdown_grace = -1\n", {}, "outside 0..3600"),
        ("[server]\nshutdown_grace = true\n", {}, "server.shutdown_grace True"),
        # unknown sections and keys: a misspelling must not silently turn a check off
        ('[tsl]\ncert = "a"\n', {}, r"unknown section \[tsl\] \(did you mean tls\?\)"),
        ('[duis]\nsheema_dir = "xsd"\n', {}, r"duis.sheema_dir \(did you mean duis.schema_dir"),
        ("[server]\nworkerz = 4\n", {}, r"server.workerz \(did you mean server.workers"),
        ("[smki]\nissuer = []\n", {}, r"smki.issuer \(did you mean smki.issuers"),
        # wrong types
        ('[server]\nworkers = "ten"\n', {}, "server.workers 'ten' is not a whole number"),
        ("", {"SIGNER_WORKERS": "ten"}, "server.workers 'ten'"),
        ("[server]\nworkers = 2.5\n", {}, "server.workers 2.5"),
        ("[server]\nworkers = 0\n", {}, "server.workers 0 is below 1"),
        ("[server]\nmax_concurrent_rpcs = 0\n", {}, "server.max_concurrent_rpcs 0 is below 1"),
        ("", {"SIGNER_MAX_CONCURRENT_RPCS": "-3"}, "server.max_concurrent_rpcs -3"),
        ('[smki]\nissuers = "a.pem"\n', {}, r"smki.issuers 'a.pem' is not a list of paths"),
        ('[dcc]\ncertificates = "d.pem"\n', {}, "dcc.certificates 'd.pem' is not a list"),
        (TLS + 'crls = "x.crl"\n', {}, "tls.crls 'x.crl' is not a list"),
        ("[smki]\nissuers = [1]\n", {}, "smki.issuers: 1 is not a path"),
        ('[tls]\ncrls = ["a.crl"]\n', {}, "tls.crls is set without"),
        ("[duis]\nschema_dir = 5\n", {}, "duis.schema_dir 5 is not a string"),
        ('[duis]\nschema_dir = ""\n', {}, "duis.schema_dir is empty"),
        ("[clock]\npinned_time = 2024-01-01T00:00:00\n", {}, "clock.pinned_time needs a time"),
        ('[cpl]\nmode = "lenient"\n', {}, "cpl.mode 'lenient' is not strict or advisory"),
        # ports
        ('[server]\nlisten = "127.0.0.1:70000"\n', {}, "server.listen .*outside 1..65535"),
        ('[server]\nlisten = "localhost"\n', {}, "server.listen 'localhost' is not host:port"),
        ("", {"SIGNER_LISTEN": "0.0.0.0:-1"}, "server.listen '0.0.0.0:-1' is not host:port"),
        ('[metrics]\nlisten = "127.0.0.1:65536"\n', {}, "metrics.listen .*outside 1..65535"),
        ('[server]\nhealth_listen = ":99999"\n', {}, "server.health_listen .*outside 1..65535"),
        ("[server]\nlisten = 50051\n", {}, "server.listen 50051 is not a string"),
        ('[server]\nlisten = "127.0.0.1:0"\n', {}, "server.listen '127.0.0.1:0': port 0 is"),
        ("", {"SIGNER_METRICS_LISTEN": "[::1]:00"}, "metrics.listen '.::1.:00': port 0"),
        ('[server]\nhealth_listen = ":0"\n', {}, "server.health_listen ':0': port 0"),
        # required and exclusive settings
        ("", {"SIGNER_SUPPLIER_EUI": "nope"}, "supplier.eui"),
        ("", {"SIGNER_DATABASE_URL": ""}, "database.url is required"),
    ],
)
def test_wrong_settings_are_refused_naming_the_key(
    tmp_path: Path, text: str, env: dict[str, str], named: str
) -> None:
    with pytest.raises(ConfigurationError, match=named):
        _load(tmp_path, text, env)


def test_port_0_is_for_test_servers_only(tmp_path: Path) -> None:
    text = '[server]\nlisten = "127.0.0.1:0"\nhealth_listen = "127.0.0.1:0"\n'
    with pytest.raises(ConfigurationError, match="ephemeral_ports_for_tests = true"):
        _load(tmp_path, text, {})
    config = _load(tmp_path, text, {"SIGNER_EPHEMERAL_PORTS_FOR_TESTS": "1"})
    assert config.listen == "127.0.0.1:0" and config.health_listen == "127.0.0.1:0"


@pytest.mark.parametrize("missing", ["token.label", "supplier.eui", "database.url"])
def test_required_settings_are_named(tmp_path: Path, missing: str) -> None:
    _section, key = missing.split(".")
    text = "\n".join(line for line in BASE.splitlines() if not line.startswith(f"{key} ="))
    (tmp_path / "signer.toml").write_text(text)
    with pytest.raises(ConfigurationError, match=f"{missing} is required"):
        _ = load_config(tmp_path / "signer.toml", {}).token  # the token's: when it is opened


def test_a_pin_source_from_the_environment_replaces_the_files(tmp_path: Path) -> None:
    config = _load(tmp_path, "", {"SIGNER_PIN_FILE": "pin"})
    assert config.token.pin.file == tmp_path / "pin" and config.token.pin.env is None
    with pytest.raises(ConfigurationError, match="exactly one PIN source"):
        _ = _load(tmp_path, "", {"SIGNER_PIN_FILE": "pin", "SIGNER_PIN_ENV": "P"}).token


def test_a_section_that_is_not_a_table_is_refused(tmp_path: Path) -> None:
    (tmp_path / "signer.toml").write_text("server = 5\n" + BASE)
    with pytest.raises(ConfigurationError, match=r"server must be a \[server\] table"):
        load_config(tmp_path / "signer.toml", {})


def test_toml_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match=r"config .*signer.toml: .*line"):
        _load(tmp_path, "[token]\n")  # a repeated table


def test_a_file_that_is_not_utf8_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "signer.toml"
    path.write_bytes(BASE.encode() + b'[cpl]\nmode = "strict \xe9"\n')
    with pytest.raises(ConfigurationError, match="not UTF-8"):
        load_config(path, {})


def test_every_environment_override_names_a_declared_setting() -> None:
    names = {s.name for s in SETTINGS}
    assert {f"{s}.{k}" for s, k in ENV_OVERRIDES.values()} <= names
    assert len(ENV_OVERRIDES) == len(SETTINGS)  # every setting has its variable


def test_the_readme_table_is_the_declaration() -> None:
    assert markdown_table() in (ROOT / "README.md").read_text()


def test_dev_mode_from_the_environment_and_metrics_off(tmp_path: Path) -> None:
    config = _load(tmp_path, '[metrics]\nlisten = ""\n', {"SIGNER_DEV_MODE": "1"})
    assert config.dev_mode and config.metrics_listen is None
    assert config.describe()["transport"].startswith("DEVELOPMENT MODE")


def test_serve_without_tls_outside_dev_mode_refuses_to_start(tmp_path: Path, vectors: Path) -> None:
    path = tmp_path / "signer.toml"
    issuer = TestCa().write(tmp_path / "ca.pem")
    path.write_text(
        BASE + f'[duis]\nschema_dir = "{vectors / "xsd"}"\n[smki]\nissuers = ["{issuer}"]\n'
    )
    proc = subprocess.run(
        [sys.executable, "-m", "signer.cli.main", "serve", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PIN": "1234", "PATH": "/usr/bin:/bin"},
    )
    assert proc.returncode == 1
    assert "client certificates are mandatory unless server.dev_mode = true" in proc.stderr
    assert not (tmp_path / "db.sqlite").exists()
