"""Four eyes: who may approve a plan, how many approvals it needs, for how long they count.

The requester never counts (unless development mode allows ``dev_self_approval``, warned at
each use), nor does anyone sharing a role-policy client entry with it; one person counts
once (principals sharing a client entry are taken for one); an approval expires
``approval_ttl`` after it was given; a rejection ends the plan. Every approval and rejection
is an audit record.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Iterator

from sqlalchemy.orm import Session

from signer.caller import SYSTEM, current
from signer.errors import CampaignRefused, InvalidInput, NotFound, excerpt
from signer.registry import audit
from signer.registry import campaigns as store
from signer.registry.auditchain import AuditEntry
from signer.registry.campaigns import ApprovalRow, PlanRow
from signer.service.campaigns import content
from signer.service.campaigns.views import (
    APPLIED,
    APPLYING,
    APPROVED,
    CAMPAIGN_APPROVE,
    CAMPAIGN_REJECT,
    PLANNED,
    PLANNING,
    REJECTED,
    STALE,
    Approval,
    DeviceRecord,
    PlanView,
)
from signer.service.services import Services

log = logging.getLogger(__name__)

APPROVE = "approve"
REJECT = "reject"
_HEX = frozenset("0123456789abcdef")


def load_plan(svc: Services, plan_id: str) -> PlanRow:
    text = plan_id.strip().lower()
    if len(text) != 64 or not _HEX.issuperset(text):
        raise InvalidInput("a plan ID is 64 hex digits (SHA-256 of the plan)", field="plan_id")
    row = store.get_plan(svc.db, text)
    if row is None or row.state == PLANNING:
        raise NotFound(f"campaign {excerpt(plan_id, 64)} is not planned")
    return row


def get_campaign(svc: Services, plan_id: str) -> PlanView:
    return plan_view(svc, load_plan(svc, plan_id))


def entries(principal: str) -> frozenset[str]:
    """The role policy's client entries a principal stands for (`Policy.principal_of`
    joins them with `` + ``); a development identity (``dev:NAME``) or a certificate
    subject is one. Two principals sharing an entry may be one person."""
    return frozenset(e.strip() for e in principal.split(" + ") if e.strip())


def counting(
    svc: Services, row: PlanRow, decisions: list[ApprovalRow], now: dt.datetime
) -> list[str]:
    """The principals whose approvals count now, oldest first: none sharing a client entry
    with the requester (unless ``dev_self_approval``), and one of those sharing an entry
    with each other (the first)."""
    self_ok = svc.config.dev_mode and svc.config.campaigns.dev_self_approval
    requester = entries(row.requester)
    seen: set[str] = set()
    counted: list[str] = []
    for d in decisions:
        if d.decision != APPROVE or d.expires_at is None or d.expires_at <= now:
            continue
        mine = entries(d.identity)
        if (mine & requester and not self_ok) or mine & seen:
            continue
        seen |= mine
        counted.append(d.identity)
    return counted


def state_now(svc: Services, row: PlanRow, decisions: list[ApprovalRow], now: dt.datetime) -> str:
    """The stored state, with "approved" judged now (approvals expire)."""
    if row.state in (PLANNED, APPROVED):
        enough = len(counting(svc, row, decisions, now)) >= row.approvals_required
        return APPROVED if enough else PLANNED
    return row.state


def plan_view(svc: Services, row: PlanRow) -> PlanView:
    now = svc.clock()
    decisions = store.decisions(svc.db, row.plan_id)
    counts = json.loads(row.counts_json or "{}")
    rejection = next((d for d in decisions if d.decision == REJECT), None)
    return PlanView(
        plan_id=row.plan_id,
        spec=content.spec_from_json(row.spec_json),
        requester=row.requester,
        planned_at=row.planned_at,
        state=state_now(svc, row, decisions, now),
        devices=row.device_count,
        eligible=row.eligible,
        refused=row.refused,
        by_key=tuple((str(k), int(n)) for k, n in counts.get("by_key", [])),
        by_model=tuple((str(k), int(n)) for k, n in counts.get("by_model", [])),
        by_reason=tuple((str(k), int(n)) for k, n in counts.get("by_reason", [])),
        approvals_required=row.approvals_required,
        approvals=tuple(
            Approval(
                approver=d.identity,
                approved_at=d.at,
                expires_at=d.expires_at,
                expired=d.expires_at <= now,
                comment=d.comment,
            )
            for d in decisions
            if d.decision == APPROVE and d.expires_at is not None
        ),
        rejected_by=row.rejected_by or (rejection.identity if rejection else ""),
        rejection_reason=row.rejection_reason or (rejection.comment if rejection else ""),
        issued=row.issued,
        withheld=row.withheld,
        stale_reason=row.stale_reason or "",
        supersedes=tuple(str(p) for p in counts.get("supersedes", ())),
    )


def campaign_devices(
    svc: Services, plan_id: str, batch: int = 1000
) -> Iterator[list[DeviceRecord]]:
    """The plan's devices in the order given, ``batch`` at a time."""
    from signer.service.campaigns.plan import refusal_of

    row = load_plan(svc, plan_id)
    after = 0
    while True:
        rows = store.devices(svc.db, row.plan_id, after, max(1, batch))
        if not rows:
            return
        after = rows[-1].seq
        yield [
            DeviceRecord(
                device_id=r.device_id,
                key_label=r.key_label or "",
                key_ski=bytes.fromhex(r.key_ski) if r.key_ski else None,
                current_entry_id=r.current_entry_id or "",
                model=r.model or "",
                pathway=r.pathway,
                refusal=refusal_of(r.device_id, r.refusal_json) if r.refusal_json else None,
                outcome=r.outcome,
                withheld_check=r.withheld_check or "",
                withheld_detail=r.withheld_detail or "",
                request_ids=tuple((r.request_ids or "").split()),
            )
            for r in rows
        ]


def refuse_closed(row: PlanRow, doing: str) -> None:
    """Approving, rejecting (or applying) a plan that can no longer be: say why."""
    if row.state == STALE:
        why = row.stale_reason or "the registry changed"
        raise CampaignRefused(
            f"cannot {doing} campaign {row.plan_id}: it is stale ({why}); plan it again",
            "PLAN_STALE",
        )
    if row.state == REJECTED:
        raise CampaignRefused(
            f"cannot {doing} campaign {row.plan_id}: it was rejected by {row.rejected_by} "
            f"({row.rejection_reason})",
            "PLAN_REJECTED",
        )
    if row.state == APPLIED or (row.state == APPLYING and doing == "apply"):
        raise CampaignRefused(
            f"cannot {doing} campaign {row.plan_id}: it is {row.state}", "PLAN_APPLIED"
        )


#: the longest comment or rejection reason kept (an audit record, not a document store)
MAX_TEXT = 1000


def check_text(value: str, name: str) -> None:
    if len(value) > MAX_TEXT:
        raise InvalidInput(
            f"{len(value)} characters: at most {MAX_TEXT} are kept for the record", field=name
        )


def check_principal(principal: str, role: str) -> None:
    """A campaign records who asked and who approved: never nobody."""
    if not principal.strip():
        raise CampaignRefused(
            f"the {role} has no identity to record (an empty certificate subject and no "
            "client entry naming it): call with a certificate the role policy recognises",
            "NOT_APPROVED",
        )


def audit_client(principal: str) -> str:
    """The audit trail keeps the transport's identity (the certificate subject); a use
    case called with no transport bound records the principal it was given."""
    caller = current()
    return principal if caller is SYSTEM else caller.identity


def approve_campaign(svc: Services, plan_id: str, approver: str, comment: str = "") -> PlanView:
    check_text(comment, "comment")
    check_principal(approver, "approver")
    row = load_plan(svc, plan_id)
    refuse_closed(row, "approve")
    now = svc.clock()
    mine = entries(approver)
    if mine & entries(row.requester):
        if not (svc.config.dev_mode and svc.config.campaigns.dev_self_approval):
            who = (
                approver
                if approver == row.requester
                else f"{approver} (sharing a client entry with {row.requester}, who)"
            )
            raise CampaignRefused(
                f"{who} requested campaign {row.plan_id} and cannot approve it: "
                "another person must",
                "SELF_APPROVAL",
            )
        log.warning(
            "DEVELOPMENT MODE: %s approves its own campaign %s (campaigns.dev_self_approval)",
            approver,
            row.plan_id,
        )
    decisions = store.decisions(svc.db, row.plan_id)
    earlier = next(
        (
            d.identity
            for d in decisions
            if d.decision == APPROVE
            and d.expires_at is not None
            and d.expires_at > now
            and entries(d.identity) & mine
        ),
        None,
    )
    if earlier is not None:
        who = "" if earlier == approver else f" (as {earlier}, a client entry of theirs)"
        raise CampaignRefused(
            f"{approver} has already approved campaign {row.plan_id}{who}; one person counts once",
            "ALREADY_APPROVED",
        )
    expires = now + svc.config.campaigns.approval_ttl
    counted = [*counting(svc, row, decisions, now), approver]
    state = APPROVED if len(counted) >= row.approvals_required else PLANNED

    def write(s: Session) -> None:
        locked = store.lock_plan(s, row.plan_id)
        if locked is None or locked.state not in (PLANNED, APPROVED, APPLYING):
            raise CampaignRefused(f"campaign {row.plan_id} changed meanwhile", "NOT_APPROVED")
        store.add_decision(
            s,
            row.plan_id,
            identity=approver,
            decision=APPROVE,
            at=now,
            expires_at=expires,
            comment=comment,
        )
        store.update_plan(s, row.plan_id, state=APPLYING if locked.state == APPLYING else state)

    _audit(svc, CAMPAIGN_APPROVE, approver, row, now, {"comment": comment,
           "expires_at": expires.isoformat(), "approvals": len(counted)}, write)  # fmt: skip
    return get_campaign(svc, row.plan_id)


def reject_campaign(svc: Services, plan_id: str, approver: str, reason: str) -> PlanView:
    if not reason.strip():
        raise InvalidInput("a rejection needs a reason", field="reason")
    check_text(reason, "reason")
    check_principal(approver, "approver")
    row = load_plan(svc, plan_id)
    refuse_closed(row, "reject")
    now = svc.clock()

    def write(s: Session) -> None:
        # an applying plan too: a halt, its running apply stops before its next batch
        locked = store.lock_plan(s, row.plan_id)
        if locked is None or locked.state not in (PLANNED, APPROVED, APPLYING):
            raise CampaignRefused(f"campaign {row.plan_id} changed meanwhile", "NOT_APPROVED")
        store.add_decision(
            s,
            row.plan_id,
            identity=approver,
            decision=REJECT,
            at=now,
            expires_at=None,
            comment=reason,
        )
        store.update_plan(
            s, row.plan_id, state=REJECTED, rejected_by=approver, rejection_reason=reason
        )

    _audit(svc, CAMPAIGN_REJECT, approver, row, now, {"reason": reason}, write)
    return get_campaign(svc, row.plan_id)


def _audit(
    svc: Services,
    operation: str,
    who: str,
    row: PlanRow,
    now: dt.datetime,
    details: dict[str, object],
    write: object,
) -> None:
    caller = current()
    entry = AuditEntry(
        at=now,
        client=audit_client(who),
        call_id=caller.request_id,
        method=caller.method,
        operation=operation,
        device_count=row.device_count,
        details={"plan_id": row.plan_id, "principal": who, **details},
    )
    audit.record(svc.db, [entry], [write] if callable(write) else [])
