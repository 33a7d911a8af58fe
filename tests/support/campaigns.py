"""An in-process campaign world: the fleet's CPL (strict), its image verified, devices on
it trusting Z1-supplier-ds or a second Supplier key, on the session token.

Campaign tests call the use cases directly with a real SoftHSM2 token and a real database;
``World.at`` moves the service's clock (approvals expire).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509

from signer.clock import fixed_clock
from signer.errors import NotFound
from signer.gbcs import delivery as deliveries
from signer.gbcs.eui import Eui64
from signer.gbcs.roles import RemotePartyRole
from signer.hsm.token import Token, TokenKey
from signer.registry import audit
from signer.registry.db import Database
from signer.service.cplops import import_cpl
from signer.service.services import Services
from signer.service.verify import verify_manufacturer
from signer.smki.certificate import smki_extensions, smki_name
from signer.smki.issuance import issue_certificate
from tests.support import fleet
from tests.support.constants import PINNED, SUPPLIER_EUI
from tests.support.devices import add_device
from tests.support.hsm import Hsm
from tests.support.ledger import activate, services_for
from tests.support.manufacturer import Manufacturer
from tests.support.server import prepare

SECOND_KEY = "campaign-two"
REQUESTER = "CN=planner"


@dataclass
class World:
    svc: Services
    image_id: str
    second: TokenKey
    tmp: Path
    now: dt.datetime = PINNED
    devices: list[str] = field(default_factory=list)

    @property
    def db(self) -> Database:
        return self.svc.db

    def at(self, when: dt.datetime) -> None:
        self.now = when
        self.svc.clock = fixed_clock(when)


def device(prefix: int, i: int) -> str:
    """A test device EUI: 00-DC-<prefix>-00-00-<i>."""
    return str(Eui64(bytes((0, 0xDC, prefix, 0, 0)) + i.to_bytes(3, "big")))


def supplier_key(token: Token, label: str) -> TokenKey:
    """A token key certified by a test CA as a Supplier digital-signing key (made once)."""
    try:
        return token.find(label=label)
    except NotFound:
        key = token.generate_key(label)
        cert = issue_certificate(
            subject=smki_name(int(RemotePartyRole.SUPPLIER), Eui64.parse(SUPPLIER_EUI), label),
            issuer=smki_name(int(RemotePartyRole.ISSUING_AUTHORITY), None, "TEST"),
            public_key=key.public_key,
            serial=x509.random_serial_number(),
            not_before=PINNED - dt.timedelta(days=30),
            not_after=PINNED + dt.timedelta(days=30),
            extensions=smki_extensions(public_key=key.public_key, key_usage="digitalSignature"),
            sign_digest=lambda digest: token.sign_digest(key, digest),
        )
        return token.store_certificate(key, cert)


def verify_fleet_image(svc: Services, manufacturer: Manufacturer) -> str:
    d = deliveries.from_separate(
        ota_header=fleet.HEADER,
        manufacturer_image=fleet.IMAGE,
        signature=manufacturer.sign(fleet.HEADER + fleet.IMAGE),
        hash=hashlib.sha256(fleet.IMAGE).digest(),
    )
    verdict = verify_manufacturer(svc, d)
    assert verdict.verified, verdict.checks
    return verdict.image_id


def open_world(
    hsm: Hsm,
    vectors: Path,
    manufacturer: Manufacturer,
    tmp: Path,
    *,
    db_url: str | None = None,
    campaigns: str = "direct_limit = 0",
) -> World:
    """A database with the fleet's CPL, its image verified, the RTDS device, the XML and
    two Supplier keys active; ``campaigns`` is the [campaigns] section's body."""
    extra = f"\n[campaigns]\n{campaigns}\n" if campaigns else ""
    config, db, _ = prepare(
        hsm, vectors, manufacturer, tmp, cpl_mode="strict", db_url=db_url, extra=extra
    )
    token = hsm.token()
    second = supplier_key(token, SECOND_KEY)
    svc = services_for(token, db, config)
    activate(svc, SECOND_KEY)
    csv = tmp / "cpl.csv"
    csv.write_text(fleet.cpl_csv(other_models=True))
    import_cpl(db, csv, PINNED)
    return World(svc=svc, image_id=verify_fleet_image(svc, manufacturer), second=second, tmp=tmp)


def add_fleet(
    world: World, prefix: int, n: int, *, second_key: bool = False, **kw: object
) -> list[str]:
    """``n`` devices on T-2 (eligible for T-3) trusting Z1 (or the second key)."""
    ski = world.second.ski if second_key else None
    made = []
    for i in range(n):
        eui = device(prefix, i)
        if ski is not None:
            add_device(world.db, eui, ski=ski, **kw)  # type: ignore[arg-type]
        else:
            add_device(world.db, eui, **kw)  # type: ignore[arg-type]
        made.append(eui)
    return made


def audited(db: Database, operation: str) -> list[tuple[str, dict[str, Any]]]:
    """(client, details) of each audit record of ``operation``, in order."""
    return [
        (r.client, json.loads(r.details)) for r in audit.records(db) if r.operation == operation
    ]


def operations(db: Database) -> list[str]:
    return [r.operation for r in audit.records(db)]
