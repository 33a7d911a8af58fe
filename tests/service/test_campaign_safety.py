"""The holes a security review found in campaigns, closed: one apply at a time (a lease on
the plan, taken over only once expired), a rejection that halts a running apply and is
never overwritten, the Force Replace byte fixed by the plan, cumulative direct limits, a
final plan superseded by planning it again, and the smaller ones."""

from __future__ import annotations

import datetime as dt
from contextlib import nullcontext
from typing import Any

import pytest
from sqlalchemy import text

from signer.caller import Caller, bound
from signer.errors import CampaignRefused, InvalidInput
from signer.registry import campaigns as store
from signer.registry import trust
from signer.registry.db import open_database
from signer.service.activation import (
    ActivationSpec,
    BuiltActivation,
    build_activations,
    stream_activations,
)
from signer.service.caches import VerifiedImages
from signer.service.campaigns import (
    AlreadyIssued,
    CampaignSpec,
    Issued,
    PlanView,
    Product,
    Refused,
    ResultItem,
    Withheld,
    apply,
    apply_campaign,
    approve_campaign,
    get_campaign,
    plan_campaign,
    reject_campaign,
)
from signer.service.campaigns.approvals import counting
from signer.service.campaigns.content import token
from signer.service.duis import build_duis
from signer.service.resign import resign
from tests.support.campaigns import REQUESTER, World, add_fleet, device, operations
from tests.support.devices import add_device
from tests.support.independent import split_upgrade_image

ANN = "CN=ann"
SIGNATURES = ("resign", "duis-sign", "activation-sign")


def approved(world: World, devices: list[str], product: Product = Product.ACTIVATION) -> PlanView:
    spec = CampaignSpec(world.image_id, product, firmware_version="00000200")
    p = plan_campaign(world.svc, spec, [devices], REQUESTER)
    return approve_campaign(world.svc, p.plan_id, ANN)


def signatures(world: World) -> list[str]:
    return [op for op in operations(world.db) if op in SIGNATURES]


def items(batches: Any) -> list[ResultItem]:
    return [i for batch in batches for i in batch]


def test_a_second_apply_is_refused_busy_and_an_expired_lease_is_taken_over(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(apply, "BATCH", 1)
    devices = add_fleet(world, 1, 3)
    p = approved(world, devices)
    first = apply_campaign(world.svc, p.plan_id, "CN=op1")
    assert len([i for i in next(first) if isinstance(i, Issued)]) == 1
    with pytest.raises(CampaignRefused, match="being applied by CN=op1 since") as info:
        apply_campaign(world.svc, p.plan_id, "CN=op2")
    assert info.value.reason == "PLAN_BUSY"
    # the first apply crashed (stopped renewing): past its lease, another takes over
    world.at(world.now + apply.LEASE + dt.timedelta(seconds=1))
    rest = items(apply_campaign(world.svc, p.plan_id, "CN=op2"))
    assert sum(len(i.device_ids) for i in rest if isinstance(i, Issued)) == 2
    # the first one wakes up: its renewal fails, it signs nothing more
    with pytest.raises(CampaignRefused) as info:
        next(first)
    assert info.value.reason == "PLAN_APPLIED"
    assert signatures(world) == ["activation-sign"] * 3
    assert get_campaign(world.svc, p.plan_id).state == "applied"


def test_a_rejection_during_the_start_recompute_stands(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    p = approved(world, add_fleet(world, 1, 2))
    add_device(world.db, device(8, 1))  # unrelated: forces the recompute
    real = apply.survey  # type: ignore[attr-defined]

    def slow_survey(*a: Any, **kw: Any) -> Any:
        reject_campaign(world.svc, p.plan_id, "CN=bob", "wrong image, stop")
        return real(*a, **kw)

    monkeypatch.setattr(apply, "survey", slow_survey)
    with pytest.raises(CampaignRefused) as info:
        items(apply_campaign(world.svc, p.plan_id, "CN=op"))
    assert info.value.reason == "PLAN_REJECTED"
    view = get_campaign(world.svc, p.plan_id)
    assert (view.state, view.rejected_by) == ("rejected", "CN=bob")
    assert signatures(world) == []


def test_rejecting_an_applying_plan_halts_it_before_its_next_batch(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(apply, "BATCH", 1)
    p = approved(world, add_fleet(world, 1, 3))
    running = apply_campaign(world.svc, p.plan_id, "CN=op")
    assert [type(i) for i in next(running)] == [Issued]
    halted = reject_campaign(world.svc, p.plan_id, "CN=bob", "stop: wrong firmware")
    assert halted.state == "rejected"
    with pytest.raises(CampaignRefused, match="stay issued") as info:
        next(running)
    assert info.value.reason == "PLAN_REJECTED"
    view = get_campaign(world.svc, p.plan_id)
    assert (view.state, view.issued) == ("rejected", 1)  # issued stays issued, counted
    assert signatures(world) == ["activation-sign"]
    with pytest.raises(CampaignRefused) as info:
        apply_campaign(world.svc, p.plan_id, "CN=op")
    assert info.value.reason == "PLAN_REJECTED"


def test_a_resume_after_every_approval_expired_is_refused(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(apply, "BATCH", 1)
    p = approved(world, add_fleet(world, 1, 2))
    running = apply_campaign(world.svc, p.plan_id, "CN=op")
    next(running)
    running.close()  # interrupted: the lease is released
    world.at(world.now + dt.timedelta(hours=25))
    with pytest.raises(CampaignRefused) as info:
        apply_campaign(world.svc, p.plan_id, "CN=op")
    assert info.value.reason == "NOT_APPROVED"
    # approved again (an applying plan may be): it resumes
    approve_campaign(world.svc, p.plan_id, "CN=carl")
    rest = items(apply_campaign(world.svc, p.plan_id, "CN=op"))
    assert sum(1 for i in rest if isinstance(i, Issued)) == 1
    assert get_campaign(world.svc, p.plan_id).state == "applied"


def test_force_replace_is_the_plans_and_a_redelivery_makes_the_plan_stale(
    world: World,
) -> None:
    p = approved(world, add_fleet(world, 1, 2), Product.UPDATE)
    stored = store.get_plan(world.db, p.plan_id)
    assert stored is not None and stored.force_replace is False  # delivered 0x00, resolved
    before = trust.registry_generation(world.db)
    with world.db.engine.begin() as c:  # a re-delivery rewrites the library image's byte
        c.execute(text("UPDATE firmware_images SET force_replace = 1"))
    assert trust.registry_generation(world.db) > before  # so apply recomputes
    world.svc.images = VerifiedImages()  # another replica, or the server restarted
    with pytest.raises(CampaignRefused) as info:
        apply_campaign(world.svc, p.plan_id, "CN=op")
    assert info.value.reason == "PLAN_STALE"
    assert signatures(world) == []


def test_apply_signs_with_the_plans_force_replace_byte(world: World) -> None:
    p = approved(world, add_fleet(world, 1, 2), Product.UPDATE)
    with world.db.engine.begin() as c:  # not the library image's byte: the plan's
        c.execute(text("UPDATE campaign_plans SET force_replace = :t"), {"t": True})
    got = items(apply_campaign(world.svc, p.plan_id, "CN=op"))
    image = next(i.upgrade_image for i in got if isinstance(i, Issued) and i.upgrade_image)
    assert split_upgrade_image(image.upgrade_image)[2] == 1


def test_planning_a_final_plan_again_supersedes_it(world: World) -> None:
    devices = add_fleet(world, 1, 1)
    first = approved(world, devices)
    items(apply_campaign(world.svc, first.plan_id, "CN=op"))
    spec = CampaignSpec(world.image_id, Product.ACTIVATION, firmware_version="00000200")
    again = plan_campaign(world.svc, spec, [devices], REQUESTER)
    assert again.plan_id != first.plan_id and again.state == "planned"
    assert again.supersedes == (first.plan_id,)
    approve_campaign(world.svc, again.plan_id, ANN)
    # a lost artifact is issued again, under the new plan
    assert [type(i) for i in items(apply_campaign(world.svc, again.plan_id, "CN=op"))] == [Issued]
    # and the new plan's recompute (a registry change) gives the same ID: not stale
    third = plan_campaign(world.svc, spec, [devices], REQUESTER)
    assert third.plan_id not in (first.plan_id, again.plan_id)
    approve_campaign(world.svc, third.plan_id, ANN)
    add_device(world.db, device(8, 1))
    assert items(apply_campaign(world.svc, third.plan_id, "CN=op"))


def test_comments_and_reasons_are_bounded(world: World) -> None:
    p = plan_campaign(
        world.svc, CampaignSpec(world.image_id, Product.ACTIVATION), [add_fleet(world, 1, 1)],
        REQUESTER,
    )  # fmt: skip
    with pytest.raises(InvalidInput) as info:
        approve_campaign(world.svc, p.plan_id, ANN, "x" * 1001)
    assert info.value.field == "comment"
    with pytest.raises(InvalidInput) as info:
        reject_campaign(world.svc, p.plan_id, ANN, "x" * 1001)
    assert info.value.field == "reason"
    with pytest.raises(CampaignRefused):
        approve_campaign(world.svc, p.plan_id, " ")  # no principal
    assert get_campaign(world.svc, p.plan_id).approvals == ()


def test_two_identical_plans_at_once_give_the_stored_plan(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    devices = add_fleet(world, 1, 2)
    spec = CampaignSpec(world.image_id, Product.ACTIVATION)
    real = store.get_plan
    raced: list[PlanView] = []

    def racing(db: Any, plan_id: str) -> Any:
        if not raced and not plan_id.startswith("planning"):
            monkeypatch.setattr(store, "get_plan", real)
            raced.append(plan_campaign(world.svc, spec, [devices], REQUESTER))
            return None  # this call saw no plan yet; the other one stored it meanwhile
        return real(db, plan_id)

    monkeypatch.setattr(store, "get_plan", racing)
    second = plan_campaign(world.svc, spec, [devices], REQUESTER)
    assert raced and second.plan_id == raced[0].plan_id and second.state == "planned"


def test_device_strings_are_one_token_of_their_line() -> None:
    assert token("00-DC-01-00-00-00-00-01") == "00-DC-01-00-00-00-00-01"
    assert token("a\ndevice b") == '"a\\ndevice b"'
    assert token("x y") != token("x") + " y"


def test_a_resume_reports_devices_refused_during_apply(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    devices = add_fleet(world, 1, 2)
    p = approved(world, devices)
    with world.db.engine.begin() as c:  # an earlier apply refused the first device
        c.execute(
            text(
                "UPDATE campaign_devices SET outcome = 'refused', withheld_check = "
                "'plan_mismatch', withheld_detail = 'now trusts another key' "
                "WHERE plan_id = :p AND seq = 1"
            ),
            {"p": p.plan_id},
        )
        c.execute(
            text("UPDATE campaign_plans SET state = 'applying' WHERE plan_id = :p"),
            {"p": p.plan_id},
        )
    got = items(apply_campaign(world.svc, p.plan_id, "CN=op"))
    refused = [i.refusal for i in got if isinstance(i, Refused)]
    assert [(str(r.device), r.reason) for r in refused] == [(devices[0], "plan_mismatch")]


@pytest.mark.parametrize("world", ["direct_limit = 3"], indirect=True)
def test_the_direct_limit_counts_an_images_direct_calls_over_the_window(world: World) -> None:
    devices = add_fleet(world, 1, 6)
    assert resign(world.svc, world.image_id, devices[:3], None).images

    def duis(ids: list[str]) -> object:
        return build_duis(
            world.svc, image_id=world.image_id, upgrade_image=None, device_ids=ids,
            firmware_version="00000200", service="11.1",
        )  # fmt: skip

    duis(devices[:2])
    with pytest.raises(CampaignRefused, match="with the 2 this image") as info:
        duis(devices[2:4])  # 2 + 2 > 3: repeating small calls is a campaign
    assert info.value.reason == "CAMPAIGN_REQUIRED"
    build_activations(world.svc, ActivationSpec(world.image_id), devices[:3])
    with pytest.raises(CampaignRefused) as info:
        build_activations(world.svc, ActivationSpec(world.image_id), devices[3:4])
    assert info.value.reason == "CAMPAIGN_REQUIRED"
    # a campaign's own signatures are not direct calls
    with bound(Caller("CN=op", "r1", method="ApplyCampaign")):
        p = approved(world, devices[3:6])
        assert items(apply_campaign(world.svc, p.plan_id, "CN=op"))
    # past the window, direct calls may run again
    world.at(world.now + world.svc.config.campaigns.direct_window + dt.timedelta(seconds=1))
    assert build_activations(world.svc, ActivationSpec(world.image_id), devices[3:6])[0]


def test_an_update_for_a_device_whose_model_is_unknown_is_withheld(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    p = approved(world, add_fleet(world, 1, 2), Product.UPDATE)
    facts = apply.device_facts  # type: ignore[attr-defined]

    def without_entry(db: Any, devices: Any) -> Any:  # the model facts are gone
        return {d: f._replace(current_entry_id=None) for d, f in facts(db, devices).items()}

    monkeypatch.setattr(apply, "device_facts", without_entry)
    got = items(apply_campaign(world.svc, p.plan_id, "CN=op"))
    withheld = [i for i in got if isinstance(i, Withheld)]
    assert withheld and withheld[0].check == "image_matches_model"
    assert not [i for i in got if isinstance(i, Issued)]


@pytest.mark.parametrize("world", ["direct_limit = 3"], indirect=True)
@pytest.mark.parametrize("own_ids", [True, False], ids=["per-call", "in-process"])
def test_a_stream_opened_early_sees_what_parallel_streams_signed(
    world: World, own_ids: bool
) -> None:
    devices = add_fleet(world, 1, 7)
    spec = ActivationSpec(world.image_id)

    def caller(name: str) -> Any:
        return (
            bound(Caller(name, f"rid-{name}", method="StreamActivation"))
            if own_ids
            else (nullcontext())
        )

    # one stream's own batches count once: 1 + 1 + 1 fits the limit of 3
    with caller("CN=alone"):
        alone = [x for b in stream_activations(world.svc, spec, [[d] for d in devices[:3]])
                 for x in b]  # fmt: skip
    assert sum(isinstance(x, BuiltActivation) for x in alone) == 3
    world.at(world.now + world.svc.config.campaigns.direct_window + dt.timedelta(seconds=1))
    other: list[object] = []

    def late_client() -> Any:
        # this stream is open (the window held nothing); another one signs 2 meanwhile
        with caller("CN=fast"):
            other.extend(x for b in stream_activations(world.svc, spec, [devices[3:5]])
                         for x in b)  # fmt: skip
        yield devices[5:7]

    with caller("CN=slow"), pytest.raises(CampaignRefused, match="with the 2 this") as info:
        list(stream_activations(world.svc, spec, late_client()))
    assert info.value.reason == "CAMPAIGN_REQUIRED"
    assert sum(isinstance(x, BuiltActivation) for x in other) == 2
    assert signatures(world) == ["activation-sign"] * 5


def test_a_halt_inside_a_batch_keeps_the_counts(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(apply, "BATCH", 1)
    p = approved(world, add_fleet(world, 1, 3))
    real = apply.issue_batch  # type: ignore[attr-defined]
    calls: list[int] = []

    def rejected_meanwhile(*a: Any, **kw: Any) -> Any:
        calls.append(1)
        if len(calls) == 2:  # after the batch's renewal: its own hold finds the halt
            reject_campaign(world.svc, p.plan_id, "CN=bob", "stop")
        return real(*a, **kw)

    monkeypatch.setattr(apply, "issue_batch", rejected_meanwhile)
    running = apply_campaign(world.svc, p.plan_id, "CN=op")
    assert [type(i) for i in next(running)] == [Issued]
    with pytest.raises(CampaignRefused, match="stay issued") as info:
        next(running)
    assert info.value.reason == "PLAN_REJECTED"
    row = store.get_plan(world.db, p.plan_id)
    assert row is not None
    assert (row.state, row.issued, row.withheld, row.apply_owner) == ("rejected", 1, 0, None)
    assert get_campaign(world.svc, p.plan_id).issued == 1


@pytest.mark.parametrize("world", ["approvals_required = 2"], indirect=True)
def test_principals_sharing_a_client_entry_are_one_person(world: World) -> None:
    spec = CampaignSpec(world.image_id, Product.ACTIVATION)
    requester = "cn=ann + san=ann@example.com"
    p = plan_campaign(world.svc, spec, [add_fleet(world, 1, 1)], requester)
    with pytest.raises(CampaignRefused, match="sharing a client entry with") as info:
        approve_campaign(world.svc, p.plan_id, "san=ann@example.com")  # ann's other cert
    assert info.value.reason == "SELF_APPROVAL"
    approve_campaign(world.svc, p.plan_id, "cn=bob")
    with pytest.raises(CampaignRefused, match=r"as cn=bob") as info:
        approve_campaign(world.svc, p.plan_id, "cn=bob + subject=CN=bob,O=x")
    assert info.value.reason == "ALREADY_APPROVED"
    assert get_campaign(world.svc, p.plan_id).state == "planned"
    view = approve_campaign(world.svc, p.plan_id, "dev:carl")  # one entry of its own
    assert view.state == "approved" and len(view.approvals) == 2
    with pytest.raises(CampaignRefused) as info:
        approve_campaign(world.svc, p.plan_id, "dev:carl")
    assert info.value.reason == "ALREADY_APPROVED"


def test_already_counted_approvals_sharing_an_entry_count_once(world: World) -> None:
    p = plan_campaign(
        world.svc, CampaignSpec(world.image_id, Product.ACTIVATION), [add_fleet(world, 1, 1)],
        REQUESTER,
    )  # fmt: skip
    row = store.get_plan(world.db, p.plan_id)
    assert row is not None
    later = world.now + dt.timedelta(hours=1)
    with world.db.session() as s:  # stored before the rule: one person under two names
        for who in ("cn=bob", "cn=bob + san=bob@example.com", "san=eve@example.com + cn=ann"):
            store.add_decision(s, p.plan_id, identity=who, decision="approve", at=world.now,
                               expires_at=later, comment="")  # fmt: skip
    row = store.get_plan(world.db, p.plan_id)
    assert row is not None
    decisions = store.decisions(world.db, p.plan_id)
    assert sorted(counting(world.svc, row, decisions, world.now)) == [
        "cn=bob",
        "san=eve@example.com + cn=ann",
    ]


def test_a_resume_reports_withheld_devices_as_withheld(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    devices = add_fleet(world, 1, 2)
    p = approved(world, devices)
    with world.db.engine.begin() as c:  # an earlier apply withheld the first device
        c.execute(
            text(
                "UPDATE campaign_devices SET outcome = 'withheld', withheld_check = "
                "'activation_counter', withheld_detail = 'counter not above the last', "
                "request_ids = 'x' WHERE plan_id = :p AND seq = 1"
            ),
            {"p": p.plan_id},
        )
        c.execute(
            text("UPDATE campaign_plans SET state = 'applying' WHERE plan_id = :p"),
            {"p": p.plan_id},
        )
    got = items(apply_campaign(world.svc, p.plan_id, "CN=op"))
    assert [i for i in got if isinstance(i, Withheld)] == [
        Withheld("activation", (devices[0],), "activation_counter", "counter not above the last")
    ]
    assert not [i for i in got if isinstance(i, AlreadyIssued)]
    assert [i.device_ids for i in got if isinstance(i, Issued)] == [(devices[1],)]


def test_the_direct_limit_query_reads_only_direct_signatures_by_its_index(db_url: str) -> None:
    db = open_database(db_url)
    db.migrate()
    try:
        params = ["ab" * 32, "resign", "2026-01-01T00:00:00.000000Z"]
        with db.cursor() as cur:
            if db.engine.dialect.name == "sqlite":
                plan = cur.execute("EXPLAIN QUERY PLAN " + store.DIRECT_DEVICES, params)
                lines = [str(r[-1]) for r in plan.fetchall()]
            else:
                cur.execute("SET enable_seqscan = off")  # an empty table: else a seq scan
                plan = cur.execute("EXPLAIN " + store.DIRECT_DEVICES, params)
                lines = [str(r[0]) for r in plan.fetchall()]
        assert any("ix_audit_records_image_operation_at" in line for line in lines), lines
        with db.engine.connect() as conn:
            if db.engine.dialect.name == "sqlite":
                sql = conn.execute(
                    text("SELECT sql FROM sqlite_master WHERE name = :n"),
                    {"n": "ix_audit_records_image_operation_at"},
                ).scalar_one()
            else:
                sql = conn.execute(
                    text("SELECT pg_get_indexdef(:n ::regclass)"),
                    {"n": "ix_audit_records_image_operation_at"},
                ).scalar_one()
        assert "WHERE" in sql and "ApplyCampaign" in sql and "ok" in sql
    finally:
        db.dispose()


def test_lease_times_are_compared_in_utc(world: World) -> None:
    p = approved(world, add_fleet(world, 1, 1))
    east = dt.timezone(dt.timedelta(hours=5))
    now = world.now
    assert store.take_lease(world.db, p.plan_id, "a", now.astimezone(east), now + apply.LEASE)
    # the same instant 9 minutes on, written in another zone: still held
    later = (now + dt.timedelta(minutes=9)).astimezone(east)
    assert not store.take_lease(world.db, p.plan_id, "b", later, later + apply.LEASE)
    assert store.renew_lease(world.db, p.plan_id, "a", later + apply.LEASE)
    row = store.get_plan(world.db, p.plan_id)
    assert row is not None and row.apply_lease_until == now + dt.timedelta(minutes=19)
