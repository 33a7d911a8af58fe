"""Session fixtures: a fresh SoftHSM2 token per test session, test keys, databases.

SoftHSM2 reads SOFTHSM2_CONF and its token directory when the module is first loaded, so
every token the session needs is created here, before anything loads the module. Helpers
and constants live in tests/support.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, utils

from signer.duis.schema import DuisSchema
from tests.support.database import BACKENDS, new_database
from tests.support.dcc import DccKey
from tests.support.hsm import MODULE, SO_PIN, TOKEN_LABELS, USER_PIN, Hsm
from tests.support.manufacturer import Manufacturer, new_manufacturer
from tests.support.postgres import Cluster, start_cluster
from tests.support.vectors import require_dir


@pytest.fixture(scope="session")
def vectors() -> Path:
    """../shared/vectors: skipped on a fresh clone without it, a failure under CI=true."""
    return require_dir()


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


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh database per test, once on SQLite and once on PostgreSQL."""
    return new_database(request, request.param, tmp_path)


@pytest.fixture(scope="module", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """For module-scoped fixtures that make their own database on each backend."""
    return str(request.param)


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
    pin_file.write_text(f"{USER_PIN}\n")
    os.environ["SOFTHSM2_CONF"] = str(conf)
    for label in TOKEN_LABELS:
        subprocess.run(
            [
                "softhsm2-util",
                "--init-token",
                "--free",
                "--label",
                label,
                "--so-pin",
                SO_PIN,
                "--pin",
                USER_PIN,
            ],
            check=True,
            capture_output=True,
        )
    h = Hsm(d, conf, pin_file)
    yield h
    for t in h.tokens.values():
        t.close()


@pytest.fixture(scope="session")
def manufacturer(tmp_path_factory: pytest.TempPathFactory) -> Manufacturer:
    """A test manufacturer: its key is the manufacturer's, so it lives outside the token."""
    return new_manufacturer(tmp_path_factory.mktemp("manufacturer"))


@pytest.fixture(scope="session")
def dcc(tmp_path_factory: pytest.TempPathFactory) -> DccKey:
    """A test DCC XML-signing key and certificate; servers that trust it list it in [dcc]."""
    return DccKey.make(tmp_path_factory.mktemp("dcc"), "Test DCC")


@pytest.fixture(scope="session")
def other_dcc(tmp_path_factory: pytest.TempPathFactory) -> DccKey:
    """A second key no server trusts: what it signs must be refused."""
    return DccKey.make(tmp_path_factory.mktemp("other-dcc"), "Other DCC")


# -- the DUIS XML: the test Supplier's XML-signing key, the schema, xmlsec1 ----------------


@pytest.fixture(scope="session")
def xml_cert(vectors: Path) -> x509.Certificate:
    """The test Supplier's XML-signing certificate (self-signed, issuer reads CN=Z1,OU=07)."""
    return x509.load_pem_x509_certificate(
        (vectors / "certs" / "xml-sign-90B3D51F30010000-ds.pem").read_bytes()
    )


@pytest.fixture(scope="session")
def sign_digest(vectors: Path) -> Callable[[bytes], bytes]:
    """Stands where the HSM will: SHA-256 digest in, raw r||s out, with the published key."""
    key = serialization.load_pem_private_key(
        (vectors / "keys" / "xml-sign-90B3D51F30010000-ds.key.pem").read_bytes(), None
    )
    assert isinstance(key, ec.EllipticCurvePrivateKey)

    def sign(digest: bytes) -> bytes:
        assert len(digest) == 32
        der = key.sign(digest, ec.ECDSA(utils.Prehashed(hashes.SHA256())))
        r, s = utils.decode_dss_signature(der)
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")

    return sign


@pytest.fixture(scope="session")
def schema(vectors: Path) -> DuisSchema:
    return DuisSchema.load(vectors / "xsd")


_XMLSEC1_FLAGS = ("--verify", "--enabled-reference-uris", "empty")


@pytest.fixture(scope="session")
def xmlsec1() -> Callable[[bytes, Path, Path], subprocess.CompletedProcess[str]]:
    """Debian xmlsec1 as an independent verifier: returns the finished process."""
    exe = shutil.which("xmlsec1")
    if exe is None:
        if os.environ.get("CI") == "true":
            pytest.fail("xmlsec1 is not installed (CI=true must not skip the cross-check)")
        pytest.skip("xmlsec1 is not installed")

    def run(xml: bytes, cert_pem: Path, workdir: Path) -> subprocess.CompletedProcess[str]:
        doc = workdir / "doc.xml"
        doc.write_bytes(xml)
        cmd = [exe, *_XMLSEC1_FLAGS, "--pubkey-cert-pem", str(cert_pem), str(doc)]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)

    return run
