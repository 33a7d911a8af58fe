"""Session fixtures: a fresh SoftHSM2 token per test session, test keys, databases.

SoftHSM2 reads SOFTHSM2_CONF and its token directory when the module is first loaded, so
every token the session needs is created here, before anything loads the module. Helpers
and constants live in tests/support.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

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
