"""Session fixtures: a fresh SoftHSM2 token per test session, test keys, a real server.

SoftHSM2 reads SOFTHSM2_CONF and its token directory when the module is first loaded, so
every token the session needs is created here, before anything loads the module.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from signer.hsm.pin import Pin
from signer.hsm.token import Token
from tests.support.postgres import Cluster, start_cluster
from tests.vectors import require_dir

ROOT = Path(__file__).resolve().parents[1]
MODULE = os.environ.get("SIGNER_TEST_MODULE", "/usr/lib/softhsm/libsofthsm2.so")
TOKEN_LABEL = "signer-test"
Z1B_TOKEN_LABEL = "signer-z1b"
SPARE_TOKEN_LABEL = "signer-spare"  # never logged in: for the wrong-PIN test
# the key-lifecycle tests run twice (SQLite, PostgreSQL) and make keys with fixed labels:
# the second run gets a token of its own
LIFECYCLE_PG_TOKEN_LABEL = "signer-lifecycle-pg"
SUPPLIER_EUI = "90-B3-D5-1F-30-01-00-00"
# Inside the validity of Z1-supplier-ds (2015-10-30 .. 2025-10-29): the published test
# certificates have expired, so the service's clock is pinned for these tests.
PINNED = dt.datetime(2024, 6, 1, 12, 0, tzinfo=dt.UTC)
MANUFACTURER_CODE = 0x121D


@pytest.fixture(scope="session")
def vectors() -> Path:
    """../shared/vectors: skipped on a fresh clone without it, a failure under CI=true."""
    return require_dir()


# the database backends the registry, counter, audit, activation and key-ledger tests run on
BACKENDS = ("sqlite", "postgresql")


@pytest.fixture(scope="session")
def postgres() -> Iterator[Cluster]:
    """A throwaway PostgreSQL cluster for the session; a failure under CI=true if missing."""
    try:
        cluster = start_cluster()
    except LookupError as exc:
        if os.environ.get("CI"):
            pytest.fail(str(exc))
        pytest.skip(str(exc))
    yield cluster
    cluster.stop()


def new_database(request: pytest.FixtureRequest, backend: str, directory: Path) -> str:
    """The URL of a new, empty database on ``backend`` (a SQLite file in ``directory``)."""
    if backend == "sqlite":
        return f"sqlite:///{directory / 'signer.db'}"
    cluster: Cluster = request.getfixturevalue("postgres")
    return cluster.create_database()


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh database per test, once on SQLite and once on PostgreSQL."""
    return new_database(request, request.param, tmp_path)


@pytest.fixture(scope="module", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """For module-scoped fixtures that make their own database on each backend."""
    return str(request.param)


@dataclass
class Hsm:
    directory: Path
    conf: Path
    pin_file: Path
    tokens: dict[str, Token] = field(default_factory=dict)

    def token(self, label: str = TOKEN_LABEL) -> Token:
        if label not in self.tokens:
            self.tokens[label] = Token(MODULE, label, Pin(self.pin_file.read_text().strip()))
            self.tokens[label].open()
        return self.tokens[label]


@pytest.fixture(scope="session")
def hsm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hsm]:
    if shutil.which("softhsm2-util") is None or not Path(MODULE).exists():
        pytest.fail("SoftHSM2 is not installed (Debian package softhsm2)")
    d = tmp_path_factory.mktemp("softhsm")
    (d / "tokens").mkdir()
    conf = d / "softhsm2.conf"
    conf.write_text(
        f"directories.tokendir = {d / 'tokens'}\nobjectstore.backend = file\nlog.level = ERROR\n"
    )
    pin_file = d / "user.pin"
    pin_file.write_text("test-pin-4821\n")
    os.environ["SOFTHSM2_CONF"] = str(conf)
    for label in (TOKEN_LABEL, Z1B_TOKEN_LABEL, SPARE_TOKEN_LABEL, LIFECYCLE_PG_TOKEN_LABEL):
        subprocess.run(
            [
                "softhsm2-util",
                "--init-token",
                "--free",
                "--label",
                label,
                "--so-pin",
                "so-pin-1234",
                "--pin",
                "test-pin-4821",
            ],
            check=True,
            capture_output=True,
        )
    h = Hsm(d, conf, pin_file)
    yield h
    for t in h.tokens.values():
        t.close()


@dataclass(frozen=True)
class Manufacturer:
    key: ec.EllipticCurvePrivateKey
    certificate: x509.Certificate
    cert_pem: Path

    def sign(self, data: bytes) -> bytes:
        return self.key.sign(data, ec.ECDSA(hashes.SHA256()))


@pytest.fixture(scope="session")
def manufacturer(tmp_path_factory: pytest.TempPathFactory) -> Manufacturer:
    """A test manufacturer: its key is the manufacturer's, so it lives outside the token."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "Test Manufacturer 121D")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(PINNED - dt.timedelta(days=365))
        .not_valid_after(PINNED + dt.timedelta(days=365))
        .sign(key, hashes.SHA256())
    )
    path = tmp_path_factory.mktemp("manufacturer") / "cert.pem"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return Manufacturer(key, cert, path)


@dataclass
class ServerProcess:
    config: Path
    address: str
    proc: subprocess.Popen[str]
    log: Path
    metrics: str | None = None  # host:port of /metrics
    health: str | None = None  # host:port of the plaintext health-only port, if configured

    def stop(self) -> int:
        self.proc.terminate()
        return self.proc.wait(timeout=30)


def write_config(
    path: Path,
    hsm: Hsm,
    db_url: str,
    *,
    token_label: str = TOKEN_LABEL,
    schema_dir: Path | None = None,
    pinned: dt.datetime | None = PINNED,
    cpl_mode: str | None = "advisory",
    extra: str = "",
    dev_mode: bool = True,
) -> Path:
    """A test configuration; with dev_mode=False pass the [tls] section in `extra`."""
    lines = [
        "[server]",
        'listen = "127.0.0.1:0"',
        *(["dev_mode = true"] if dev_mode else []),
        "",
        "[metrics]",
        'listen = "127.0.0.1:0"',
        "",
        "[token]",
        f'module = "{MODULE}"',
        f'label = "{token_label}"',
        f'pin_file = "{hsm.pin_file}"',
        f'softhsm2_conf = "{hsm.conf}"',
        "",
        "[supplier]",
        f'eui = "{SUPPLIER_EUI}"',
        "",
        "[database]",
        f'url = "{db_url}"',
        "",
    ]
    if schema_dir is not None:
        lines += ["[duis]", f'schema_dir = "{schema_dir}"', ""]
    if pinned is not None:
        lines += ["[clock]", f'pinned_time = "{pinned.isoformat()}"', ""]
    if cpl_mode is not None:
        lines += ["[cpl]", f'mode = "{cpl_mode}"', ""]
    path.write_text("\n".join(lines) + extra)
    return path


def start_server(config: Path, log: Path, env: dict[str, str] | None = None) -> ServerProcess:
    """`signer serve` in its own process; returns once it prints its READY line."""
    out = log.open("w")
    environ = {k: v for k, v in os.environ.items() if not k.startswith("SIGNER_")}
    environ.update(env or {})
    proc = subprocess.Popen(
        [sys.executable, "-m", "signer.cli.main", "serve", "--config", str(config)],
        stdout=subprocess.PIPE,
        stderr=out,
        text=True,
        env=environ,
    )
    assert proc.stdout is not None
    ports: dict[str, str] = {}
    line = proc.stdout.readline()
    while line.startswith(("METRICS ", "HEALTH ")):
        ports[line.split()[0]] = line.split()[1]
        line = proc.stdout.readline()
    if not line.startswith("READY "):
        proc.kill()
        raise RuntimeError(f"server did not start: {line!r}\n{log.read_text()}")
    return ServerProcess(
        config, line.split()[1], proc, log, ports.get("METRICS"), ports.get("HEALTH")
    )
