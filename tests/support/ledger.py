"""Test keys in each test database's key ledger: tokens outlive databases in a session.

The session token keeps its keys while every test module opens its own database, whose
ledger starts empty; a key the ledger does not know never signs. ``activate`` adopts the
token's keys through the same use case a security team runs (`signer keys activate`).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from signer.clock import fixed_clock
from signer.config import load_config
from signer.hsm.token import Token, TokenKey
from signer.registry import keys as ledger
from signer.registry.db import Database
from signer.registry.keys import Operation
from signer.service.keys import lifecycle as keys
from signer.service.keys.operations import audit_entry
from signer.service.services import Services, open_services
from signer.smki.lifecycle import KeyPurpose, KeyState
from tests.support.constants import PINNED

ACTOR = "tests"


def services_for(token: Token, db: Database, config: Path, now: dt.datetime = PINNED) -> Services:
    """The configuration's Services (SMKI issuers included) on this token and database."""
    return open_services(load_config(config), clock=fixed_clock(now), token=token, database=db)


def activate(svc: Services, *labels: str) -> None:
    """Adopt and activate each labelled token key in this database, unless already active."""
    for label in labels:
        key = svc.token.find(label=label)
        record = ledger.get(svc.db, svc.token.token_label, key.key_id)
        if record is None or record.state is not KeyState.ACTIVE:
            keys.activate(svc, label, actor=ACTOR)


def force_active(svc: Services, key: TokenKey, purpose: KeyPurpose) -> None:
    """Enter a key as active without the activation checks: the state of a key whose
    certificate went bad after it was activated (expired, re-issued wrongly)."""
    if ledger.get(svc.db, svc.token.token_label, key.key_id) is not None:
        return
    op = Operation(
        actor=ACTOR,
        operation="test-setup",
        token_label=svc.token.token_label,
        key_label=key.label,
        key_id=key.key_id,
    )
    record = ledger.create(
        svc.db,
        token_label=svc.token.token_label,
        key_id=key.key_id,
        label=key.label,
        purpose=purpose,
        now=PINNED,
        op=op,
        entry=audit_entry(op, PINNED),
    )
    ledger.transition(
        svc.db,
        record,
        KeyState.ACTIVE,
        now=PINNED,
        op=op,
        entry=audit_entry(op, PINNED, ski=key.ski),
        ski=key.ski,
    )
