"""Plan: what a campaign would do to each device, recorded without signing anything.

The devices stream in batches; each is screened and given its key by the very selection
the direct calls use (`pathways.select_eligible`), its line added to the plan's content as
it goes. The ID is known at the end only: the devices are written under a provisional ID
and adopted by the plan in the transaction of its audit record.
"""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from signer.caller import current
from signer.cpl.model import CplEntry
from signer.errors import InvalidInput, NotFound, Unavailable
from signer.gbcs.eui import Eui64
from signer.registry import audit, library, trust
from signer.registry import campaigns as store
from signer.registry.auditchain import AuditEntry
from signer.registry.campaigns import DeviceRow, PlanRow
from signer.registry.devices import device_facts
from signer.service.activation import ActivationSpec, check_spec
from signer.service.caches import VerifiedImage
from signer.service.campaigns import content
from signer.service.campaigns.views import (
    APPLIED,
    CAMPAIGN_PLAN,
    PLANNED,
    PLANNING,
    REJECTED,
    STALE,
    CampaignSpec,
    PlanView,
    Product,
)
from signer.service.devices import MAX_DEVICES
from signer.service.duis import SERVICES, library_image
from signer.service.images import force_replace_for, verified_image
from signer.service.keys.selection import KeyGroup
from signer.service.pathways import screen, select_eligible, target_entry
from signer.service.refusal import DUPLICATE_DEVICE, INVALID_DEVICE_ID, DeviceRefusal
from signer.service.services import Services

log = logging.getLogger(__name__)

ELIGIBLE = "eligible"
#: a plan in one of these states is never applied again: planning its content again makes
#: a new plan that supersedes it
FINAL = (APPLIED, REJECTED, STALE)


@dataclass
class Survey:
    """A plan's content, counted as the devices go by."""

    hasher: content.PlanHasher = field(default_factory=content.PlanHasher)
    devices: int = 0
    eligible: int = 0
    by_key: Counter[str] = field(default_factory=Counter)
    by_model: Counter[str] = field(default_factory=Counter)
    by_reason: Counter[str] = field(default_factory=Counter)
    plan_id: str = ""
    parts: dict[str, str] = field(default_factory=dict)
    #: the Force Replace byte and tail apply will sign with (resolved now, in the content)
    force_replace: bool | None = None
    with_tail: bool | None = None
    #: the final plans (applied, rejected, stale) of the same content this one supersedes
    supersedes: tuple[str, ...] = ()

    def counts_json(self) -> str:
        return json.dumps(
            {
                "by_key": sorted(self.by_key.items()),
                "by_model": sorted(self.by_model.items()),
                "by_reason": sorted(self.by_reason.items()),
                "parts": self.parts,
                "supersedes": list(self.supersedes),
            },
            sort_keys=True,
        )

    def supersede(self, plan_id: str) -> None:
        """Add ``supersedes <plan_id>`` to the content: a new plan (and ID) for the content
        of a final one, so what it lost can be issued again."""
        self.hasher.supersedes(plan_id)
        self.supersedes = (*self.supersedes, plan_id)
        self.plan_id = self.hasher.plan_id()
        self.parts = self.hasher.parts()


def check_campaign_spec(svc: Services, spec: CampaignSpec) -> VerifiedImage:
    """The spec's image, verified, and everything its product needs of it."""
    if spec.service_reference not in SERVICES:
        raise InvalidInput(
            f"service {spec.service_reference[:20]!r} is not one of {', '.join(SERVICES)}",
            field="service_reference",
        )
    image = verified_image(svc, spec.image_id)
    if spec.product in (Product.UPDATE, Product.BOTH):
        image = library_image(
            svc,
            image.record.image_id,
            with_tail=spec.service_reference == "11.1",
            firmware_version=spec.firmware_version,
        )
    if spec.product in (Product.ACTIVATION, Product.BOTH):
        check_spec(activation_spec(spec), svc.clock())
    return image


def activation_spec(spec: CampaignSpec) -> ActivationSpec:
    return ActivationSpec(image_id=spec.image_id, execution_time=spec.execution_time)


def uses_keys(spec: CampaignSpec) -> bool:
    """SR 11.4 updates carry no ARP signature: only an activation needs the device's key."""
    return spec.service_reference == "11.1" or spec.product is not Product.UPDATE


def survey(
    svc: Services,
    spec: CampaignSpec,
    requester: str,
    batches: Iterable[Sequence[str]],
    write: Callable[[list[DeviceRow]], None] | None = None,
    supersedes: Sequence[str] = (),
) -> Survey:
    """Screen every device as apply would, add its line to the content, hand each batch's
    rows to ``write``; sign nothing. Run in one trust snapshot. ``supersedes``: the final
    plans a stored plan superseded (its content names them)."""
    with svc.trust.pinned(svc.db):
        result = _survey(svc, spec, requester, batches, write)
    for old in supersedes:
        result.supersede(old)
    return result


def _survey(
    svc: Services,
    spec: CampaignSpec,
    requester: str,
    batches: Iterable[Sequence[str]],
    write: Callable[[list[DeviceRow]], None] | None,
) -> Survey:
    image = check_campaign_spec(svc, spec)
    result = Survey()
    if spec.product in (Product.UPDATE, Product.BOTH):
        result.with_tail = image.record.with_tail
        if spec.service_reference == "11.1":
            result.force_replace = force_replace_for(image, spec.force_replace)
    h = result.hasher
    h.header(spec, requester)
    trusted = svc.trust.current(svc.db)
    image_id = image.record.image_id
    _, fingerprint = trusted.verified_by(image_id, lambda: library.verified_by(svc.db, image_id))
    verifier = next(
        (
            c
            for c in trusted.manufacturer_certificates(image.record.manufacturer_code)
            if c.fingerprint == fingerprint
        ),
        None,
    )
    revoked = verifier.revoked_at.isoformat() if verifier and verifier.revoked_at else "-"
    h.image(
        image_id,
        hashlib.sha256(image.record.header_bytes).hexdigest(),
        f"{fingerprint or '-'} revoked:{revoked} force_replace:{_flag(result.force_replace)} "
        f"tail:{_flag(result.with_tail)}",
    )
    target = target_entry(svc, image)
    relevant: set[str] = {target.entry_id} if target is not None else set()
    keys: dict[bytes, KeyGroup] = {}
    seen: set[int] = set()
    seq = 0
    with_keys = uses_keys(spec)
    for batch in batches:
        if len(batch) > MAX_DEVICES:
            raise InvalidInput(
                f"{len(batch)} devices exceed the limit of {MAX_DEVICES} per batch",
                field=f"device_ids (from #{seq})",
            )
        given: list[Eui64 | DeviceRefusal] = []
        for i, text in enumerate(batch):
            try:
                eui = Eui64.parse(text, field=f"device_ids[{seq + i}]")
            except InvalidInput as exc:
                shown = text if len(text) <= 32 else text[:29] + "..."
                given.append(DeviceRefusal(shown, INVALID_DEVICE_ID, str(exc)))
                continue
            number = int.from_bytes(eui.value, "big")
            if number in seen:
                given.append(
                    DeviceRefusal(eui, DUPLICATE_DEVICE, "listed earlier in this campaign")
                )
                continue
            seen.add(number)
            given.append(eui)
        devices = [d for d in given if isinstance(d, Eui64)]
        facts = device_facts(svc.db, devices)
        groups: dict[Eui64, KeyGroup] = {}
        refusals: dict[Eui64 | str, DeviceRefusal] = {}
        if devices and with_keys:
            selection = select_eligible(svc, image, devices)
            for g in selection.groups:
                assert g.key.ski is not None
                keys.setdefault(g.key.ski, g)
                groups.update((d, g) for d in g.devices)
            refusals.update((r.device, r) for r in selection.refused)
        elif devices:
            refusals.update((r.device, r) for r in screen(svc, image, devices).refused)
        rows: list[DeviceRow] = []
        for item in given:
            seq += 1
            refusal = item if isinstance(item, DeviceRefusal) else refusals.get(item)
            known = item if isinstance(item, Eui64) else None
            f = facts.get(known) if known is not None else None
            entry = trusted.entries.get(f.current_entry_id) if f and f.current_entry_id else None
            if f is not None and f.current_entry_id:
                relevant.add(f.current_entry_id)
            model = f"{entry.manufacturer_code:04X}/{entry.model}" if entry is not None else ""
            group = groups.get(known) if known is not None else None
            if refusal is not None:
                relevant.update(refusal.path or ())
                result.by_reason[refusal.reason] += 1
                verdict = f"refused {refusal.reason} {'>'.join(refusal.path or ()) or '-'}"
            else:
                result.eligible += 1
                verdict = f"{ELIGIBLE} {group.key.ski.hex() if group and group.key.ski else '-'}"
                if group is not None:
                    result.by_key[group.key.label] += 1
            if model:
                result.by_model[model] += 1
            cell = f.supplier_ski.hex() if f is not None and f.supplier_ski else "-"
            inventory = "-"
            if f is not None:
                hw = f.hardware_version if f.hardware_version is not None else "-"
                inventory = f"{f.device_type or '-'},{hw},{f.current_entry_id or '-'}"
            device_id = str(item.device) if isinstance(item, DeviceRefusal) else str(item)
            h.device(f"{content.token(device_id)} {cell} {inventory} {verdict}")
            cert = group.key.certificate if group is not None else None
            rows.append(
                DeviceRow(
                    seq=seq,
                    device_id=device_id,
                    key_ski=group.key.ski.hex() if group and group.key.ski else None,
                    key_label=group.key.label if group is not None else None,
                    certificate_serial=str(cert.serial_number) if cert is not None else None,
                    current_entry_id=f.current_entry_id if f is not None else None,
                    model=model or None,
                    pathway=refusal.reason if refusal is not None else ELIGIBLE,
                    refusal_json=refusal_json(refusal) if refusal is not None else None,
                    outcome=store.REFUSED if refusal is not None else store.PENDING,
                )
            )
        result.devices = seq
        if write is not None:
            write(rows)
    for ski in sorted(keys):
        key = keys[ski].key
        state = trusted.key_state(svc.token.token_label, key.key_id)
        h.key(
            key.label,
            ski.hex(),
            key.fingerprint.hex() if key.fingerprint else "-",
            f"{state[0].value if state else 'unknown'}{'' if key.can_sign else ',disabled'}",
        )
    h.cpl(_entries(trusted.entries, relevant))
    result.plan_id = h.plan_id()
    result.parts = h.parts()
    return result


def _flag(value: bool | None) -> str:
    return "-" if value is None else str(int(value))


def _entries(entries: dict[str, CplEntry], relevant: set[str]) -> list[CplEntry]:
    return [entries[e] for e in sorted(relevant) if e in entries]


def refusal_json(r: DeviceRefusal) -> str:
    return json.dumps(
        {"reason": r.reason, "detail": r.detail, "path": list(r.path) if r.path else None,
         "no_path": r.no_path},
        sort_keys=True,
    )  # fmt: skip


def refusal_of(device_id: str, text: str) -> DeviceRefusal:
    v = json.loads(text)
    try:
        device: Eui64 | str = Eui64.parse(device_id)
    except InvalidInput:
        device = device_id
    path = tuple(v["path"]) if v.get("path") else None
    return DeviceRefusal(device, v["reason"], v["detail"], path=path, no_path=bool(v["no_path"]))


def plan_campaign(
    svc: Services, spec: CampaignSpec, batches: Iterable[Sequence[str]], requester: str
) -> PlanView:
    """Survey and store the plan (``campaign-plan`` audit record); the same content gives
    the same plan, and planning it again returns the stored one."""
    from signer.service.campaigns.approvals import audit_client, check_principal, plan_view

    check_principal(requester, "requester")
    now = svc.clock()
    provisional = f"{PLANNING}-{uuid.uuid4().hex}"
    # read before the survey: a change committed while it runs makes apply recompute
    generations = trust.current(svc.db), trust.registry_generation(svc.db)
    with svc.db.session() as s:
        store.insert_plan(
            s,
            PlanRow(
                plan_id=provisional,
                requester=requester,
                planned_at=now,
                spec_json=content.spec_json(spec),
                state=PLANNING,
                counts_json="{}",
                trust_generation=generations[0],
                registry_generation=generations[1],
                device_count=0,
                eligible=0,
                refused=0,
                approvals_required=0,
            ),
        )

    def write(rows: list[DeviceRow]) -> None:
        with svc.db.session() as s:
            store.insert_devices(s, provisional, rows)

    try:
        result = survey(svc, spec, requester, batches, write)
        existing = store.get_plan(svc.db, result.plan_id)
        while existing is not None and existing.state in FINAL:
            # applied, rejected or stale: a new plan of the same content, so what the old
            # one lost (an artifact never received) can be issued again
            result.supersede(existing.plan_id)
            existing = store.get_plan(svc.db, result.plan_id)
        if existing is not None:
            store.delete_plan(svc.db, provisional)
            return plan_view(svc, existing)
        if result.devices == 0:
            raise InvalidInput("a campaign needs at least one device", field="device_ids")
        row = PlanRow(
            plan_id=result.plan_id,
            requester=requester,
            planned_at=now,
            spec_json=content.spec_json(spec),
            state=PLANNED,
            counts_json=result.counts_json(),
            trust_generation=generations[0],
            registry_generation=generations[1],
            device_count=result.devices,
            eligible=result.eligible,
            refused=result.devices - result.eligible,
            approvals_required=svc.config.campaigns.required_for(result.eligible),
            force_replace=result.force_replace,
            with_tail=result.with_tail,
        )

        def adopt(s: Session) -> None:
            store.insert_plan(s, row)
            store.adopt_devices(s, provisional, result.plan_id)

        caller = current()
        entry = AuditEntry(
            at=now,
            client=audit_client(requester),
            call_id=caller.request_id,
            method=caller.method,
            operation=CAMPAIGN_PLAN,
            image_id=spec_image(spec),
            device_count=result.devices,
            details={
                "plan_id": result.plan_id,
                "eligible": result.eligible,
                "refused": result.devices - result.eligible,
                "by_key": dict(result.by_key),
                "by_model": dict(result.by_model),
                "by_reason": dict(result.by_reason),
                "approvals_required": row.approvals_required,
                **({"supersedes": list(result.supersedes)} if result.supersedes else {}),
            },
        )
        try:
            audit.record(svc.db, [entry], [adopt])
        except (Unavailable, IntegrityError):
            # the same plan, stored by an identical call meanwhile: that one is the plan
            raced = store.get_plan(svc.db, result.plan_id)
            if raced is None or raced.state == PLANNING:
                raise
            store.delete_plan(svc.db, provisional)
            return plan_view(svc, raced)
    except BaseException:
        try:
            store.delete_plan(svc.db, provisional)
        except Exception as exc:  # never hide the error that brought us here
            log.error("could not remove provisional plan %s: %s", provisional, exc)
        raise
    stored = store.get_plan(svc.db, result.plan_id)
    if stored is None:  # pragma: no cover - written just above
        raise NotFound(f"campaign {result.plan_id} is not stored")
    return plan_view(svc, stored)


def spec_image(spec: CampaignSpec) -> str:
    return spec.image_id.strip().lower()
