"""The direct calls stay for small runs: above ``[campaigns] direct_limit`` devices a
campaign (plan, approvals, apply) is required.

Counted twice: before anything is signed (``check_direct``, ``DirectCount``: a clean
refusal), and again in the transaction that commits the call's audit records
(``recheck_direct``), where overlapping calls, in one process or in several, take turns:
what they signed together can never exceed the limit.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from signer.caller import SYSTEM, current
from signer.errors import CampaignRefused
from signer.registry import campaigns as store
from signer.service.services import Services

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from signer.service.signing import SigningBatch

CAMPAIGN_REQUIRED = "CAMPAIGN_REQUIRED"


#: the signature each direct call makes: its limit counts the devices of those
OPERATIONS = {
    "Resign": "resign",
    "BuildDUIS": "duis-sign",
    "BuildActivation": "activation-sign",
    "StreamActivation": "activation-sign",
}
#: the RPC whose signatures are a campaign's: never counted against the direct limit
CAMPAIGN_METHOD = store.CAMPAIGN_METHOD


def earlier_devices(svc: Services, image_id: str, call: str, exclude_call: str = "") -> int:
    """The devices ``call``'s kind of signature was made for with this image by direct
    calls within ``campaigns.direct_window`` (the audit trail's ``ok`` records), but for
    those of the call whose request ID is ``exclude_call``."""
    since = svc.clock() - svc.config.campaigns.direct_window
    return store.direct_devices(svc.db, image_id, OPERATIONS[call], since, exclude_call)


def check_direct(svc: Services, devices: int, call: str, image_id: str | None = None) -> None:
    """Refuse a direct call for more devices than ``campaigns.direct_limit`` (0: no limit):
    with ``image_id``, counting the devices earlier direct calls signed this image's kind of
    signature for within ``campaigns.direct_window`` (one supplier cannot reach a
    million meters 1000 at a time)."""
    limit = svc.config.campaigns.direct_limit
    if not limit:
        return
    earlier = earlier_devices(svc, image_id, call) if image_id is not None else 0
    _refuse_above(svc, limit, earlier, devices, call)


def recheck_direct(svc: Services, signer: SigningBatch, call: str, image_id: str) -> None:
    """Count again when ``signer``'s batch commits (call it once the batch has signed),
    and fail the batch unless the image's direct devices of ``call``'s kind within the
    window, this batch's included, stay within ``campaigns.direct_limit`` (0: no limit,
    no re-count; a batch that signed none of them: nothing to count).

    The count is an ``along`` write: it runs in the transaction of the batch's audit
    records, holding the audit head's lock that every append takes, so it sees every
    record committed before (other threads, processes, replicas) and those of the group
    commit's members written before this one; two calls that both passed the pre-check
    cannot both commit past the limit. A refused batch releases nothing: its signatures
    are recorded as failed, as for any call that fails after signing.
    """
    limit = svc.config.campaigns.direct_limit
    if not limit:
        return
    operation = OPERATIONS[call]
    devices = signer.devices(operation, image_id)
    if not devices:
        return

    def recount(s: Session) -> None:
        since = svc.clock() - svc.config.campaigns.direct_window
        earlier = store.direct_devices_in(s, image_id, operation, since)
        _refuse_above(svc, limit, earlier, devices, call)

    signer.along(recount)


def _refuse_above(svc: Services, limit: int, earlier: int, devices: int, call: str) -> None:
    if earlier + devices <= limit:
        return
    window = svc.config.campaigns.direct_window
    before = f" with the {earlier} this image's direct calls had within {window}" if earlier else ""
    raise CampaignRefused(
        f"{devices} devices{before} exceed campaigns.direct_limit ({limit}) for {call}: a run "
        "this large is a campaign; plan it with `signer campaign plan`, have it approved, "
        "then `signer campaign apply` it",
        CAMPAIGN_REQUIRED,
    )


class DirectCount:
    """StreamActivation's count: devices as batches arrive, refused before the batch that
    crosses the limit is signed; with ``image_id``, on top of the image's other direct
    calls within the window, read again before every batch (a stream opened early but fed
    late sees what parallel calls signed meanwhile).

    This stream's own devices are counted here (refused ones too), so its own records are
    left out of the audit trail's count: by its request ID; a call with none of its own
    (in-process, `SYSTEM`) takes the trail's count less its devices so far (at most what
    it signed), never less than when it opened."""

    def __init__(self, svc: Services, call: str, image_id: str | None = None) -> None:
        self._svc, self._call, self._image_id, self.devices = svc, call, image_id, 0
        request_id = current().request_id
        self._own = "" if request_id == SYSTEM.request_id else request_id
        self._opened = self._earlier()

    def _earlier(self) -> int:
        if not self._svc.config.campaigns.direct_limit or self._image_id is None:
            return 0
        return earlier_devices(self._svc, self._image_id, self._call, self._own)

    def add(self, devices: int) -> None:
        before, self.devices = self.devices, self.devices + devices
        limit = self._svc.config.campaigns.direct_limit
        if not limit:
            return
        earlier = self._earlier()
        if not self._own:  # the trail holds this stream's signatures too
            earlier = max(self._opened, earlier - before)
        _refuse_above(self._svc, limit, earlier, self.devices, self._call)
