"""Campaigns over gRPC (docs/campaigns.md): the five RPCs' requests checked and decoded,
the use cases called with the caller's identity, their views encoded.

The servicer (`signer.api.servicer`) delegates here; what may be refused is refused in
`signer.service.campaigns` and mapped, as every error is, in `signer.api.outcome`. The
requester and the approvers are the caller's principal (`signer.api.auth.principal_of`: the
role policy's client entries its certificate matches; in development mode the
``signer-dev-identity`` name): a client never names the requester or the approver itself.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator

from signer.api import convert
from signer.api._proto.signer.v1 import signer_pb2 as pb
from signer.api.auth import principal_of
from signer.caller import current
from signer.errors import InvalidInput
from signer.service.campaigns import (
    AlreadyIssued,
    Approval,
    CampaignSpec,
    DeviceRecord,
    Issued,
    PlanView,
    Product,
    Refused,
    ResultItem,
    Withheld,
    apply_campaign,
    approve_campaign,
    campaign_devices,
    get_campaign,
    plan_campaign,
    reject_campaign,
)
from signer.service.services import Services

_PRODUCTS = {
    pb.CAMPAIGN_PRODUCT_UPDATE: Product.UPDATE,
    pb.CAMPAIGN_PRODUCT_ACTIVATION: Product.ACTIVATION,
    pb.CAMPAIGN_PRODUCT_UPDATE_AND_ACTIVATION: Product.BOTH,
}
_PRODUCT_PB = {v: k for k, v in _PRODUCTS.items()}
SERVICES = ("11.1", "11.4")
_PLAN_ID = re.compile(r"[0-9a-f]{64}")
#: devices per GetCampaign message
DEVICE_BATCH = 1000


# ---- requests -> use-case inputs ----


def spec_from_pb(msg: pb.CampaignSpec) -> CampaignSpec:
    """The campaign spec, each fault naming its field (``spec.<field>``)."""
    if not msg.image_id:
        raise InvalidInput("give the image ID of a verified image", field="spec.image_id")
    product = _PRODUCTS.get(msg.product)
    if product is None:
        raise InvalidInput(
            "give the product: update, activation or update_and_activation", field="spec.product"
        )
    service = msg.service_reference or "11.1"
    if service not in SERVICES:
        raise InvalidInput(
            f"service_reference {msg.service_reference!r}: give 11.1 or 11.4",
            field="spec.service_reference",
        )
    when = None
    if msg.HasField("execution_time"):
        try:
            when = msg.execution_time.ToDatetime(tzinfo=dt.UTC)
        except (ValueError, OverflowError):
            raise InvalidInput(
                "the execution time is out of range", field="spec.execution_time"
            ) from None
    return CampaignSpec(
        image_id=msg.image_id,
        product=product,
        service_reference=service,
        firmware_version=msg.firmware_version,
        force_replace=msg.force_replace if msg.HasField("force_replace") else None,
        execution_time=when,
    )


def plan_id_of(plan_id: str) -> str:
    """A plan ID as the client sent it, checked: 64 hex digits (upper case accepted)."""
    if not plan_id:
        raise InvalidInput("give the plan ID PlanCampaign returned", field="plan_id")
    if not _PLAN_ID.fullmatch(plan_id.lower()):
        raise InvalidInput(
            "a plan ID is 64 hex digits (the SHA-256 PlanCampaign returned)", field="plan_id"
        )
    return plan_id.lower()


def _device_batches(requests: Iterator[pb.PlanCampaignRequest]) -> Iterator[list[str]]:
    for message in requests:
        if message.WhichOneof("part") != "devices":
            raise InvalidInput(
                "after the first message (the spec), send only device batches", field="devices"
            )
        yield list(message.devices.device_ids)


# ---- use-case views -> messages ----


def spec_to_pb(spec: CampaignSpec) -> pb.CampaignSpec:
    msg = pb.CampaignSpec(
        image_id=spec.image_id,
        product=_PRODUCT_PB[spec.product],
        service_reference=spec.service_reference,
        firmware_version=spec.firmware_version,
    )
    if spec.force_replace is not None:
        msg.force_replace = spec.force_replace
    if spec.execution_time is not None:
        msg.execution_time.FromDatetime(spec.execution_time)
    return msg


def _state(name: str) -> str:
    """A use case's state ("approved") as the enum value's name (CAMPAIGN_STATE_APPROVED)."""
    full = f"CAMPAIGN_STATE_{name.upper()}"
    pb.CampaignState.Value(full)  # a state the proto does not have is a bug: ValueError
    return full


def _approval_to_pb(a: Approval) -> pb.CampaignApproval:
    msg = pb.CampaignApproval(approver=a.approver, expired=a.expired, comment=a.comment)
    msg.approved_at.FromDatetime(a.approved_at)
    msg.expires_at.FromDatetime(a.expires_at)
    return msg


def _counts(counts: tuple[tuple[str, int], ...]) -> list[pb.CampaignCount]:
    return [pb.CampaignCount(name=name, devices=n) for name, n in counts]


def plan_to_pb(p: PlanView) -> pb.CampaignPlan:
    msg = pb.CampaignPlan(
        plan_id=p.plan_id,
        spec=spec_to_pb(p.spec),
        requester=p.requester,
        state=_state(p.state),
        devices=p.devices,
        eligible=p.eligible,
        refused=p.refused,
        by_key=_counts(p.by_key),
        by_model=_counts(p.by_model),
        by_reason=_counts(p.by_reason),
        approvals_required=p.approvals_required,
        approvals=[_approval_to_pb(a) for a in p.approvals],
        rejected_by=p.rejected_by,
        rejection_reason=p.rejection_reason,
        issued=p.issued,
        withheld=p.withheld,
        stale_reason=p.stale_reason,
        # the final plan this one directly re-plans: the last of those it supersedes
        supersedes=p.supersedes[-1] if p.supersedes else "",
    )
    msg.planned_at.FromDatetime(p.planned_at)
    return msg


def device_to_pb(d: DeviceRecord) -> pb.CampaignDevice:
    msg = pb.CampaignDevice(
        device_id=str(d.device_id),
        key_label=d.key_label,
        key_ski=d.key_ski or b"",
        current_entry_id=d.current_entry_id,
        model=d.model,
        pathway=d.pathway,
        outcome=d.outcome,
        withheld_check=d.withheld_check,
        withheld_detail=d.withheld_detail,
        request_ids=[str(r) for r in d.request_ids],
    )
    if d.refusal is not None:
        msg.refused.CopyFrom(convert.refusal_to_pb(d.refusal))
    return msg


def add_results(item: ResultItem, message: pb.CampaignResults) -> None:
    """``item`` as results of ``message`` (added in place: an image is copied into the
    message once). An `Issued` key group carries its upgrade image and the update request
    built on it: two results, the image first, as ``CampaignArtifact`` is one of them."""
    if isinstance(item, Issued):
        if item.upgrade_image is not None:
            i = item.upgrade_image
            image = message.results.add().issued.upgrade_image
            image.upgrade_image = i.upgrade_image
            image.key_label = i.group.key.label
            image.key_ski = i.group.key.ski or b""
            image.certificate_serial = str(i.group.certificate.serial)
            image.device_ids.extend(str(d) for d in i.group.devices)
        if item.update_request is not None:
            r = item.update_request
            request = message.results.add().issued.update_request
            request.duis_request = r.document
            request.request_id = str(r.request_id)
            request.device_ids.extend(str(d) for d in r.devices)
            request.refused.extend(convert.refusals_to_pb(r.refused))
        if item.activation is not None:  # set in place: no message built and copied
            convert.activation_into(item.activation, message.results.add().issued.activation)
        return
    out = message.results.add()
    if isinstance(item, Withheld):
        out.withheld.CopyFrom(
            pb.WithheldArtifact(
                kind=item.kind,
                device_ids=[str(d) for d in item.device_ids],
                check=item.check,
                detail=item.detail,
            )
        )
        return
    if isinstance(item, Refused):
        out.refused.CopyFrom(convert.refusal_to_pb(item.refusal))
        return
    if isinstance(item, AlreadyIssued):
        out.already_issued.CopyFrom(
            pb.AlreadyIssued(
                kind=item.kind,
                device_ids=[str(d) for d in item.device_ids],
                request_id=str(item.request_id),
            )
        )
        return
    raise TypeError(f"not a campaign result: {type(item).__name__}")


# ---- the RPCs ----


def plan(svc: Services, requests: Iterator[pb.PlanCampaignRequest]) -> pb.CampaignPlan:
    first = next(requests, None)
    if first is None or first.WhichOneof("part") != "spec":
        raise InvalidInput(
            "the first message must be the campaign spec, then the device batches", field="spec"
        )
    spec = spec_from_pb(first.spec)
    view = plan_campaign(svc, spec, _device_batches(requests), principal_of(current()))
    return plan_to_pb(view)


def show(svc: Services, request: pb.GetCampaignRequest) -> Iterator[pb.CampaignPlanPart]:
    plan_id = plan_id_of(request.plan_id)
    yield pb.CampaignPlanPart(plan=plan_to_pb(get_campaign(svc, plan_id)))
    if request.include_devices:
        for batch in campaign_devices(svc, plan_id, DEVICE_BATCH):
            part = pb.CampaignPlanPart()
            part.devices.devices.extend(device_to_pb(d) for d in batch)
            yield part


def approve(svc: Services, request: pb.ApproveCampaignRequest) -> pb.CampaignPlan:
    plan_id = plan_id_of(request.plan_id)
    return plan_to_pb(approve_campaign(svc, plan_id, principal_of(current()), request.comment))


def reject(svc: Services, request: pb.RejectCampaignRequest) -> pb.CampaignPlan:
    plan_id = plan_id_of(request.plan_id)
    if not request.reason.strip():
        raise InvalidInput("a rejection needs its reason, for the record", field="reason")
    return plan_to_pb(reject_campaign(svc, plan_id, principal_of(current()), request.reason))


def apply(svc: Services, request: pb.ApplyCampaignRequest) -> Iterator[pb.CampaignResults]:
    plan_id = plan_id_of(request.plan_id)
    for batch in apply_campaign(svc, plan_id, current().identity):
        message = pb.CampaignResults()
        for item in batch:
            add_results(item, message)
        yield message
    yield pb.CampaignResults(plan=plan_to_pb(get_campaign(svc, plan_id)))
