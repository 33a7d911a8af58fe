"""Activation: SR 11.3 Activate Firmware requests, one per device, built and signed.

Each 11.3 request targets one device and carries the Firmware Hash of the image; it is
recorded (with its RequestID counter) once its signature is in the audit trail and before it
leaves the service, so the CS06 pre-command the DCC returns can be checked field by field
against what was actually asked (``signer.service.precommands``), and a request that never
left can never lead to one.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial

from lxml import etree

from signer.duis.activation import activate_firmware_builder
from signer.duis.request import RequestId
from signer.duis.xmldsig import PendingSignature, prepare_signature
from signer.errors import InvalidInput
from signer.gbcs.eui import Eui64
from signer.registry import activations, counters
from signer.service import signing
from signer.service.caches import VerifiedImage
from signer.service.devices import MAX_DEVICES
from signer.service.duis import xml_signing_key
from signer.service.images import verified_image
from signer.service.pathways import select_eligible
from signer.service.refusal import DUPLICATE_DEVICE, INVALID_DEVICE_ID, DeviceRefusal
from signer.service.services import Services
from signer.smki.lifecycle import KeyPurpose


@dataclass(frozen=True)
class ActivationSpec:
    image_id: str
    execution_time: dt.datetime | None = None  # None: immediate
    cancel: bool = False


@dataclass(frozen=True)
class BuiltActivation:
    device: Eui64
    request_id: RequestId
    document: bytes


def build_activations(
    svc: Services, spec: ActivationSpec, device_ids: Sequence[str]
) -> tuple[list[BuiltActivation], list[DeviceRefusal]]:
    from signer.service.campaigns.policy import check_direct

    check_direct(svc, len(device_ids), "BuildActivation")
    built: list[BuiltActivation] = []
    refused: list[DeviceRefusal] = []
    for batch in stream_activations(svc, spec, [device_ids]):
        for item in batch:
            if isinstance(item, BuiltActivation):
                built.append(item)
            else:
                refused.append(item)
    return built, refused


def stream_activations(
    svc: Services, spec: ActivationSpec, batches: Iterable[Sequence[str]]
) -> Iterator[list[BuiltActivation | DeviceRefusal]]:
    """Per-device results, one list per batch: memory stays bounded by one batch."""
    check_spec(spec, svc.clock())
    image = verified_image(svc, spec.image_id)
    xml_signing_key(svc)  # fail before the first batch if there is no usable key
    # what every request of the campaign shares, checked and written out once
    build = builder(image, spec)
    from signer.service.campaigns.policy import DirectCount, recheck_direct

    direct = DirectCount(svc, "StreamActivation", image.record.image_id)  # over the window
    offset = 0
    for batch in batches:
        given = _batch_devices(batch, offset)
        offset += len(batch)
        devices = [d for d in given if isinstance(d, Eui64)]
        direct.add(len(batch))  # refused before the batch that crosses the limit is signed
        if not devices:  # nothing to look up, reserve or sign in this batch
            yield [d for d in given if isinstance(d, DeviceRefusal)]
            continue
        # the pre-command will need the key the device's Supplier cell names: check it now
        selection = select_eligible(svc, image, devices)
        refusals = {r.device: r for r in selection.refused}
        accepted = [d for g in selection.groups for d in g.devices]
        results: list[BuiltActivation | DeviceRefusal]
        with signing.batch(svc) as signer:  # one audit transaction per batch
            documents = issue_batch(svc, signer, spec, image, accepted, build)
            recheck_direct(svc, signer, "StreamActivation", image.record.image_id)
            results = [
                d if isinstance(d, DeviceRefusal) else refusals.get(d) or documents[d]
                for d in given
            ]
        yield results


def issue_batch(
    svc: Services,
    signer: signing.SigningBatch,
    spec: ActivationSpec,
    image: VerifiedImage,
    accepted: Sequence[Eui64],
    build: Callable[[RequestId], etree._Element] | None = None,
) -> dict[Eui64, BuiltActivation]:
    """The SR 11.3 requests of devices already screened, built and signed in ``signer``'s
    batch, and issued (recorded) in its audit transaction: StreamActivation's batch and a
    campaign's. Returned only after the batch commits."""
    if not accepted:  # an all-refused batch signs nothing and needs no audit lock
        return {}
    originator = svc.config.supplier_eui
    xml_key, xml_cert = xml_signing_key(svc)  # per batch: a key retired mid-campaign stops
    issuer, serial = xml_cert.issuer_name, xml_cert.serial
    build = build or builder(image, spec)
    validate = svc.schema.validate if svc.schema is not None else None
    detail = {
        "cancel": spec.cancel,
        "execution_time": spec.execution_time.isoformat() if spec.execution_time else None,
    }
    first = counters.reserve(svc.db, originator, len(accepted))
    now = svc.clock()
    # issued in the same transaction as the batch's audit records: a request whose
    # signature was not recorded was never issued, so no pre-command can be signed
    # for it; a request issued always has its record
    signer.along(
        partial(
            activations.insert_campaign_batch,
            originator=originator,
            image_id=image.record.image_id,
            execution_time=spec.execution_time,
            cancel=spec.cancel,
            issued_at=now,
            first_counter=first,
            devices=list(accepted),
        )
    )
    # in phases over the batch, not device by device: the token signs back to back
    # and each step's code stays warm (measured: a third less time per document)
    request_ids = [
        RequestId(originator=originator, target=d, counter=first + i)
        for i, d in enumerate(accepted)
    ]
    pending: list[PendingSignature] = []
    for request_id in request_ids:
        root = build(request_id)
        if validate is not None:
            validate(root)
        pending.append(prepare_signature(root, issuer_name=issuer, serial=serial))
    signatures = signer.sign_all(
        xml_key,
        [p.digest for p in pending],
        request_ids,
        purpose=KeyPurpose.XML_SIGN,
        operation=signing.ACTIVATION_SIGN,
        image_id=image.record.image_id,
        device_count=1,
        details=detail,
    )
    return {
        r.target: BuiltActivation(device=r.target, request_id=r, document=p.finish(sig))
        for r, p, sig in zip(request_ids, pending, signatures, strict=True)
    }


def builder(image: VerifiedImage, spec: ActivationSpec) -> Callable[[RequestId], etree._Element]:
    """What every request of a campaign shares, checked and written out once."""
    return activate_firmware_builder(
        firmware_hash=image.digest, execution_time=spec.execution_time, cancel=spec.cancel
    )


def _batch_devices(batch: Sequence[str], offset: int) -> list[Eui64 | DeviceRefusal]:
    """A streamed batch's devices in order; an ID that is not an EUI-64, or repeats one
    earlier in the batch, is refused on its own and the others go on. A batch over the DUIS
    limit is the stream's fault, not a device's: it ends the call."""
    if len(batch) > MAX_DEVICES:
        raise InvalidInput(
            f"{len(batch)} devices exceed the limit of {MAX_DEVICES} per batch",
            field=f"device_ids (from #{offset})",
        )
    out: list[Eui64 | DeviceRefusal] = []
    seen: set[Eui64] = set()
    for i, text in enumerate(batch):
        try:
            eui = Eui64.parse(text, field=f"device_ids[{offset + i}]")
        except InvalidInput as exc:
            shown = text if len(text) <= 32 else text[:29] + "..."
            out.append(DeviceRefusal(shown, INVALID_DEVICE_ID, str(exc)))
            continue
        if eui in seen:
            out.append(DeviceRefusal(eui, DUPLICATE_DEVICE, "listed earlier in this batch"))
            continue
        seen.add(eui)
        out.append(eui)
    return out


def check_spec(spec: ActivationSpec, now: dt.datetime) -> None:
    if spec.cancel and spec.execution_time is not None:
        raise InvalidInput("a cancellation carries no execution time", field="execution_time")
    if spec.execution_time is not None:
        if spec.execution_time.tzinfo is None:
            raise InvalidInput("the execution time needs a time zone", field="execution_time")
        if spec.execution_time.microsecond:
            raise InvalidInput(
                "the execution time must be whole seconds (GBCS carries seconds)",
                field="execution_time",
            )
        if spec.execution_time <= now:
            raise InvalidInput(
                f"the execution time {spec.execution_time.isoformat()} is not in the future",
                field="execution_time",
            )
