"""The CLI tests' own real server (not the API tests' one: their audit trails stay apart)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.devenv import DevEnv, provision
from tests.support.hsm import Hsm
from tests.support.manufacturer import Manufacturer
from tests.support.server import Running, running_server


@pytest.fixture(scope="session")
def running(
    hsm: Hsm, vectors: Path, manufacturer: Manufacturer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Running]:
    with running_server(hsm, vectors, manufacturer, tmp_path_factory.mktemp("server")) as r:
        yield r


@pytest.fixture
def dev_env(vectors: Path, tmp_path: Path) -> Iterator[DevEnv]:
    """`var/dev` under tmp_path as scripts/dev-server provisions it (with the DUIS schema),
    its server started on ports the system picked; stopped (cleanly) afterwards."""
    env = provision(tmp_path, schema_dir=vectors / "xsd")
    env.start()
    yield env
    if env.server is not None:
        assert env.stop() == 0
