"""Activation: SR 11.3 requests per device, and signing the CS06 pre-commands they lead to.

Each 11.3 request targets one device and carries the Firmware Hash of the image; it is
recorded (with its RequestID counter) before it leaves the service, so the pre-command the
DCC returns can be checked field by field against what was actually asked.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from signer.duis.activation import (
    build_activate_firmware,
    build_signed_pre_command,
    extract_pre_command,
)
from signer.duis.request import RequestId
from signer.duis.xmldsig import sign_document
from signer.errors import HsmUnavailable, InvalidInput, PolicyRefusal, SignatureInvalid
from signer.gbcs.eui import Eui64
from signer.gbcs.precommand import (
    ExpectedActivation,
    PreCommand,
    check_pre_command,
    parse_pre_command,
    sign_pre_command,
)
from signer.gbcs.signature import verify_p256_sha256
from signer.registry import activations, counters
from signer.registry.activations import IssuedActivation
from signer.registry.counters import MAX_COUNTER
from signer.service.context import Services
from signer.service.duis import xml_signing_key
from signer.service.images import verified_image
from signer.service.keyselect import KeyGroup, parse_devices, select_keys
from signer.service.pathways import select_eligible
from signer.service.refusal import Refusal


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


@dataclass(frozen=True)
class SignedPreCommand:
    device: Eui64
    request_id: RequestId
    signed_command: bytes
    document: bytes


def build_activations(svc: Services, spec: ActivationSpec, device_ids: Sequence[str]
                      ) -> tuple[list[BuiltActivation], list[Refusal]]:
    built: list[BuiltActivation] = []
    refused: list[Refusal] = []
    for batch in stream_activations(svc, spec, [device_ids]):
        for item in batch:
            if isinstance(item, BuiltActivation):
                built.append(item)
            else:
                refused.append(item)
    return built, refused


def stream_activations(svc: Services, spec: ActivationSpec, batches: Iterable[Sequence[str]]
                       ) -> Iterator[list[BuiltActivation | Refusal]]:
    """Per-device results, one list per batch: memory stays bounded by one batch."""
    _check_spec(spec, svc.clock())
    image = verified_image(svc, spec.image_id)
    xml_key, xml_cert = xml_signing_key(svc)
    offset = 0
    for batch in batches:
        devices = parse_devices(batch, field=f"device_ids (from #{offset})")
        offset += len(devices)
        # the pre-command will need the key the device's Supplier cell names: check it now
        selection = select_eligible(svc, image, devices)
        refusals = {r.device: r for r in selection.refused}
        accepted = [d for g in selection.groups for d in g.devices]
        first = counters.reserve(svc.db, svc.config.supplier_eui, len(accepted)) \
            if accepted else 0
        now = svc.clock()
        counter_of = {d: first + i for i, d in enumerate(accepted)}
        activations.record(svc.db, [
            IssuedActivation(originator=svc.config.supplier_eui, counter=counter_of[d],
                             device=d, image_id=image.record.image_id,
                             execution_time=spec.execution_time, cancel=spec.cancel,
                             issued_at=now) for d in accepted])
        results: list[BuiltActivation | Refusal] = []
        for d in devices:
            if d in refusals:
                results.append(refusals[d])
                continue
            request_id = RequestId(originator=svc.config.supplier_eui, target=d,
                                   counter=counter_of[d])
            root = build_activate_firmware(request_id=request_id, firmware_hash=image.digest,
                                           execution_time=spec.execution_time,
                                           cancel=spec.cancel)
            if svc.schema is not None:
                svc.schema.validate(root)
            document = sign_document(root, sign_digest=lambda g: svc.token.sign_digest(
                xml_key, g), issuer_name=xml_cert.issuer_name, serial=xml_cert.serial)
            results.append(BuiltActivation(device=d, request_id=request_id, document=document))
        yield results


def sign_pre_command_for(svc: Services, *, pre_command: bytes | None = None,
                         dcc_response: bytes | None = None) -> SignedPreCommand:
    """Check a CS06 pre-command against the 11.3 request it answers, then sign it.

    Nothing is signed unless every check passes; a refusal lists every failed check.
    """
    if (pre_command is None) == (dcc_response is None):
        raise InvalidInput("give exactly one of pre_command or dcc_response", field="source")
    answered = None
    if dcc_response is not None:
        answered, payload = extract_pre_command(dcc_response)
    else:
        assert pre_command is not None
        payload = pre_command
    pc = parse_pre_command(payload)
    supplier = svc.config.supplier_eui
    issued = None if pc.counter > MAX_COUNTER else activations.get(svc.db, supplier, pc.counter)
    if issued is None:
        raise PolicyRefusal(f"pre-command refused: no SR 11.3 request with counter "
                            f"{pc.counter} was issued by {supplier}")
    expected = ExpectedActivation(originator=supplier, recipient=issued.device,
                                  firmware_hash=bytes.fromhex(issued.image_id),
                                  counter=issued.counter,
                                  execution_time=issued.execution_time, cancel=issued.cancel)
    failures = check_pre_command(pc, expected)
    request_id = RequestId(originator=supplier, target=issued.device, counter=issued.counter)
    if answered is not None and answered != request_id:
        failures.append(f"request_id: the DCC response answers {answered}, the pre-command "
                        f"belongs to {request_id}")
    if failures:
        raise PolicyRefusal("pre-command refused: " + "; ".join(failures))
    if issued.pre_command_signed_at is not None:
        raise PolicyRefusal(f"pre-command refused: the pre-command for {request_id} was "
                            f"already signed at {issued.pre_command_signed_at.isoformat()}")
    selection = select_keys(svc, [issued.device])
    if not selection.groups:
        r = selection.refused[0]
        raise PolicyRefusal(f"pre-command refused: device {r.device}: {r.reason} ({r.detail})")
    group = selection.groups[0]
    if not activations.claim_pre_command(svc.db, supplier, issued.counter, svc.clock()):
        raise PolicyRefusal(f"pre-command refused: the pre-command for {request_id} is "
                            "already being signed or was signed")
    try:
        return _sign(svc, pc, group, request_id, issued)
    except BaseException:
        activations.release_pre_command(svc.db, supplier, issued.counter)
        raise


def _sign(svc: Services, pc: PreCommand, group: KeyGroup, request_id: RequestId,
          issued: IssuedActivation) -> SignedPreCommand:
    signed = sign_pre_command(pc, lambda d: svc.token.sign_digest(group.key, d))
    try:
        verify_p256_sha256(group.certificate.public_key, pc.signed_bytes, signed[-64:])
    except SignatureInvalid:
        raise HsmUnavailable(f"key {group.key.label!r} produced a signature that does not "
                             "verify with its certificate") from None
    root = build_signed_pre_command(request_id=request_id, signed_command=signed)
    if svc.schema is not None:
        svc.schema.validate(root)
    xml_key, xml_cert = xml_signing_key(svc)
    document = sign_document(root, sign_digest=lambda g: svc.token.sign_digest(xml_key, g),
                             issuer_name=xml_cert.issuer_name, serial=xml_cert.serial)
    return SignedPreCommand(device=issued.device, request_id=request_id, signed_command=signed,
                            document=document)


def _check_spec(spec: ActivationSpec, now: dt.datetime) -> None:
    if spec.cancel and spec.execution_time is not None:
        raise InvalidInput("a cancellation carries no execution time", field="execution_time")
    if spec.execution_time is not None:
        if spec.execution_time.tzinfo is None:
            raise InvalidInput("the execution time needs a time zone", field="execution_time")
        if spec.execution_time.microsecond:
            raise InvalidInput("the execution time must be whole seconds (GBCS carries "
                               "seconds)", field="execution_time")
        if spec.execution_time <= now:
            raise InvalidInput(f"the execution time {spec.execution_time.isoformat()} is not in "
                               "the future", field="execution_time")
