"""Campaign plans, their devices and approvals (migration 0009).

A plan's devices (up to millions) are written and updated at driver speed through
``RawCursor``: one ``executemany`` per batch, values through the columns' own processors.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from signer.registry.auditchain import time_text
from signer.registry.db import Database, RawCursor
from signer.registry.models import DIRECT_PREDICATE, CampaignApproval, CampaignPlan

PENDING = "pending"
ISSUED = "issued"
WITHHELD = "withheld"
REFUSED = "refused"


@dataclass(frozen=True)
class PlanRow:
    plan_id: str
    requester: str
    planned_at: dt.datetime
    spec_json: str
    state: str
    counts_json: str
    trust_generation: int
    registry_generation: int
    device_count: int
    eligible: int
    refused: int
    approvals_required: int
    rejected_by: str | None = None
    rejection_reason: str | None = None
    issued: int = 0
    withheld: int = 0
    stale_reason: str | None = None
    applied_at: dt.datetime | None = None
    force_replace: bool | None = None  # the byte the plan resolved (apply signs with it)
    with_tail: bool | None = None
    apply_owner: str | None = None
    apply_lease_until: dt.datetime | None = None


@dataclass(frozen=True)
class DeviceRow:
    """One ``campaign_devices`` row, in the column order of ``_DEVICE_COLUMNS``."""

    seq: int
    device_id: str
    key_ski: str | None
    key_label: str | None
    certificate_serial: str | None
    current_entry_id: str | None
    model: str | None
    pathway: str
    refusal_json: str | None
    outcome: str
    withheld_check: str | None = None
    withheld_detail: str | None = None
    request_ids: str | None = None


@dataclass(frozen=True)
class ApprovalRow:
    identity: str
    decision: str
    at: dt.datetime
    expires_at: dt.datetime | None
    comment: str


_DEVICE_COLUMNS = (
    "seq, device_id, key_ski, key_label, certificate_serial, current_entry_id, model, "
    "pathway, refusal_json, outcome, withheld_check, withheld_detail, request_ids"
)
# the model's own column names and markers: nothing from outside
_INSERT_DEVICE = (
    f"INSERT INTO campaign_devices (plan_id, {_DEVICE_COLUMNS}) "  # noqa: S608
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_SELECT_DEVICES = (
    f"SELECT {_DEVICE_COLUMNS} FROM campaign_devices WHERE plan_id = ? AND seq > ? "  # noqa: S608
    "ORDER BY seq LIMIT ?"
)
_OUTCOME = (
    "UPDATE campaign_devices SET outcome = ?, withheld_check = ?, withheld_detail = ?, "
    "request_ids = ? WHERE plan_id = ? AND seq = ?"
)


def _aware(value: dt.datetime | None) -> dt.datetime | None:
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    return value


def _utc(value: dt.datetime) -> dt.datetime:
    """An aware time in UTC (a naive one is taken as UTC already)."""
    return value.astimezone(dt.UTC) if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)


def insert_plan(s: Session, plan: PlanRow) -> None:
    s.add(CampaignPlan(**plan.__dict__))
    s.flush()


def insert_devices(s: Session, plan_id: str, rows: Sequence[DeviceRow]) -> None:
    """A batch of a plan's devices in one ``executemany``."""
    if not rows:
        return
    RawCursor.of(s).executemany(
        _INSERT_DEVICE,
        [
            (
                plan_id,
                r.seq,
                r.device_id,
                r.key_ski,
                r.key_label,
                r.certificate_serial,
                r.current_entry_id,
                r.model,
                r.pathway,
                r.refusal_json,
                r.outcome,
                r.withheld_check,
                r.withheld_detail,
                r.request_ids,
            )
            for r in rows
        ],
    )


def adopt_devices(s: Session, from_plan: str, to_plan: str) -> None:
    """Move the devices written under a provisional plan ID to the plan's own ID."""
    cur = RawCursor.of(s)
    cur.execute("UPDATE campaign_devices SET plan_id = ? WHERE plan_id = ?", (to_plan, from_plan))
    cur.execute("DELETE FROM campaign_plans WHERE plan_id = ?", (from_plan,))


def delete_plan(db: Database, plan_id: str) -> None:
    """A provisional plan and its devices (planning failed, or the plan existed already)."""
    with db.cursor() as cur:
        cur.execute("DELETE FROM campaign_devices WHERE plan_id = ?", (plan_id,))
        cur.execute("DELETE FROM campaign_plans WHERE plan_id = ?", (plan_id,))
        cur.commit()


def get_plan(db: Database, plan_id: str) -> PlanRow | None:
    with db.session() as s:
        row = s.get(CampaignPlan, plan_id)
        if row is None:
            return None
        values = {k: getattr(row, k) for k in PlanRow.__dataclass_fields__}
    values["planned_at"] = _aware(values["planned_at"])
    values["applied_at"] = _aware(values["applied_at"])
    values["apply_lease_until"] = _aware(values["apply_lease_until"])
    return PlanRow(**values)


def update_plan(s: Session, plan_id: str, **values: Any) -> None:
    row = s.get(CampaignPlan, plan_id, with_for_update=True)
    if row is None:
        raise LookupError(plan_id)
    for k, v in values.items():
        setattr(row, k, v)


def lock_plan(s: Session, plan_id: str) -> PlanRow | None:
    """The plan, locked for the caller's transaction (approvals and state changes take
    turns)."""
    row = s.get(CampaignPlan, plan_id, with_for_update=True)
    if row is None:
        return None
    values = {k: getattr(row, k) for k in PlanRow.__dataclass_fields__}
    values["planned_at"] = _aware(values["planned_at"])
    values["applied_at"] = _aware(values["applied_at"])
    values["apply_lease_until"] = _aware(values["apply_lease_until"])
    return PlanRow(**values)


def take_lease(
    db: Database, plan_id: str, owner: str, now: dt.datetime, until: dt.datetime
) -> bool:
    """Make the plan applying and ``owner`` its one applier until ``until``, in one
    conditional UPDATE: only while it is approved or applying and nobody holds an unexpired
    lease. False: someone does, or the plan is no longer approved/applying. Times are
    compared in UTC (SQLite keeps them as naive text)."""
    now, until = _utc(now), _utc(until)
    statement = (
        update(CampaignPlan)
        .where(
            CampaignPlan.plan_id == plan_id,
            CampaignPlan.state.in_(("approved", "applying")),
            or_(CampaignPlan.apply_lease_until.is_(None), CampaignPlan.apply_lease_until < now),
        )
        .values(state="applying", apply_owner=owner, apply_lease_until=until)
    )
    with db.session() as s:
        return _rowcount(s.execute(statement)) == 1


def renew_lease(db: Database, plan_id: str, owner: str, until: dt.datetime) -> bool:
    """Extend ``owner``'s lease; False once the plan was rejected (halted) or the lease
    taken over."""
    with db.session() as s:
        return hold_lease(s, plan_id, owner, until)


def hold_lease(s: Session, plan_id: str, owner: str, until: dt.datetime) -> bool:
    """`renew_lease` in the caller's transaction (a batch's: its outcomes commit only while
    the lease is held)."""
    until = _utc(until)
    statement = (
        update(CampaignPlan)
        .where(
            CampaignPlan.plan_id == plan_id,
            CampaignPlan.state == "applying",
            CampaignPlan.apply_owner == owner,
        )
        .values(apply_lease_until=until)
    )
    return _rowcount(s.execute(statement)) == 1


def finish_lease(s: Session, plan_id: str, owner: str, **values: Any) -> bool:
    """In the caller's transaction: release ``owner``'s lease, setting ``values`` only if
    the plan is still applying under it (False: rejected meanwhile, or taken over)."""
    statement = (
        update(CampaignPlan)
        .where(
            CampaignPlan.plan_id == plan_id,
            CampaignPlan.state == "applying",
            CampaignPlan.apply_owner == owner,
        )
        .values(apply_owner=None, apply_lease_until=None, **values)
    )
    return _rowcount(s.execute(statement)) == 1


def release_lease(db: Database, plan_id: str, owner: str, **values: Any) -> None:
    """Give up ``owner``'s lease whatever the plan's state (the end of an apply, a failure,
    a halt), setting ``values`` with it."""
    statement = (
        update(CampaignPlan)
        .where(CampaignPlan.plan_id == plan_id, CampaignPlan.apply_owner == owner)
        .values(apply_owner=None, apply_lease_until=None, **values)
    )
    with db.session() as s:
        s.execute(statement)


def _rowcount(result: Any) -> int:
    return int(result.rowcount)


#: the campaign RPC whose signatures never count against the direct limit; the query
#: repeats the partial index's predicate (models.py, migration 0009) literally, so that
#: both planners can prove it implies the index's
CAMPAIGN_METHOD = "ApplyCampaign"
DIRECT_DEVICES = (
    "SELECT COALESCE(SUM(device_count), 0) FROM audit_records WHERE image_id = ? "  # noqa: S608
    f"AND operation = ? AND at >= ? AND {DIRECT_PREDICATE}"
)


def direct_devices(
    db: Database, image_id: str, operation: str, since: dt.datetime, exclude_call: str = ""
) -> int:
    """The devices of an image's ``operation`` signatures since ``since`` outside campaigns
    (the partial index ``ix_audit_records_image_operation_at`` answers it), less those of
    the call ``exclude_call`` (a stream counting its own devices itself)."""
    with db.cursor() as cur:
        return count_direct(cur, image_id, operation, since, exclude_call)


def direct_devices_in(s: Session, image_id: str, operation: str, since: dt.datetime) -> int:
    """``direct_devices`` inside ``s``'s transaction: what it committed, and what it has
    written so far (an audit append's re-count, holding the head's lock)."""
    return count_direct(RawCursor.of(s), image_id, operation, since)


def count_direct(
    cur: RawCursor, image_id: str, operation: str, since: dt.datetime, exclude_call: str = ""
) -> int:
    """The query of ``direct_devices``, on ``cur``'s connection."""
    sql, params = DIRECT_DEVICES, [image_id, operation, time_text(since)]
    if exclude_call:
        sql, params = sql + " AND call_id <> ?", [*params, exclude_call]
    row = cur.execute(sql, params).fetchone()
    return int(row[0]) if row is not None else 0


def devices(db: Database, plan_id: str, after: int, limit: int) -> list[DeviceRow]:
    """Up to ``limit`` devices of the plan after ``seq``, in order."""
    with db.cursor() as cur:
        rows = cur.execute(_SELECT_DEVICES, (plan_id, after, limit)).fetchall()
    return [DeviceRow(*r) for r in rows]


def record_outcomes(
    s: Session,
    plan_id: str,
    outcomes: Sequence[tuple[int, str, str | None, str | None, str | None]],
) -> None:
    """Per device (seq, outcome, withheld check, withheld detail, request IDs), one
    ``executemany`` in the caller's transaction (the batch's audit records')."""
    if not outcomes:
        return
    RawCursor.of(s).executemany(
        _OUTCOME, [(o, c, d, r, plan_id, seq) for seq, o, c, d, r in outcomes]
    )


def outcome_counts(db: Database, plan_id: str) -> dict[str, int]:
    with db.cursor() as cur:
        rows = cur.execute(
            "SELECT outcome, COUNT(*) FROM campaign_devices WHERE plan_id = ? GROUP BY outcome",
            (plan_id,),
        ).fetchall()
    return {str(o): int(n) for o, n in rows}


def add_decision(
    s: Session,
    plan_id: str,
    *,
    identity: str,
    decision: str,
    at: dt.datetime,
    expires_at: dt.datetime | None,
    comment: str,
) -> None:
    s.add(
        CampaignApproval(
            plan_id=plan_id,
            identity=identity,
            decision=decision,
            at=at,
            expires_at=expires_at,
            comment=comment,
        )
    )


def decisions(db: Database, plan_id: str) -> list[ApprovalRow]:
    """Approvals and rejections of a plan, oldest first."""
    query = (
        select(
            CampaignApproval.identity,
            CampaignApproval.decision,
            CampaignApproval.at,
            CampaignApproval.expires_at,
            CampaignApproval.comment,
        )
        .where(CampaignApproval.plan_id == plan_id)
        .order_by(CampaignApproval.id)
    )
    with db.read() as conn:
        return [
            ApprovalRow(
                r.identity, r.decision, _aware(r.at) or r.at, _aware(r.expires_at), r.comment
            )
            for r in conn.execute(query)
        ]


__all__ = [
    "CAMPAIGN_METHOD",
    "DIRECT_DEVICES",
    "ISSUED",
    "PENDING",
    "REFUSED",
    "WITHHELD",
    "ApprovalRow",
    "DeviceRow",
    "PlanRow",
]
