"""A real `signer serve` process on a local port, with the RTDS test keys in the token."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest

from signer.api._proto.signer.v1 import signer_pb2 as pb
from signer.api._proto.signer.v1 import signer_pb2_grpc as pb_grpc
from signer.api.server import CHANNEL_OPTIONS
from signer.clock import fixed_clock
from signer.errors import NotFound
from signer.hsm.token import Token
from signer.registry.db import Database, open_database
from signer.service import admin
from tests.conftest import (
    MANUFACTURER_CODE,
    PINNED,
    Hsm,
    Manufacturer,
    ServerProcess,
    start_server,
    write_config,
)
from tests.independent import ota_header
from tests.ledger import activate, services_for

RTDS_DEVICE = "00-DB-12-34-56-78-90-A0"


def ensure_key(token: Token, label: str, key_pem: Path, cert_pem: Path) -> None:
    try:
        token.find(label=label)
    except NotFound:
        admin.import_key(token, label, key_pem.read_bytes(), cert_pem.read_bytes())


@dataclass
class Running:
    server: ServerProcess
    db: Database
    db_url: str
    stub: pb_grpc.FirmwareSignerStub
    channel: grpc.Channel
    vectors: Path

    def verify(self, manufacturer: Manufacturer, image: bytes) -> str:
        """A separate-shape delivery of ``image`` verified into the library; its image ID."""
        header = ota_header(len(image))
        verdict = self.stub.VerifyManufacturer(
            pb.VerifyManufacturerRequest(
                separate=pb.SeparateDelivery(
                    ota_header=header,
                    manufacturer_image=image,
                    signature=manufacturer.sign(header + image),
                    hash=hashlib.sha256(image).digest(),
                )
            )
        )
        assert verdict.verified, verdict.checks
        return str(verdict.image_id)

    def rtds_image(self) -> bytes:
        return base64.b64decode((self.vectors / "ota/esme_11.1_upgrade_image.b64").read_text())


def prepare(
    hsm: Hsm,
    vectors: Path,
    manufacturer: Manufacturer,
    tmp: Path,
    *,
    cpl_mode: str = "advisory",
    db_url: str | None = None,
) -> tuple[Path, Database, str]:
    """A configuration, database and key ledger for a server; SQLite in ``tmp`` unless
    ``db_url`` names another (a PostgreSQL database from the ``postgres`` fixture)."""
    token = hsm.token()
    ensure_key(
        token,
        "z1-supplier-ds",
        vectors / "keys/Z1-supplier-ds.key.pem",
        vectors / "certs/Z1-supplier-ds.pem",
    )
    ensure_key(
        token,
        "xml-sign",
        vectors / "keys/xml-sign-90B3D51F30010000-ds.key.pem",
        vectors / "certs/xml-sign-90B3D51F30010000-ds.pem",
    )
    db_url = db_url or f"sqlite:///{tmp / 'signer.db'}"
    db = open_database(db_url)
    admin.add_manufacturer(
        db, f"{MANUFACTURER_CODE:04X}", manufacturer.cert_pem.read_bytes(), fixed_clock(PINNED)()
    )
    admin.import_device(
        db,
        (vectors / "trust_anchor/CS02aMAC_6.24.1_SUCCESS_RESPONSE_GBCS.HEX").read_bytes(),
        PINNED,
    )
    config = write_config(
        tmp / "signer.toml", hsm, db_url, schema_dir=vectors / "xsd", cpl_mode=cpl_mode
    )
    activate(services_for(token, db, config), "z1-supplier-ds", "xml-sign")
    return config, db, db_url


@pytest.fixture(scope="session")
def running(
    hsm: Hsm, vectors: Path, manufacturer: Manufacturer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Running]:
    tmp = tmp_path_factory.mktemp("server")
    config, db, db_url = prepare(hsm, vectors, manufacturer, tmp)
    server = start_server(config, tmp / "server.log")
    channel = grpc.insecure_channel(server.address, options=CHANNEL_OPTIONS)
    yield Running(server, db, db_url, pb_grpc.FirmwareSignerStub(channel), channel, vectors)
    channel.close()
    assert server.stop() == 0
