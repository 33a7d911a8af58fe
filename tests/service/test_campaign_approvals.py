"""Four eyes, cell by cell: the requester never approves, one identity counts once, approvals
expire, larger campaigns need more of them, and a rejection ends the plan. Every approval and
rejection is audited."""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

import pytest

from signer.config import load_config
from signer.errors import CampaignRefused, ConfigurationError, InvalidInput
from signer.service.campaigns import (
    CampaignSpec,
    PlanView,
    Product,
    apply_campaign,
    approve_campaign,
    get_campaign,
    plan_campaign,
    reject_campaign,
)
from tests.support.campaigns import REQUESTER, World, add_fleet, audited
from tests.support.constants import PINNED
from tests.support.hsm import Hsm
from tests.support.server import write_config

ANN, BOB = "CN=ann", "CN=bob"


def planned(world: World, n: int = 2) -> PlanView:
    spec = CampaignSpec(world.image_id, Product.UPDATE, firmware_version="00000200")
    return plan_campaign(world.svc, spec, [add_fleet(world, 1, n)], REQUESTER)


def reason_of(call: object) -> str:
    with pytest.raises(CampaignRefused) as info:
        call()  # type: ignore[operator]
    return info.value.reason


def test_the_requester_never_approves_its_own_plan(world: World) -> None:
    plan = planned(world)
    assert reason_of(lambda: approve_campaign(world.svc, plan.plan_id, REQUESTER)) == (
        "SELF_APPROVAL"
    )
    assert get_campaign(world.svc, plan.plan_id).approvals == ()
    assert reason_of(lambda: apply_campaign(world.svc, plan.plan_id, REQUESTER)) == ("NOT_APPROVED")
    assert audited(world.db, "campaign-approve") == []


def test_one_identity_counts_once(world: World) -> None:
    plan = planned(world)
    approved = approve_campaign(world.svc, plan.plan_id, ANN, "looks right")
    assert approved.state == "approved"
    (a,) = approved.approvals
    assert (a.approver, a.comment, a.expired) == (ANN, "looks right", False)
    assert a.expires_at == PINNED + dt.timedelta(hours=24)  # the default approval_ttl
    assert reason_of(lambda: approve_campaign(world.svc, plan.plan_id, ANN)) == ("ALREADY_APPROVED")
    assert len(get_campaign(world.svc, plan.plan_id).approvals) == 1
    ((client, details),) = audited(world.db, "campaign-approve")
    assert client == ANN and details["plan_id"] == plan.plan_id


@pytest.mark.parametrize(
    "world", ['direct_limit = 0\napprovals_required = 2\napproval_ttl = "90m"'], indirect=True
)
def test_an_expired_approval_does_not_count(world: World) -> None:
    plan = planned(world)
    approve_campaign(world.svc, plan.plan_id, ANN)
    world.at(PINNED + dt.timedelta(minutes=91))  # ANN's approval has expired
    view = approve_campaign(world.svc, plan.plan_id, BOB)
    assert view.state == "planned"
    assert [(a.approver, a.expired) for a in view.approvals] == [(ANN, True), (BOB, False)]
    assert reason_of(lambda: apply_campaign(world.svc, plan.plan_id, BOB)) == "NOT_APPROVED"
    # ANN approves again: two unexpired approvals by two identities
    assert approve_campaign(world.svc, plan.plan_id, ANN).state == "approved"
    world.at(PINNED + dt.timedelta(minutes=91 + 91))  # and both of those expire in turn
    assert get_campaign(world.svc, plan.plan_id).state == "planned"


@pytest.mark.parametrize(
    "world",
    ["direct_limit = 0\nlarge_campaign_devices = 3\napprovals_required = 1\n"
     "approvals_required_large = 2"],
    indirect=True,
)  # fmt: skip
def test_large_campaigns_need_more_approvals(world: World) -> None:
    small = planned(world, 2)
    assert small.approvals_required == 1
    large = plan_campaign(
        world.svc,
        CampaignSpec(world.image_id, Product.UPDATE, firmware_version="00000200"),
        [add_fleet(world, 2, 3)],
        REQUESTER,
    )
    assert large.approvals_required == 2
    assert approve_campaign(world.svc, small.plan_id, ANN).state == "approved"
    assert approve_campaign(world.svc, large.plan_id, ANN).state == "planned"
    assert approve_campaign(world.svc, large.plan_id, BOB).state == "approved"


def test_a_rejection_ends_the_plan(world: World) -> None:
    plan = planned(world)
    approve_campaign(world.svc, plan.plan_id, ANN)
    with pytest.raises(InvalidInput, match="reason"):
        reject_campaign(world.svc, plan.plan_id, BOB, "  ")
    view = reject_campaign(world.svc, plan.plan_id, BOB, "wrong image for this region")
    assert (view.state, view.rejected_by, view.rejection_reason) == (
        "rejected",
        BOB,
        "wrong image for this region",
    )
    for call in (
        lambda: approve_campaign(world.svc, plan.plan_id, "CN=carol"),
        lambda: reject_campaign(world.svc, plan.plan_id, "CN=carol", "again"),
        lambda: apply_campaign(world.svc, plan.plan_id, ANN),
    ):
        assert reason_of(call) == "PLAN_REJECTED"
    ((client, details),) = audited(world.db, "campaign-reject")
    assert (client, details["reason"]) == (BOB, "wrong image for this region")


@pytest.mark.parametrize("world", ["direct_limit = 0\ndev_self_approval = true"], indirect=True)
def test_development_mode_may_let_the_requester_approve_with_a_warning(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    assert world.svc.config.dev_mode
    plan = planned(world)
    with caplog.at_level(logging.WARNING, logger="signer.service.campaigns"):
        view = approve_campaign(world.svc, plan.plan_id, REQUESTER)
    assert view.state == "approved"
    warnings = [r for r in caplog.records if "approves its own campaign" in r.getMessage()]
    assert len(warnings) == 1 and warnings[0].levelno == logging.WARNING


def test_self_approval_outside_development_mode_is_a_configuration_error(
    hsm: Hsm, tmp_path: Path
) -> None:
    config = write_config(
        tmp_path / "signer.toml",
        hsm,
        f"sqlite:///{tmp_path / 'db'}",
        dev_mode=False,
        campaigns="dev_self_approval = true",
    )
    with pytest.raises(ConfigurationError, match=r"campaigns\.dev_self_approval"):
        load_config(config)
    env = {"SIGNER_APPROVAL_TTL": "2d", "SIGNER_DEV_SELF_APPROVAL": "false"}
    loaded = load_config(config, env)
    assert loaded.campaigns.approval_ttl == dt.timedelta(days=2)
    assert not loaded.campaigns.dev_self_approval
    with pytest.raises(ConfigurationError, match=r"campaigns\.approval_ttl .* duration"):
        load_config(config, {"SIGNER_APPROVAL_TTL": "soon"})
