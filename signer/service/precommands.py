"""CS06 pre-commands: check each against the SR 11.3 request it answers, then sign it.

A pre-command is signed only if it answers an 11.3 request this service issued and recorded
(``signer.service.activation``), matches it field by field, and was not signed before.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import partial

from signer.duis.activation import pre_command_of
from signer.duis.request import RequestId
from signer.errors import (
    InvalidInput,
    NotFound,
    PolicyRefused,
    SignerError,
)
from signer.gbcs.eui import Eui64
from signer.gbcs.precommand import (
    ExpectedActivation,
    PreCommand,
    check_pre_command,
    parse_pre_command,
)
from signer.registry import activations
from signer.registry.activations import IssuedActivation
from signer.registry.counters import MAX_COUNTER
from signer.service import dcc, signing
from signer.service.dcc import Origin
from signer.service.images import verified_image
from signer.service.keys.selection import KeyGroup, select_keys
from signer.service.precommand_signing import Claimed, SignedPreCommand, sign_claimed
from signer.service.refusal import DeviceRefusal
from signer.service.services import Services

#: a parsed pre-command, the RequestID of the DCC response that carried it (if any), and
#: whether the DCC's signature vouched for it
Item = tuple[PreCommand, RequestId | None, Origin]

log = logging.getLogger(__name__)


# Why a pre-command was not signed, as machine-readable codes (metrics, clients). A device
# whose Supplier cell names no usable key is refused with the device refusal's own code
# (unknown_device, ambiguous_supplier_cells, no_supplier_cell, no_key_for_cell, key_not_active,
# certificate_rejected).
PRE_COMMAND_MALFORMED = "pre_command_malformed"  # does not parse as a CS06 pre-command
PRE_COMMAND_NOT_ISSUED = "pre_command_not_issued"  # no SR 11.3 request with its counter
PRE_COMMAND_MISMATCH = "pre_command_mismatch"  # differs from the 11.3 request it answers
PRE_COMMAND_ALREADY_SIGNED = "pre_command_already_signed"  # a replay, or signing right now
PRE_COMMAND_DUPLICATE = "pre_command_duplicate_in_batch"  # the same one earlier in its batch
PRE_COMMAND_UNAUTHENTICATED = "pre_command_unauthenticated"  # raw GBCS without the flag
PRE_COMMAND_IMAGE_NOT_TRUSTED = "pre_command_image_not_trusted"  # e.g. its verifier revoked
PRE_COMMAND_WITHHELD = "pre_command_request_withheld"  # its 11.3 failed a campaign's pre-flight


@dataclass(frozen=True)
class PreCommandRefusal:
    """A pre-command of a batch that was not signed, and every reason why."""

    index: int
    device: Eui64 | None
    request_id: RequestId | None
    reason: str  # for people: every failed check
    code: str  # machine-readable: one of the PRE_COMMAND_* codes or a device refusal's code


class PreCommandRefused(PolicyRefused):
    """``sign_pre_command_for`` refused its pre-command; ``code`` says why, for machines."""

    def __init__(self, refused: PreCommandRefusal) -> None:
        self.refused = refused
        self.code = refused.code
        super().__init__(f"pre-command refused: {refused.reason}")


def sign_pre_command_for(
    svc: Services,
    *,
    pre_command: bytes | None = None,
    dcc_response: bytes | None = None,
    accept_unauthenticated: bool = False,
) -> SignedPreCommand:
    """Check a CS06 pre-command against the 11.3 request it answers, then sign it.

    A ``dcc_response`` must carry a configured DCC certificate's signature; a raw
    ``pre_command`` is taken only with ``accept_unauthenticated`` (and recorded so).
    Nothing is signed unless every check passes; a refusal lists every failed check.
    """
    if (pre_command is None) == (dcc_response is None):
        raise InvalidInput("give exactly one of pre_command or dcc_response", field="source")
    answered = None
    if dcc_response is not None:
        root, origin = dcc.authenticated(dcc_response, svc.dcc_certificates, svc.clock())
        answered, payload = pre_command_of(root)
    else:
        assert pre_command is not None
        origin = dcc.accept_raw(
            accept_unauthenticated,
            field="pre_command",
            flag="accept_unauthenticated",
            what="a pre-command",
        )
        payload = pre_command
    result = sign_pre_commands(svc, [(parse_pre_command(payload), answered, origin)])[0]
    if isinstance(result, PreCommandRefusal):
        raise PreCommandRefused(result)
    return result


def sign_pre_command_batch(
    svc: Services,
    payloads: Sequence[bytes],
    *,
    dcc_responses: Sequence[bytes] = (),
    accept_unauthenticated: bool = False,
) -> list[SignedPreCommand | PreCommandRefusal]:
    """A campaign's pre-commands, a batch at a time: a malformed, unauthenticated or failing
    one is refused on its own, the others are signed. Results follow ``payloads`` (raw GBCS,
    refused as ``pre_command_unauthenticated`` without ``accept_unauthenticated``), then
    ``dcc_responses`` (each signed by a configured DCC certificate, or refused so)."""
    if not payloads and not dcc_responses:
        return []
    parsed: list[Item | PreCommandRefusal] = []
    if payloads:
        try:
            raw: Origin | None = dcc.accept_raw(
                accept_unauthenticated,
                field="pre_commands",
                flag="accept_unauthenticated",
                what=f"a batch of {len(payloads)} pre-command(s)",
            )
            refused_raw = ""
        except InvalidInput as exc:
            raw, refused_raw = None, str(exc)
        for i, payload in enumerate(payloads):
            if raw is None:
                parsed.append(
                    PreCommandRefusal(i, None, None, refused_raw, PRE_COMMAND_UNAUTHENTICATED)
                )
                continue
            try:
                parsed.append((parse_pre_command(payload, field=f"pre_commands[{i}]"), None, raw))
            except InvalidInput as exc:
                parsed.append(
                    PreCommandRefusal(i, None, None, f"malformed: {exc}", PRE_COMMAND_MALFORMED)
                )
    for j, response in enumerate(dcc_responses):
        parsed.append(_from_dcc(svc, len(payloads) + j, response, field=f"dcc_responses[{j}]"))
    valid = [p for p in parsed if not isinstance(p, PreCommandRefusal)]
    signed = iter(sign_pre_commands(svc, valid))
    return [
        p if isinstance(p, PreCommandRefusal) else _reindex(next(signed), i)
        for i, p in enumerate(parsed)
    ]


def _from_dcc(
    svc: Services, index: int, response: bytes, *, field: str
) -> Item | PreCommandRefusal:
    """One DUIS response of a batch: authenticated as the DCC's, then its pre-command."""
    try:
        root, origin = dcc.authenticated(response, svc.dcc_certificates, svc.clock())
    except SignerError as exc:
        return PreCommandRefusal(index, None, None, f"{field}: {exc}", PRE_COMMAND_UNAUTHENTICATED)
    try:
        answered, payload = pre_command_of(root)
        return parse_pre_command(payload, field=field), answered, origin
    except InvalidInput as exc:
        return PreCommandRefusal(index, None, None, f"malformed: {exc}", PRE_COMMAND_MALFORMED)


def sign_pre_commands(
    svc: Services, items: Sequence[Item]
) -> list[SignedPreCommand | PreCommandRefusal]:
    """The one path to a CS06 signature: look up, check, claim, sign, for a whole batch.

    Each item's ``Origin`` says whether the DCC's signature vouched for it; its signature
    records carry it.

    Each pre-command must answer an 11.3 request this service issued (same counter), match
    it field by field, not have been signed before, and be for a device whose Supplier cell
    names a usable key. Claims are taken in one statement, so a pre-command is signed once.
    """
    supplier = svc.config.supplier_eui
    issued = activations.get_many(
        svc.db, supplier, [pc.counter for pc, _, _ in items if pc.counter <= MAX_COUNTER]
    )
    results: list[SignedPreCommand | PreCommandRefusal | None] = [None] * len(items)
    ready: dict[int, tuple[PreCommand, IssuedActivation, RequestId]] = {}
    seen: set[int] = set()
    hashes: dict[str, bytes] = {}  # image ID -> firmware hash, once per image, not per item
    for i, (pc, answered, _) in enumerate(items):
        a = issued.get(pc.counter)
        if a is not None and a.image_id not in hashes:
            hashes[a.image_id] = bytes.fromhex(a.image_id)
        refusal, entry = _check_one(i, pc, answered, a, supplier, hashes)
        if refusal is not None:
            results[i] = refusal
        elif entry is not None and entry[1].counter in seen:
            results[i] = PreCommandRefusal(
                i,
                entry[1].device,
                entry[2],
                "the same pre-command is earlier in this batch",
                PRE_COMMAND_DUPLICATE,
            )
        elif entry is not None:
            seen.add(entry[1].counter)
            ready[i] = entry
    groups = _key_groups(svc, [a.device for _, a, _ in ready.values()])
    for i, (_pc, a, rid) in list(ready.items()):
        group = groups[a.device]
        if isinstance(group, DeviceRefusal):
            results[i] = PreCommandRefusal(
                i,
                a.device,
                rid,
                f"device {group.device}: {group.reason} ({group.detail})",
                group.reason,
            )
            del ready[i]
    untrusted = _untrusted_images(svc, {a.image_id for _, a, _ in ready.values()})
    for i, (_pc, a, rid) in list(ready.items()):
        if a.image_id in untrusted:
            results[i] = PreCommandRefusal(
                i, a.device, rid, untrusted[a.image_id], PRE_COMMAND_IMAGE_NOT_TRUSTED
            )
            del ready[i]
    now = svc.clock()
    claimed = activations.claim_pre_commands(
        svc.db, supplier, [a.counter for _, a, _ in ready.values()], now
    )
    pending = set(claimed)
    try:
        with signing.batch(svc) as signer:
            # by key, image and origin (one audit "details" per signing run)
            todo: dict[tuple[bytes, str, Origin], list[Claimed]] = {}
            for i, (pc, a, rid) in ready.items():
                if a.counter not in claimed:
                    results[i] = PreCommandRefusal(
                        i,
                        a.device,
                        rid,
                        f"the pre-command for {rid} is being signed by another call or was signed",
                        PRE_COMMAND_ALREADY_SIGNED,
                    )
                    continue
                group = groups[a.device]
                assert isinstance(group, KeyGroup)
                todo.setdefault((group.key.key_id, a.image_id, items[i][2]), []).append(
                    Claimed(i, pc, a, rid, group)
                )
            for (_, _, origin), same_key in todo.items():
                for c, signed in zip(
                    same_key, sign_claimed(svc, signer, same_key, origin), strict=True
                ):
                    results[c.index] = signed
            # signed for good in the same transaction as the signatures' records
            signer.along(
                partial(
                    activations.mark_signed, originator=supplier, counters=sorted(claimed), now=now
                )
            )
        pending.clear()  # signed and recorded: these are done
    finally:
        if pending:  # signing or its audit record failed: nothing went out, try again later
            try:
                activations.release_pre_commands(svc.db, supplier, sorted(pending))
            except SignerError as exc:  # never hide the error that brought us here
                log.error(
                    "%d pre-command claim(s) could not be released and stay claimed "
                    "(re-issue their SR 11.3 requests): %s",
                    len(pending),
                    exc,
                )
    assert all(r is not None for r in results)
    return [r for r in results if r is not None]


def _check_one(
    i: int,
    pc: PreCommand,
    answered: RequestId | None,
    a: IssuedActivation | None,
    supplier: Eui64,
    hashes: dict[str, bytes],
) -> tuple[PreCommandRefusal | None, tuple[PreCommand, IssuedActivation, RequestId] | None]:
    if a is None:
        return PreCommandRefusal(
            i,
            pc.recipient,
            None,
            f"no SR 11.3 request with counter {pc.counter} was issued by {supplier}",
            PRE_COMMAND_NOT_ISSUED,
        ), None
    rid = RequestId(originator=supplier, target=a.device, counter=a.counter)
    expected = ExpectedActivation(
        originator=supplier,
        recipient=a.device,
        firmware_hash=hashes[a.image_id],
        counter=a.counter,
        execution_time=a.execution_time,
        cancel=a.cancel,
    )
    failures = check_pre_command(pc, expected)
    if answered is not None and answered != rid:
        failures.append(
            f"request_id: the DCC response answers {answered}, the pre-command belongs to {rid}"
        )
    if failures:
        return PreCommandRefusal(i, a.device, rid, "; ".join(failures), PRE_COMMAND_MISMATCH), None
    if a.withheld_at is not None:
        return PreCommandRefusal(
            i,
            a.device,
            rid,
            f"the SR 11.3 request {rid} was withheld by a campaign's pre-flight at "
            f"{a.withheld_at.isoformat()} and never issued: no pre-command is signed for it",
            PRE_COMMAND_WITHHELD,
        ), None
    if a.pre_command_signed_at is not None:
        return PreCommandRefusal(
            i,
            a.device,
            rid,
            f"the pre-command for {rid} was already "
            f"signed at {a.pre_command_signed_at.isoformat()}",
            PRE_COMMAND_ALREADY_SIGNED,
        ), None
    return None, (pc, a, rid)


def _key_groups(
    svc: Services, devices: Sequence[Eui64]
) -> dict[Eui64 | str, KeyGroup | DeviceRefusal]:
    """The key each device's Supplier cell names, or why there is none."""
    unique = list(dict.fromkeys(devices))
    out: dict[Eui64 | str, KeyGroup | DeviceRefusal] = {}
    if not unique:
        return out
    selection = select_keys(svc, unique)
    for g in selection.groups:
        for d in g.devices:
            out[d] = g
    for r in selection.refused:
        out[r.device] = r
    return out


def _untrusted_images(svc: Services, image_ids: set[str]) -> dict[str, str]:
    """Why each image may no longer be activated (its manufacturer certificate revoked since
    its 11.3 request was issued, ...): the same check Resign and BuildDUIS make.

    An 11.3 request is only issued for a library image, so one that is not in the library
    any more was recorded outside this service (the RTDS vectors' activations in tests);
    its pre-command is still checked field by field against that record."""
    out = {}
    for image_id in image_ids:
        try:
            verified_image(svc, image_id)
        except NotFound:
            continue
        except PolicyRefused as exc:
            out[image_id] = str(exc)
    return out


def _reindex(
    result: SignedPreCommand | PreCommandRefusal, index: int
) -> SignedPreCommand | PreCommandRefusal:
    if isinstance(result, PreCommandRefusal):
        return replace(result, index=index)
    return result
