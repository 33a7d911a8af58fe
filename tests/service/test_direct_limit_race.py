"""The direct limit holds for calls that overlap: each call counts again in the
transaction that commits its audit records, holding the audit head's lock, so two calls
that both passed the pre-check cannot both be released past ``direct_limit`` — in one
process (one after the other, or in one group commit) and across replicas (two
``Database`` objects: two pools, two group commits, one database). On SQLite and on
PostgreSQL."""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session

from signer.caller import Caller, bound
from signer.errors import CampaignRefused
from signer.registry import audit
from signer.registry import campaigns as store
from signer.registry.db import open_database
from signer.service.activation import ActivationSpec, build_activations
from signer.service.campaigns import (
    CampaignSpec,
    Issued,
    Product,
    apply_campaign,
    approve_campaign,
    plan_campaign,
)
from signer.service.campaigns.policy import OPERATIONS
from signer.service.duis import build_duis
from signer.service.resign import resign
from signer.service.services import Services
from signer.service.signing import SigningBatch
from tests.support.campaigns import REQUESTER, World, add_fleet, open_world
from tests.support.hsm import Hsm
from tests.support.manufacturer import Manufacturer

LIMIT = 3
WAIT = 20.0  # seconds: a test that hangs fails instead


@pytest.fixture
def world(
    request: pytest.FixtureRequest,
    hsm: Hsm,
    vectors: Path,
    manufacturer: Manufacturer,
    tmp_path: Path,
    db_url: str,
) -> Iterator[World]:
    """A campaign world on SQLite and on PostgreSQL; the parameter: the direct limit."""
    limit = getattr(request, "param", LIMIT)
    w = open_world(
        hsm, vectors, manufacturer, tmp_path, db_url=db_url, campaigns=f"direct_limit = {limit}"
    )
    yield w
    w.svc.db.dispose()


CALLS = ("Resign", "BuildDUIS", "BuildActivation")


def direct_call(svc: Services, image_id: str, call: str, devices: list[str]) -> object:
    if call == "Resign":
        return resign(svc, image_id, devices, None)
    if call == "BuildDUIS":
        return build_duis(
            svc, image_id=image_id, upgrade_image=None, device_ids=devices,
            firmware_version="00000200", service="11.1",
        )  # fmt: skip
    return build_activations(svc, ActivationSpec(image_id), devices)


def ok_devices(world: World, call: str) -> int:
    """The devices of the image's ok direct signatures of ``call``'s kind, from the trail."""
    return sum(
        r.device_count or 0
        for r in audit.records(world.db)
        if r.outcome == "ok"
        and r.operation == OPERATIONS[call]
        and r.image_id == world.image_id
        and r.method != "ApplyCampaign"
    )


def withheld_reasons(world: World, call: str) -> list[str]:
    """What the trail says of the kind's signatures that were made and not released."""
    return [
        json.loads(r.details).get("withheld", "")
        for r in audit.records(world.db)
        if r.outcome == "failed" and r.operation == OPERATIONS[call]
    ]


class Outcome:
    """One call run in a thread, under its own caller: its result or its error."""

    def __init__(self, name: str, run: Callable[[], object]) -> None:
        self.name = name
        self.error: BaseException | None = None
        self.result: object = None
        self.thread = threading.Thread(target=self._main, args=(run,), name=name)

    def _main(self, run: Callable[[], object]) -> None:
        with bound(Caller(f"CN={self.name}", f"rid-{self.name}", method=self.name)):
            try:
                self.result = run()
            except BaseException as exc:  # reported to the test thread
                self.error = exc

    def start(self) -> Outcome:
        self.thread.start()
        return self

    def join(self) -> Outcome:
        self.thread.join(WAIT)
        assert not self.thread.is_alive(), f"{self.name} did not finish"
        return self


def hold_commit(
    monkeypatch: pytest.MonkeyPatch, held: str
) -> tuple[threading.Event, threading.Event, dict[str, threading.Event]]:
    """Thread ``held``'s signing batch stops as it is about to commit (signed, its records
    not yet written) until released; every thread's arrival at commit is signalled."""
    arrived, release = threading.Event(), threading.Event()
    at_commit: dict[str, threading.Event] = {}
    commit = SigningBatch.commit

    def held_commit(self: SigningBatch) -> None:
        name = threading.current_thread().name
        at_commit.setdefault(name, threading.Event()).set()
        if name == held:
            arrived.set()
            assert release.wait(WAIT)
        commit(self)

    monkeypatch.setattr(SigningBatch, "commit", held_commit)
    return arrived, release, at_commit


def refused_required(outcome: Outcome) -> bool:
    return (
        isinstance(outcome.error, CampaignRefused) and outcome.error.reason == "CAMPAIGN_REQUIRED"
    )


@pytest.mark.parametrize("call", CALLS)
def test_a_call_signed_before_another_committed_is_refused_at_its_own_commit(
    world: World, monkeypatch: pytest.MonkeyPatch, call: str
) -> None:
    devices = add_fleet(world, 1, 4)
    arrived, release, _ = hold_commit(monkeypatch, "A")
    # A passes its pre-check (nothing signed yet) and signs 2, then waits before its commit
    a = Outcome("A", lambda: direct_call(world.svc, world.image_id, call, devices[:2])).start()
    assert arrived.wait(WAIT)
    # B passes its pre-check too (A's 2 are not committed) and commits its 2
    b = Outcome("B", lambda: direct_call(world.svc, world.image_id, call, devices[2:])).start()
    b.join()
    assert b.error is None, b.error
    release.set()
    a.join()
    assert refused_required(a), a.error
    assert "with the 2 this image" in str(a.error)
    assert ok_devices(world, call) == 2 <= LIMIT
    # A's signatures were made and withheld: recorded as failed, not released
    assert a.result is None
    withheld = withheld_reasons(world, call)
    assert withheld and all("exceed campaigns.direct_limit" in w for w in withheld), withheld


@pytest.mark.parametrize("call", ["Resign", "BuildActivation"])
def test_overlapping_calls_within_the_limit_both_pass(
    world: World, monkeypatch: pytest.MonkeyPatch, call: str
) -> None:
    devices = add_fleet(world, 1, 3)
    arrived, release, _ = hold_commit(monkeypatch, "A")
    a = Outcome("A", lambda: direct_call(world.svc, world.image_id, call, devices[:1])).start()
    assert arrived.wait(WAIT)
    b = Outcome("B", lambda: direct_call(world.svc, world.image_id, call, devices[1:])).start()
    b.join()
    release.set()
    a.join()
    assert a.error is None and b.error is None, (a.error, b.error)
    assert ok_devices(world, call) == 3
    assert withheld_reasons(world, call) == []


def test_two_members_of_one_group_commit_see_each_others_records(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A and B wait behind one append and are written in one transaction: the second
    member's count sees the first's rows, inserted before its own in that transaction."""
    devices = add_fleet(world, 1, 4)
    holding, release = threading.Event(), threading.Event()

    def hold(_s: Session) -> None:  # an append that holds the head's lock until released
        holding.set()
        assert release.wait(WAIT)

    blocker = SigningBatch(world.svc)
    blocker.along(hold)
    c = Outcome("C", blocker.commit).start()
    assert holding.wait(WAIT)
    groups: list[int] = []
    together = audit._write_together

    def spy(db: Any, group: list[Any]) -> None:
        groups.append(len(group))
        together(db, group)

    monkeypatch.setattr(audit, "_write_together", spy)
    a = Outcome("A", lambda: resign(world.svc, world.image_id, devices[:2], None)).start()
    b = Outcome("B", lambda: resign(world.svc, world.image_id, devices[2:], None)).start()
    waiting = audit._group_of(world.db)._waiting
    deadline = time.monotonic() + WAIT
    while len(waiting) < 2 and time.monotonic() < deadline:  # both signed, both queued
        time.sleep(0.01)
    assert len(waiting) == 2
    release.set()
    for o in (c, a, b):
        o.join()
    assert c.error is None, c.error
    assert groups and groups[0] == 2  # written as one group first
    assert sorted([refused_required(a), refused_required(b)]) == [False, True], (a.error, b.error)
    assert (a.error is None) != (b.error is None)
    assert ok_devices(world, "Resign") == 2


def test_replicas_on_one_database_take_turns_at_the_head(
    world: World, monkeypatch: pytest.MonkeyPatch, db_url: str
) -> None:
    """A (replica 1) holds the head's lock with its count not yet run; B (replica 2, its
    own pool and group commit) passes its pre-check, signs and waits for the lock; A
    commits; B's count, a statement started once it holds the lock, sees A's records."""
    devices = add_fleet(world, 1, 4)
    replica = dataclasses.replace(world.svc, db=open_database(db_url))
    in_count, release = threading.Event(), threading.Event()
    count = store.direct_devices_in

    def held_count(s: Session, *args: Any) -> int:
        if threading.current_thread().name == "A":
            in_count.set()
            assert release.wait(WAIT)
        return count(s, *args)

    monkeypatch.setattr(store, "direct_devices_in", held_count)
    _, _, at_commit = hold_commit(monkeypatch, "")
    try:
        a = Outcome("A", lambda: resign(world.svc, world.image_id, devices[:2], None)).start()
        assert in_count.wait(WAIT)  # A holds the head's lock
        b = Outcome("B", lambda: resign(replica, world.image_id, devices[2:], None)).start()
        deadline = time.monotonic() + WAIT
        while "B" not in at_commit and time.monotonic() < deadline:
            time.sleep(0.01)
        assert "B" in at_commit  # B passed its pre-check and signed
        time.sleep(0.3)  # B is (most likely) waiting for the lock; either way B must lose
        release.set()
        a.join()
        b.join()
    finally:
        release.set()
        replica.db.dispose()
    assert a.error is None, a.error
    assert refused_required(b), b.error
    assert ok_devices(world, "Resign") == 2


@pytest.mark.parametrize("world", [0], indirect=True)
def test_no_limit_no_count(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    devices = add_fleet(world, 1, 4)
    counted: list[object] = []
    count = store.count_direct

    def spy(*args: Any) -> int:
        counted.append(args)
        return count(*args)

    monkeypatch.setattr(store, "count_direct", spy)
    arrived, release, _ = hold_commit(monkeypatch, "A")
    a = Outcome("A", lambda: resign(world.svc, world.image_id, devices[:2], None)).start()
    assert arrived.wait(WAIT)
    b = Outcome("B", lambda: resign(world.svc, world.image_id, devices[2:], None)).start()
    b.join()
    release.set()
    a.join()
    assert a.error is None and b.error is None, (a.error, b.error)
    assert build_activations(world.svc, ActivationSpec(world.image_id), devices)[0]
    assert counted == []


def test_the_recount_runs_inside_the_audit_transaction(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a limit, each direct call counts twice: its pre-check, and once in its audit
    transaction (a stream: per batch)."""
    devices = add_fleet(world, 1, 3)
    inside: list[str] = []
    count = store.direct_devices_in

    def spy(s: Session, image_id: str, operation: str, *args: Any) -> int:
        inside.append(operation)
        return count(s, image_id, operation, *args)

    monkeypatch.setattr(store, "direct_devices_in", spy)
    resign(world.svc, world.image_id, devices[:1], None)
    build_activations(world.svc, ActivationSpec(world.image_id), devices[:2])
    assert inside == ["resign", "activation-sign"]


def test_a_campaign_apply_is_never_counted_nor_refused_by_the_recount(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    devices = add_fleet(world, 1, 6)
    resign(world.svc, world.image_id, devices[:LIMIT], None)  # the limit is reached
    inside: list[str] = []
    count = store.direct_devices_in

    def spy(s: Session, *args: Any) -> int:
        inside.append("count")
        return count(s, *args)

    monkeypatch.setattr(store, "direct_devices_in", spy)
    spec = CampaignSpec(world.image_id, Product.UPDATE, firmware_version="00000200")
    with bound(Caller("CN=op", "r1", method="ApplyCampaign")):
        p = plan_campaign(world.svc, spec, [devices[LIMIT:]], REQUESTER)
        p = approve_campaign(world.svc, p.plan_id, "CN=ann")
        got = [i for batch in apply_campaign(world.svc, p.plan_id, "CN=op") for i in batch]
    issued = [d for i in got if isinstance(i, Issued) for d in i.device_ids]
    assert sorted(str(d) for d in issued) == sorted(devices[LIMIT:])
    assert inside == []
    assert ok_devices(world, "Resign") == LIMIT
    with pytest.raises(CampaignRefused) as info:  # the direct calls are still at the limit
        resign(world.svc, world.image_id, devices[LIMIT:], None)
    assert info.value.reason == "CAMPAIGN_REQUIRED"
