"""What each signer error says in the rich error details (`signer.api.richdetails`).

`error_details` is a pure function of the error: the reason code (`signer.api.status`, the
one place errors are mapped), and per family its details: the field and byte offset of an
`InvalidInput` (BadRequest), every device of a `DevicesRefused` with its reason code, the
refused pre-command, the devices still trusting a key, a campaign refusal's reason
(PreconditionFailure).
"""

from __future__ import annotations

from dataclasses import replace

import grpc

from signer.api.richdetails import Details, FieldViolation, Violation
from signer.api.status import reason_code, reason_for, status_for
from signer.errors import CampaignRefused, DevicesRefused, InvalidInput, SignerError
from signer.service.keys.lifecycle import KeysStillTrusted
from signer.service.precommands import PreCommandRefused

#: violations at most, whatever the trailer budget; the message lists the first 50 devices too
MAX_VIOLATIONS = 50


def error_details(error: SignerError, *, subject: str, deadline_passed: bool = False) -> Details:
    """The details of ``error``; ``subject`` names what a refusal without devices is about
    (the RPC, e.g. ``signer.v1.FirmwareSigner/VerifyManufacturer``)."""
    reason = reason_for(error, deadline_passed=deadline_passed)
    code = status_for(error, deadline_passed=deadline_passed)
    meta: dict[str, str] = {}
    if isinstance(error, InvalidInput):
        where = "" if error.offset is None else f" (at byte offset {error.offset})"
        if error.field:
            meta["field"] = error.field
        if error.offset is not None:
            meta["offset"] = str(error.offset)
        violation = FieldViolation(error.field or "", error.message + where, reason)
        return Details(reason, meta, field_violations=(violation,))
    if isinstance(error, DevicesRefused):
        meta["devices"] = str(len(error.refusals))
        meta["reasons"] = ",".join(sorted({reason_code(r) for _d, r, _t in error.refusals}))
        listed = tuple(
            Violation(reason_code(r), device, detail)
            for device, r, detail in error.refusals[:MAX_VIOLATIONS]
        )
        return _omitting(Details(reason, meta, violations=listed), len(error.refusals))
    if isinstance(error, PreCommandRefused):
        refused = error.refused
        meta["code"] = refused.code
        meta["index"] = str(refused.index)
        if refused.device is not None:
            meta["device_id"] = str(refused.device)
        if refused.request_id is not None:
            meta["request_id"] = str(refused.request_id)
        about = str(refused.device) if refused.device is not None else "pre_command"
        return Details(reason, meta, violations=(Violation(reason, about, refused.reason),))
    if isinstance(error, KeysStillTrusted):
        meta["devices"] = str(len(error.devices))
        listed = tuple(
            Violation(reason, str(d), "still trusts the key in its Supplier digital-signing cell")
            for d in error.devices[:MAX_VIOLATIONS]
        )
        return _omitting(Details(reason, meta, violations=listed), len(error.devices))
    if isinstance(error, CampaignRefused):
        # ErrorInfo.reason is the campaign's own (SELF_APPROVAL, PLAN_STALE, ...), and so is
        # the violation's type; ErrorInfo.metadata says which family it is
        meta["family"] = "CAMPAIGN_REFUSED"
        return Details(reason, meta, violations=(Violation(reason, subject, str(error)),))
    if code == grpc.StatusCode.FAILED_PRECONDITION:
        return Details(reason, meta, violations=(Violation(reason, subject, str(error)),))
    return Details(reason, meta)


def _omitting(details: Details, total: int) -> Details:
    if total <= len(details.violations):
        return details
    omitted = {**details.metadata, "violations_omitted": str(total - len(details.violations))}
    return replace(details, metadata=omitted)
