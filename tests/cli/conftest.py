"""The CLI tests' own real server (not the API tests' one: their audit trails stay apart)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.hsm import Hsm
from tests.support.manufacturer import Manufacturer
from tests.support.server import Running, running_server


@pytest.fixture(scope="session")
def running(
    hsm: Hsm, vectors: Path, manufacturer: Manufacturer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Running]:
    with running_server(hsm, vectors, manufacturer, tmp_path_factory.mktemp("server")) as r:
        yield r
