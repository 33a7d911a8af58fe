"""A real `signer serve` process on a local port: its configuration, start and stop."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from signer.api._proto.signer.v1 import signer_pb2 as pb
from signer.api._proto.signer.v1 import signer_pb2_grpc as pb_grpc
from signer.clock import fixed_clock
from signer.limits import CHANNEL_OPTIONS
from signer.registry.db import Database, open_database
from signer.service import admin
from tests.support.constants import MANUFACTURER_CODE, PINNED, SUPPLIER_EUI
from tests.support.hsm import MODULE, TOKEN_LABEL, Hsm, ensure_vector_keys
from tests.support.independent import ota_header
from tests.support.ledger import activate, services_for
from tests.support.manufacturer import Manufacturer


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
    issuers: Sequence[Path] = (),
    pinned: dt.datetime | None = PINNED,
    cpl_mode: str | None = "advisory",
    extra: str = "",
    dev_mode: bool = True,
    campaigns: str = "direct_limit = 0",
) -> Path:
    """A test configuration; with dev_mode=False pass the [tls] section in `extra`, and
    ``schema_dir`` and ``issuers``: `signer serve` refuses production without them.
    ``campaigns`` is the [campaigns] section's body: by default no direct limit (tests send
    50,001 devices to BuildDUIS); "" leaves the section out (the defaults), and a
    [campaigns] section in ``extra`` replaces it."""
    lines = [
        "[server]",
        'listen = "127.0.0.1:0"',
        "ephemeral_ports_for_tests = true",
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
    if issuers:
        listed = ", ".join(f'"{p}"' for p in issuers)
        lines += ["[smki]", f"issuers = [{listed}]", ""]
    if pinned is not None:
        lines += [
            "[clock]",
            f'pinned_time = "{pinned.isoformat()}"',
            "pinned_for_tests = true",  # outside dev mode too: the test certificates expired
            "",
        ]
    if cpl_mode is not None:
        lines += ["[cpl]", f'mode = "{cpl_mode}"', ""]
    if campaigns and "[campaigns]" not in extra:  # a test's own section wins
        lines += ["[campaigns]", campaigns, ""]
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


def separate_delivery(
    manufacturer: Manufacturer, image: bytes, *, header: bytes | None = None, **header_fields: Any
) -> pb.VerifyManufacturerRequest:
    """``image`` as a separate-shape delivery: ``header`` (else ``ota_header`` of the image
    with ``header_fields``), the manufacturer's signature over header and image, the image's
    SHA-256."""
    if header is None:
        header = ota_header(len(image), **header_fields)
    return pb.VerifyManufacturerRequest(
        separate=pb.SeparateDelivery(
            ota_header=header,
            manufacturer_image=image,
            signature=manufacturer.sign(header + image),
            hash=hashlib.sha256(image).digest(),
        )
    )


def verify_separate(
    stub: pb_grpc.FirmwareSignerStub,
    manufacturer: Manufacturer,
    image: bytes,
    *,
    header: bytes | None = None,
    timeout: float | None = None,
    **header_fields: Any,
) -> pb.VerifyManufacturerResponse:
    """VerifyManufacturer for ``separate_delivery(manufacturer, image, ...)``; the verdict."""
    request = separate_delivery(manufacturer, image, header=header, **header_fields)
    return stub.VerifyManufacturer(request, timeout=timeout)


@dataclass
class Running:
    """A started server with the RTDS test keys in its token, and a client stub on it."""

    server: ServerProcess
    db: Database
    db_url: str
    stub: pb_grpc.FirmwareSignerStub
    channel: grpc.Channel
    vectors: Path

    def verify(self, manufacturer: Manufacturer, image: bytes) -> str:
        """A separate-shape delivery of ``image`` verified into the library; its image ID."""
        verdict = verify_separate(self.stub, manufacturer, image)
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
    extra: str = "",
) -> tuple[Path, Database, str]:
    """A configuration, database and key ledger for a server; SQLite in ``tmp`` unless
    ``db_url`` names another (a PostgreSQL database from the ``postgres`` fixture).
    ``extra`` is appended to the configuration (e.g. ``tests.support.dcc.dcc_section``)."""
    token = hsm.token()
    ensure_vector_keys(token, vectors)
    db_url = db_url or f"sqlite:///{tmp / 'signer.db'}"
    db = open_database(db_url)
    admin.add_manufacturer(
        db, f"{MANUFACTURER_CODE:04X}", manufacturer.cert_pem.read_bytes(), fixed_clock(PINNED)()
    )
    admin.import_device(
        db,
        (vectors / "trust_anchor/CS02aMAC_6.24.1_SUCCESS_RESPONSE_GBCS.HEX").read_bytes(),
        PINNED,
        dcc_certificates=(),
        accept_unauthenticated=True,  # the RTDS payload is raw GBCS: set-up, not under test
    )
    config = write_config(
        tmp / "signer.toml",
        hsm,
        db_url,
        schema_dir=vectors / "xsd",
        cpl_mode=cpl_mode,
        extra=extra,
    )
    activate(services_for(token, db, config), "z1-supplier-ds", "xml-sign")
    return config, db, db_url


@contextmanager
def running_server(
    hsm: Hsm, vectors: Path, manufacturer: Manufacturer, tmp: Path
) -> Iterator[Running]:
    """A prepared server in ``tmp`` with a channel to it; stopped (cleanly) on exit."""
    config, db, db_url = prepare(hsm, vectors, manufacturer, tmp)
    server = start_server(config, tmp / "server.log")
    channel = grpc.insecure_channel(server.address, options=CHANNEL_OPTIONS)
    yield Running(server, db, db_url, pb_grpc.FirmwareSignerStub(channel), channel, vectors)
    channel.close()
    assert server.stop() == 0
