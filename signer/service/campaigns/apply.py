"""Apply: an approved plan's artifacts, exactly as planned, each through the pre-flight.

Before anything is signed, one read of the trust and registry generations tells whether
anything the plan could depend on changed; if so the plan is recomputed (a pass that signs
nothing) and a different ID makes it stale. Then batch by batch: the artifacts are made by
the direct calls' own building blocks, checked by `signer.preflight` (code written apart from
theirs), and each device's outcome is committed with the batch's audit records. A failed
artifact is withheld, never returned, and its signatures' records read ``failed`` naming
the check (marked before that commit, in it); a second apply skips what the first finished.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Generator, Iterable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from cryptography import x509
from sqlalchemy.orm import Session

from signer.caller import current
from signer.errors import (
    CampaignRefused,
    ConfigurationError,
    InvalidInput,
    NotFound,
    PolicyRefused,
    excerpt,
)
from signer.gbcs.eui import Eui64
from signer.gbcs.ota import parse_ota_header
from signer.registry import activations, audit, trust
from signer.registry import campaigns as store
from signer.registry.auditchain import AuditEntry, time_text
from signer.registry.campaigns import DeviceRow, PlanRow
from signer.registry.devices import DeviceFacts, device_facts
from signer.service import signing
from signer.service.activation import BuiltActivation, builder, issue_batch
from signer.service.caches import VerifiedImage
from signer.service.campaigns import content
from signer.service.campaigns.approvals import (
    counting,
    load_plan,
    refuse_closed,
)
from signer.service.campaigns.plan import (
    activation_spec,
    check_campaign_spec,
    refusal_of,
    survey,
    uses_keys,
)
from signer.service.campaigns.views import (
    APPLIED,
    APPLYING,
    APPROVED,
    CAMPAIGN_APPLY,
    PLANNED,
    REJECTED,
    STALE,
    AlreadyIssued,
    CampaignSpec,
    Issued,
    Product,
    Refused,
    ResultItem,
    Withheld,
)
from signer.service.duis import DuisResult, sign_update_request, xml_signing_key
from signer.service.keys.selection import KeyGroup
from signer.service.pathways import screen, select_eligible
from signer.service.refusal import DeviceRefusal
from signer.service.resign import SignedUpgradeImage, sign_for_group
from signer.service.services import Services

log = logging.getLogger(__name__)

#: plan devices read (and, for activations, signed) per batch
BATCH = 1000
#: an SR 11.1 / 11.4 request carries at most this many of a batch's devices
UPDATE_BATCH = 10_000
PLAN_MISMATCH = "plan_mismatch"
UPDATE = "update"
ACTIVATION = "activation"


def apply_campaign(svc: Services, plan_id: str, caller: str) -> Generator[list[ResultItem]]:
    """Check the plan may be applied and has not drifted (raising before anything is
    signed), then the batches of results, each committed before it is yielded (a caller
    that stops, or ``close``s the generator, leaves the plan applying: a second apply
    resumes it). After the iterator ends, `get_campaign` gives the final counts."""
    preflight = _preflight()
    row = load_plan(svc, plan_id)
    refuse_closed_for_apply(svc, row)
    spec = content.spec_from_json(row.spec_json)
    image = check_campaign_spec(svc, spec)
    resuming = row.state == APPLYING
    lease = Lease(svc, row.plan_id, caller)
    lease.take()  # the transition to applying: one conditional UPDATE
    try:
        row = _check_drift(svc, row, spec, lease)
        lease.renew()  # a rejection during the recompute halts it here
        _mark(svc, row, caller, APPLYING, {"phase": "resume" if resuming else "start"}, None)
    except BaseException:
        lease.release()
        raise
    return _Run(svc, row, spec, image, caller, preflight, lease).batches()


#: how long an apply holds its plan without renewing: renewed before every batch, so a
#: crashed apply's plan can be taken over once this passed
LEASE = dt.timedelta(minutes=10)


class Lease:
    """One apply at a time per plan: its owner holds ``apply_owner`` until
    ``apply_lease_until`` (migration 0009), renewing before every batch; a rejection of the
    applying plan (a halt) or a takeover of an expired lease makes the renewal fail."""

    def __init__(self, svc: Services, plan_id: str, caller: str) -> None:
        self.svc, self.plan_id = svc, plan_id
        self.since = svc.clock()
        self.owner = f"{uuid.uuid4().hex[:16]} {time_text(self.since)} {caller}"

    def take(self) -> None:
        """Take the plan, re-checking its approvals at this moment (also on a resume)."""
        svc = self.svc
        row = load_plan(svc, self.plan_id)
        require_approvals(svc, row)
        now = svc.clock()
        if not store.take_lease(svc.db, self.plan_id, self.owner, now, now + LEASE):
            raise self.refusal(now)

    def renew(self) -> None:
        now = self.svc.clock()
        if not store.renew_lease(self.svc.db, self.plan_id, self.owner, now + LEASE):
            raise self.refusal(now)

    def hold(self, s: Session) -> None:
        """In a batch's transaction: its outcomes commit only while the lease is held."""
        now = self.svc.clock()
        if not store.hold_lease(s, self.plan_id, self.owner, now + LEASE):
            raise self.refusal(now)

    def release(self, **values: Any) -> None:
        try:
            store.release_lease(self.svc.db, self.plan_id, self.owner, **values)
        except Exception as exc:  # never hide the error that brought us here
            log.error("campaign %s: could not release the apply lease: %s", self.plan_id, exc)

    def refusal(self, now: dt.datetime) -> CampaignRefused:
        """Why the lease could not be taken or kept, from the plan as it is now."""
        row = store.get_plan(self.svc.db, self.plan_id)
        if row is None:
            return CampaignRefused(f"campaign {self.plan_id} is gone", "PLAN_STALE")
        if row.state == REJECTED:
            counts = store.outcome_counts(self.svc.db, self.plan_id)
            issued = counts.get(store.ISSUED, 0)
            return CampaignRefused(
                f"campaign {row.plan_id} was rejected by {row.rejected_by} "
                f"({excerpt(row.rejection_reason or '', 200)}): apply halted; the {issued} "
                "device(s) already issued stay issued",
                "PLAN_REJECTED",
            )
        if row.state == APPLIED:
            return CampaignRefused(f"campaign {row.plan_id} is applied already", "PLAN_APPLIED")
        if row.state == STALE:
            return CampaignRefused(
                f"campaign {row.plan_id} is stale ({row.stale_reason}); plan it again",
                "PLAN_STALE",
            )
        if row.state == APPLYING and row.apply_owner and row.apply_owner != self.owner:
            _, since, who = [*row.apply_owner.split(" ", 2), "", ""][:3]
            until = time_text(row.apply_lease_until) if row.apply_lease_until else "?"
            return CampaignRefused(
                f"campaign {row.plan_id} is being applied by {who} since {since} (its lease "
                f"runs until {until}): one apply at a time; wait for it to end, or for its "
                "lease to expire if it stopped",
                "PLAN_BUSY",
            )
        if row.state == APPLYING:
            return CampaignRefused(
                f"campaign {row.plan_id}: this apply's lease expired; apply it again to resume",
                "PLAN_BUSY",
            )
        return CampaignRefused(
            f"campaign {row.plan_id} is {row.state}, not approved: `signer campaign approve` it",
            "NOT_APPROVED",
        )


def refuse_closed_for_apply(svc: Services, row: PlanRow) -> None:
    if row.state == APPLIED:
        raise CampaignRefused(f"campaign {row.plan_id} is applied already", "PLAN_APPLIED")
    if row.state != APPLYING:
        refuse_closed(row, "apply")
    require_approvals(svc, row)


def require_approvals(svc: Services, row: PlanRow) -> None:
    """Enough unexpired approvals now, for a start and for a resume alike."""
    decisions = store.decisions(svc.db, row.plan_id)
    now = svc.clock()
    have = len(counting(svc, row, decisions, now))
    if row.state not in (APPROVED, APPLYING, PLANNED) or have < row.approvals_required:
        raise CampaignRefused(
            f"campaign {row.plan_id} has {have} of the {row.approvals_required} unexpired "
            "approval(s) it needs (not by its requester): `signer campaign approve` it first",
            "NOT_APPROVED",
        )


def _preflight() -> Any:
    try:
        import signer.preflight as preflight
    except ImportError:  # fail closed: nothing leaves unchecked
        raise ConfigurationError(
            "the pre-flight checks (signer.preflight) are missing: a campaign cannot be applied"
        ) from None
    return preflight


def _stored_ids(svc: Services, plan_id: str) -> Iterable[list[str]]:
    after = 0
    while True:
        rows = store.devices(svc.db, plan_id, after, 10_000)
        if not rows:
            return
        after = rows[-1].seq
        yield [r.device_id for r in rows]


def _check_drift(svc: Services, row: PlanRow, spec: CampaignSpec, lease: Lease) -> PlanRow:
    """The plan as stored if nothing it depends on changed (or only unrelated things);
    else it is marked stale and apply refused."""
    generations = trust.current(svc.db), trust.registry_generation(svc.db)
    if generations == (row.trust_generation, row.registry_generation):
        return row
    import json

    stored = json.loads(row.counts_json or "{}")
    planned = stored.get("parts", {})
    try:
        redo = survey(
            svc,
            spec,
            row.requester,
            _stored_ids(svc, row.plan_id),
            supersedes=stored.get("supersedes", ()),
        )
    except (PolicyRefused, NotFound) as exc:
        reason = f"{content.PART_NAMES['image']} changed: {exc}"
    else:
        if redo.plan_id == row.plan_id:
            with svc.db.session() as s:  # an unrelated change: next time, no recompute
                store.update_plan(
                    s,
                    row.plan_id,
                    trust_generation=generations[0],
                    registry_generation=generations[1],
                )
            return row
        reason = f"{content.changed_part(planned, redo.parts)} changed since it was planned"
    _mark(svc, row, current().identity, STALE, {"stale_reason": reason}, lease,
          stale_reason=reason)  # fmt: skip
    raise CampaignRefused(
        f"campaign {row.plan_id} is stale: {reason}; plan it again (`signer campaign plan`) "
        "and have the new plan approved",
        "PLAN_STALE",
    )


def _mark(
    svc: Services,
    row: PlanRow,
    who: str,
    state: str,
    details: dict[str, Any],
    lease: Lease | None,
    **values: Any,
) -> None:
    """An apply audit record; with ``lease``, the plan set to ``state`` (and ``values``)
    releasing it, only while it is still held (a rejection meanwhile stands)."""
    caller = current()
    entry = AuditEntry(
        at=svc.clock(),
        client=who,
        call_id=caller.request_id,
        method=caller.method,
        operation=CAMPAIGN_APPLY,
        outcome="refused" if state == STALE else "ok",
        device_count=row.device_count,
        details={"plan_id": row.plan_id, "state": state, **details},
    )

    def write(s: Session) -> None:
        if lease is not None and not store.finish_lease(
            s, row.plan_id, lease.owner, state=state, **values
        ):
            raise lease.refusal(svc.clock())

    audit.record(svc.db, [entry], [write])


@dataclass
class _Batch:
    """One artifact's worth of a batch: its devices' rows and results."""

    items: list[ResultItem]
    outcomes: list[tuple[int, str, str | None, str | None, str | None]]
    withheld_counters: list[int]


class _Run:
    def __init__(
        self,
        svc: Services,
        row: PlanRow,
        spec: CampaignSpec,
        image: VerifiedImage,
        caller: str,
        preflight: Any,
        lease: Lease,
    ) -> None:
        self.svc, self.row, self.spec, self.image = svc, row, spec, image
        self.caller, self.pf, self.lease = caller, preflight, lease
        # the Force Replace byte the plan resolved and its content names: never re-derived
        # from the library image, whose byte a re-delivery may have rewritten
        self.force = bool(row.force_replace)
        self.header = parse_ota_header(image.record.header_bytes)
        self.with_keys = uses_keys(spec)
        self.update = spec.product in (Product.UPDATE, Product.BOTH)
        self.activate = spec.product in (Product.ACTIVATION, Product.BOTH)
        self.read = UPDATE_BATCH if spec.product is Product.UPDATE else BATCH
        schema = svc.schema
        # the pre-flight validates through the schema's lock-protected entry point
        self.schema = schema.first_error if schema is not None else None

    def batches(self) -> Generator[list[ResultItem]]:
        released: dict[str, Any] = {}
        try:
            after = 0
            while True:
                rows = store.devices(self.svc.db, self.row.plan_id, after, self.read)
                if not rows:
                    break
                after = rows[-1].seq
                try:
                    self.lease.renew()  # a rejection (halt) or a takeover stops us here
                    batch = self._batch(rows)  # or the batch's own lease.hold does
                except CampaignRefused as exc:
                    if exc.reason == "PLAN_REJECTED":
                        released.update(self._halted())
                    raise
                yield batch
            counts = store.outcome_counts(self.svc.db, self.row.plan_id)
            issued, withheld = counts.get(store.ISSUED, 0), counts.get(store.WITHHELD, 0)
            _mark(
                self.svc,
                self.row,
                self.caller,
                APPLIED,
                {"phase": "end", "issued": issued, "withheld": withheld,
                 "refused": counts.get(store.REFUSED, 0)},
                self.lease,
                issued=issued,
                withheld=withheld,
                applied_at=self.svc.clock(),
            )  # fmt: skip
        finally:
            self.lease.release(**released)

    def _halted(self) -> dict[str, Any]:
        """A rejected applying plan: what was issued stays issued, and is counted."""
        counts = store.outcome_counts(self.svc.db, self.row.plan_id)
        issued, withheld = counts.get(store.ISSUED, 0), counts.get(store.WITHHELD, 0)
        log.warning(
            "campaign %s rejected while applying: halted after %d issued, %d withheld",
            self.row.plan_id,
            issued,
            withheld,
        )
        return {"issued": issued, "withheld": withheld}

    def _batch(self, rows: list[DeviceRow]) -> list[ResultItem]:
        items: list[ResultItem] = []
        done: dict[tuple[str, str], list[str]] = {}
        withheld: dict[tuple[str, str, str, str], list[str]] = {}
        pending: list[DeviceRow] = []
        for r in rows:
            if r.outcome == store.REFUSED and r.refusal_json:
                items.append(Refused(refusal_of(r.device_id, r.refusal_json)))
            elif r.outcome == store.REFUSED:  # refused by an earlier apply (a resume)
                items.append(Refused(_refused_in_apply(r)))
            elif r.outcome == store.WITHHELD:  # by an earlier apply (a resume): still withheld
                self._withheld_again(r, withheld, items)
            elif r.outcome == store.ISSUED:
                kinds = self._kinds()
                for kind, rid in zip(kinds, (r.request_ids or "").split(), strict=False):
                    done.setdefault((kind, rid), []).append(r.device_id)
            elif r.outcome == store.PENDING:
                pending.append(r)
        items.extend(AlreadyIssued(k, tuple(d), rid) for (k, rid), d in done.items())
        items.extend(
            Withheld(kind, tuple(d), check, detail)
            for (kind, rid, check, detail), d in withheld.items()
            if (kind, rid) not in done  # an update issued for others of its request
        )
        if pending:
            with self.svc.trust.pinned(self.svc.db):
                items.extend(self._issue(pending))
        return items

    def _withheld_again(
        self,
        r: DeviceRow,
        withheld: dict[tuple[str, str, str, str], list[str]],
        items: list[ResultItem],
    ) -> None:
        """A device an earlier apply withheld, reported withheld again with the check that
        failed and why: by update request (its devices share it) and, for activations,
        device by device (an update's failure withheld the activations it would run)."""
        why = (r.withheld_check or "", r.withheld_detail or "")
        rids = (r.request_ids or "").split()
        if self.update:
            withheld.setdefault((UPDATE, rids[0] if rids else "", *why), []).append(r.device_id)
        if self.activate:
            items.append(Withheld(ACTIVATION, (r.device_id,), *why))

    def _kinds(self) -> tuple[str, ...]:
        if self.spec.product is Product.BOTH:
            return (UPDATE, ACTIVATION)
        return (UPDATE,) if self.update else (ACTIVATION,)

    def _issue(self, rows: list[DeviceRow]) -> list[ResultItem]:
        """The artifacts of a batch's pending devices, grouped by the key each was planned
        with; a device whose selection now differs from the plan's is refused."""
        svc = self.svc
        euis = {r.seq: Eui64.parse(r.device_id) for r in rows}
        planned = {euis[r.seq]: r for r in rows}
        devices = list(planned)
        refusals: dict[Eui64 | str, DeviceRefusal] = {}
        groups: dict[bytes | None, tuple[KeyGroup | None, list[Eui64]]] = {}
        if self.with_keys:
            selection = select_eligible(svc, self.image, devices)
            refusals.update((r.device, r) for r in selection.refused)
            for g in selection.groups:
                for d in g.devices:
                    ski = g.key.ski.hex() if g.key.ski else None
                    if ski != planned[d].key_ski:
                        refusals[d] = DeviceRefusal(
                            d,
                            PLAN_MISMATCH,
                            f"the device now trusts key {g.key.label!r}, the plan had "
                            f"{planned[d].key_label!r}",
                        )
                        continue
                    groups.setdefault(g.key.ski, (g, []))[1].append(d)
        else:
            screening = screen(svc, self.image, devices)
            refusals.update((r.device, r) for r in screening.refused)
            groups[None] = (None, list(screening.accepted))
        items: list[ResultItem] = []
        refused_outcomes = []
        for d in devices:
            refusal = refusals.get(d)
            if refusal is not None:
                items.append(Refused(refusal))
                refused_outcomes.append(
                    (planned[d].seq, store.REFUSED, refusal.reason, refusal.detail, None)
                )
        if refused_outcomes:
            with svc.db.session() as s:
                store.record_outcomes(s, self.row.plan_id, refused_outcomes)
        # the registry facts serve the update's image checks only: an SR 11.3-only
        # campaign does not read them
        facts = device_facts(svc.db, devices) if self.update else {}
        for group, members in groups.values():
            for i in range(0, len(members), UPDATE_BATCH if self.update else BATCH):
                chunk = members[i : i + (UPDATE_BATCH if self.update else BATCH)]
                if chunk:
                    items.extend(self._artifacts(group, chunk, planned, facts))
        return items

    def _artifacts(
        self,
        group: KeyGroup | None,
        devices: list[Eui64],
        planned: dict[Eui64, DeviceRow],
        facts: dict[Eui64, DeviceFacts],
    ) -> list[ResultItem]:
        svc, spec, image, pf = self.svc, self.spec, self.image, self.pf
        xml_key, _ = xml_signing_key(svc)
        xml_certificate = xml_key.certificate
        assert xml_certificate is not None
        previous = (
            activations.latest_counters(svc.db, svc.config.supplier_eui, devices)
            if self.activate
            else {}
        )
        names = {d: str(d) for d in devices}  # each device's ID written once
        ids = tuple(names.values())
        now = svc.clock()
        items: list[ResultItem] = []
        outcomes: list[tuple[int, str, str | None, str | None, str | None]] = []
        with signing.batch(svc) as signer:
            update: tuple[SignedUpgradeImage | None, DuisResult] | None = None
            update_failure: tuple[str, str] | None = None
            update_rid = ""
            update_records = act_records = (0, 0)  # where each part's audit records are
            if self.update:
                first = signer.mark()
                signed = None
                if spec.service_reference == "11.1":
                    assert group is not None
                    one = KeyGroup(group.key, group.certificate, tuple(devices))
                    signed = sign_for_group(signer, image, one, self.force)
                    data = signed.upgrade_image
                else:
                    data = image.record.header_bytes + image.manufacturer_image
                document, request_id = sign_update_request(
                    svc,
                    signer,
                    image=image,
                    firmware_image=data,
                    devices=devices,
                    firmware_version=spec.firmware_version,
                    service=spec.service_reference,
                )
                update_rid = str(request_id)
                update_records = (first, signer.mark())
                update_failure = self._check_update(
                    pf, data, document, devices, group, facts, xml_certificate
                )
                update = (signed, DuisResult(document, request_id, tuple(devices), ()))
            built: dict[Eui64, BuiltActivation] = {}
            act_failures: dict[Eui64, tuple[str, str]] = {}
            if self.activate:
                first = signer.mark()
                built = issue_batch(
                    svc,
                    signer,
                    activation_spec(spec),
                    image,
                    devices,
                    builder(image, activation_spec(spec)),
                )
                act_records = (first, signer.mark())
                for d, b in built.items():
                    try:
                        pf.check_activation(
                            b.document,
                            device_id=names[d],
                            manufacturer_image_sha256=image.digest,
                            previous_counter=previous.get(d),
                            xml_certificate=xml_certificate,
                            schema=self.schema,
                            execution_time=spec.execution_time,
                        )
                    except PolicyRefused as exc:
                        act_failures[d] = _failure(exc)
                    if update_failure is not None and d not in act_failures:
                        # the update it would activate is withheld: so is the activation
                        act_failures[d] = update_failure
            _withhold(signer, update_failure, update_records, act_failures, built, act_records)
            withheld_counters = [built[d].request_id.counter for d in act_failures]
            for d in devices:
                sr113 = built.get(d)
                act_rid = str(sr113.request_id) if sr113 is not None else ""
                rids = (
                    f"{update_rid} {act_rid}" if update_rid and act_rid else update_rid or act_rid
                )
                failure = update_failure or act_failures.get(d)
                if failure is None:
                    outcomes.append((planned[d].seq, store.ISSUED, None, None, rids))
                else:
                    outcomes.append((planned[d].seq, store.WITHHELD, *failure, rids))
            # committed with the signatures' audit records: the outcome stands or falls
            # with them, and a withheld SR 11.3 can never lead to a pre-command
            signer.along(
                partial(
                    activations.mark_withheld,
                    originator=svc.config.supplier_eui,
                    counters=withheld_counters,
                    now=now,
                )
            )
            signer.along(
                partial(store.record_outcomes, plan_id=self.row.plan_id, outcomes=outcomes)
            )
            signer.along(self.lease.hold)  # taken over or halted meanwhile: none of it
        if update is not None:
            if update_failure is None:
                items.append(Issued(UPDATE, ids, upgrade_image=update[0], update_request=update[1]))
            else:
                items.append(Withheld(UPDATE, ids, *update_failure))
                log.warning(
                    "campaign %s: SR %s request %s for %d device(s) withheld: %s %s",
                    self.row.plan_id,
                    spec.service_reference,
                    update_rid,
                    len(devices),
                    *update_failure,
                )
        for d, b in built.items():
            if d in act_failures:
                items.append(Withheld(ACTIVATION, (names[d],), *act_failures[d]))
            else:
                items.append(Issued(ACTIVATION, (names[d],), activation=b))
        if act_failures:
            log.warning(
                "campaign %s: %d SR 11.3 request(s) withheld", self.row.plan_id, len(act_failures)
            )
        return items

    def _check_update(
        self,
        pf: Any,
        data: bytes,
        document: bytes,
        devices: Sequence[Eui64],
        group: KeyGroup | None,
        facts: dict[Eui64, DeviceFacts],
        xml_certificate: x509.Certificate,
    ) -> tuple[str, str] | None:
        """The first failed check of an update request and its image, or None. The image
        is checked once per kind of meter (model, hardware version, the SKI its Supplier
        digital-signing cell holds now, as read from the registry for this batch); an
        SR 11.4 image has no tail (no ARP signature) and is checked without one."""
        with_tail = self.spec.service_reference == "11.1"
        try:
            if group is not None or not with_tail:
                cert = group.key.certificate if group is not None and with_tail else None
                assert cert is not None or not with_tail
                seen: set[tuple[int, int | None, int, bytes]] = set()
                trusted = self.svc.trust.current(self.svc.db)
                for d in devices:
                    f = facts.get(d)
                    entry = (
                        trusted.entries.get(f.current_entry_id)
                        if f is not None and f.current_entry_id
                        else None
                    )
                    if entry is None:  # never the header compared with itself: withheld
                        raise pf.PreflightFailed(
                            "image_matches_model",
                            f"device {d}: no CPL entry gives its model, so the image cannot "
                            "be checked against it",
                        )
                    code, image_type = entry.manufacturer_code, entry.image_type
                    hw = f.hardware_version if f and f.hardware_version is not None else 0
                    ski = f.supplier_ski if f is not None and f.supplier_ski else b""
                    kind = (code, image_type, hw, ski)
                    if kind in seen:
                        continue
                    seen.add(kind)
                    pf.check_upgrade_image(
                        data,
                        self.image.digest,
                        pf.MeterFacts(
                            device_id=str(d),
                            manufacturer_code=code,
                            image_type=image_type,
                            hardware_version=hw,
                            supplier_ds_certificate=cert,
                            supplier_ski=ski,
                        ),
                        with_tail=with_tail,
                    )
            pf.check_update_request(
                document,
                upgrade_image=data,
                device_ids=[str(d) for d in devices],
                xml_certificate=xml_certificate,
                schema=self.schema,
                firmware_version=self.spec.firmware_version,
                force_replace=self.force,
            )
        except PolicyRefused as exc:
            return _failure(exc)
        return None


def _withhold(
    signer: signing.SigningBatch,
    update_failure: tuple[str, str] | None,
    update_records: tuple[int, int],
    act_failures: dict[Eui64, tuple[str, str]],
    built: dict[Eui64, BuiltActivation],
    act_records: tuple[int, int],
) -> None:
    """The audit records of the withheld artifacts' signatures made ``failed``, naming the
    check, before the batch commits them: a failed update withholds its ARP signature
    and its request's, a failed SR 11.3 its own (one record per device, by RequestID)."""
    if update_failure is not None:
        signer.withhold(*update_records, update_failure[0])
    by_check: dict[str, set[str]] = {}
    for d, (check, _) in act_failures.items():
        by_check.setdefault(check, set()).add(str(built[d].request_id))
    for check, rids in by_check.items():
        if signer.withhold(*act_records, check, rids) != len(rids):  # fail closed: none leave
            raise AssertionError(
                f"{len(rids)} withheld SR 11.3 request(s) without their own audit records"
            )


def _refused_in_apply(r: DeviceRow) -> DeviceRefusal:
    try:
        device: Eui64 | str = Eui64.parse(r.device_id)
    except InvalidInput:
        device = r.device_id
    return DeviceRefusal(device, r.withheld_check or PLAN_MISMATCH, r.withheld_detail or "")


def _failure(exc: PolicyRefused) -> tuple[str, str]:
    return str(getattr(exc, "check", "preflight")), str(getattr(exc, "detail", exc))


__all__ = ["apply_campaign"]
