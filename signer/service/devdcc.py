"""The development DCC: it plays the DCC's side for requests this development server issued.

- ``respond``: an SR 11.3 request (signed by one of our XML-signing keys, its RequestID in the
  issued-request records) becomes the CS06 pre-command the DCC would build for it, in a DUIS
  response signed with the development DCC key, which the development configuration trusts
  (``[dcc] certificates``). `signer sign-precommand --dcc-response` takes it.
- ``activation_done``: a signed pre-command (the SignedPreCommand request `sign-precommand`
  wrote) is checked as the DCC and the device would (our XML signature; the CS06 signature
  with the key the device's cell names), then the activation is recorded as done, as
  `signer activations succeeded` records it.
- ``update_credentials``: SR 6.15.1 as the DCC and device would carry it out, and the SR 6.24.1
  read-back: a DUIS response whose Supplier digital-signing cell names the new certificate's
  SKI, signed by the development DCC, that `signer devices import` takes.

Development only (``devparties.require_development``). The GBCS messages are laid out here
from GBCS (docs/cs06.md, docs/trust-anchor.md), then read back with the service's own parsers
before they are handed out, so a stand-in never produces what the server would refuse.
"""

from __future__ import annotations

import base64
import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from cryptography import x509
from lxml import etree

from signer.duis.activation import (
    ACTIVATE_FIRMWARE_SERVICE,
    COMMAND_VARIANT_PRE_COMMAND,
    SIGNED_PRE_COMMAND_VARIANTS,
)
from signer.duis.request import SR_NS, RequestId
from signer.duis.xmldsig import VerifiedSignature, sign_document, verify_document
from signer.errors import (
    CertificateRejected,
    InvalidInput,
    NotFound,
    PolicyRefused,
    SignatureInvalid,
    Unsigned,
    excerpt,
)
from signer.gbcs.eui import Eui64
from signer.gbcs.general_signing import CRA_COMMAND, CRA_RESPONSE, TAG_GENERAL_SIGNING
from signer.gbcs.precommand import (
    MESSAGE_CODE_CS06,
    ExpectedActivation,
    check_pre_command,
    parse_pre_command,
    parse_signed_command,
)
from signer.gbcs.roles import RemotePartyRole
from signer.gbcs.signature import verify_p256_sha256
from signer.gbcs.trust_anchor import (
    CellUsage,
    KeyUsage,
    TrustAnchorCell,
    parse_security_credentials_response,
)
from signer.registry import activations, devices
from signer.service import cplops
from signer.service.devparties import DevParty, dev_dcc
from signer.service.services import Services
from signer.smki.certificate import compact_name, parse_smki
from signer.smki.lifecycle import KeyPurpose, check_certificate_for

GBCS_VERSION = "4.0"
#: GBCS message code of the SR 6.24.1 response the development device sends (CS02a)
MESSAGE_CODE_CS02A = 0x0008
CREDENTIALS_SERVICE = ("6.24", "6.24.1")
_GENERALIZED_TIME = 0x18


def _sr(local: str) -> str:
    return f"{{{SR_NS}}}{local}"


@dataclass(frozen=True)
class DccResponse:
    """The development DCC's signed DUIS response to one 11.3 request."""

    request_id: RequestId
    device: Eui64
    pre_command: bytes
    document: bytes


@dataclass(frozen=True)
class ActivationDone:
    request_id: RequestId
    device: Eui64
    current_entry_id: str | None
    message: str  # as `signer activations succeeded` reports it


@dataclass(frozen=True)
class CredentialsResponse:
    device: Eui64
    ski: bytes  # of the Supplier digital-signing cell the response reports
    document: bytes


# -- SR 11.3 -> CS06 pre-command ---------------------------------------------------------


def respond(svc: Services, request: bytes, *, field: str = "request") -> DccResponse:
    """The CS06 pre-command for an SR 11.3 request this server issued, in a signed response."""
    dcc = dev_dcc(svc.config)
    now = svc.clock()
    supplier = svc.config.supplier_eui
    root = _ours(svc, request, field=field).root
    header = root.find(_sr("Header"))
    if root.tag != _sr("Request") or header is None:
        raise InvalidInput("not a DUIS request (sr:Request with sr:Header)", field=field)
    service = (header.findtext(_sr("ServiceReference")) or "").strip()
    variant = (header.findtext(_sr("CommandVariant")) or "").strip()
    if service != ACTIVATE_FIRMWARE_SERVICE or variant != str(COMMAND_VARIANT_PRE_COMMAND):
        raise InvalidInput(
            f"ServiceReference {excerpt(service) or '(none)'} / CommandVariant "
            f"{excerpt(variant) or '(none)'} is not an SR 11.3 request for a pre-command "
            f"({ACTIVATE_FIRMWARE_SERVICE} / {COMMAND_VARIANT_PRE_COMMAND})",
            field=field,
        )
    rid = RequestId.parse((header.findtext(_sr("RequestID")) or "").strip(), field=field)
    issued = activations.get(svc.db, supplier, rid.counter) if rid.originator == supplier else None
    if issued is None or issued.device != rid.target:
        raise NotFound(f"{field}: RequestID {rid} is not in this server's issued 11.3 requests")
    body = root.find(f"{_sr('Body')}/{_sr('ActivateFirmware')}")
    if body is None:
        raise InvalidInput("the request has no sr:Body/sr:ActivateFirmware", field=field)
    hash_text = (body.findtext(_sr("FirmwareHash")) or "").strip()
    try:
        firmware_hash = bytes.fromhex(hash_text)
    except ValueError:
        raise InvalidInput(f"FirmwareHash {excerpt(hash_text)} is not hex", field=field) from None
    if firmware_hash.hex() != issued.image_id.lower():
        raise InvalidInput(
            f"FirmwareHash {hash_text} is not the image {issued.image_id} the record of {rid} "
            "names",
            field=field,
        )
    expected = ExpectedActivation(
        originator=supplier,
        recipient=rid.target,
        firmware_hash=firmware_hash,
        counter=rid.counter,
        execution_time=_execution_time(body.findtext(_sr("ExecutionDateTime")), field=field),
    )
    payload = cs06_pre_command(expected)
    problems = check_pre_command(parse_pre_command(payload), expected)
    assert not problems, problems  # what the server checks, it must pass
    response = _response_root(
        request_id=rid,
        responder=rid.target,
        supplier=supplier,
        now=now,
        service=(ACTIVATE_FIRMWARE_SERVICE, ACTIVATE_FIRMWARE_SERVICE),
    )
    message = response[1][0]
    pre = etree.SubElement(message, _sr("PreCommand"))
    etree.SubElement(pre, _sr("GBCSVersion")).text = GBCS_VERSION
    etree.SubElement(pre, _sr("GBCSPayload")).text = base64.b64encode(payload).decode("ascii")
    return DccResponse(rid, rid.target, payload, _signed(svc, dcc, response))


def cs06_pre_command(expected: ExpectedActivation) -> bytes:
    """The CS06 Activate Firmware pre-command the DCC builds for an 11.3 request (docs/cs06.md):
    both counters are the RequestID counter, no date-time, no signature byte."""
    content = _tlv(0x04, expected.firmware_hash) + _tlv(0x02, _integer(expected.counter))
    when = expected.gbcs_execution_time
    if when is not None:
        content += _tlv(_GENERALIZED_TIME, f"{when.astimezone(dt.UTC):%Y%m%d%H%M%S}Z".encode())
    return _general_signing(
        cra=CRA_COMMAND,
        counter=expected.counter,
        originator=expected.originator,
        recipient=expected.recipient,
        message_code=MESSAGE_CODE_CS06,
        content=_tlv(0x30, content),
    )


def _execution_time(text: str | None, *, field: str) -> dt.datetime | None:
    if text is None or not text.strip():
        return None
    try:
        value = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput(
            f"ExecutionDateTime {excerpt(text)} is not an xs:dateTime", field=field
        ) from None
    if value.utcoffset() is None:
        raise InvalidInput(f"ExecutionDateTime {excerpt(text)} has no time zone", field=field)
    return value.replace(microsecond=0)


# -- signed pre-command -> activation done ------------------------------------------------


def activation_done(svc: Services, signed: bytes, *, field: str = "signed") -> ActivationDone:
    """Check a SignedPreCommand request as the DCC and the device would, then record the
    activation as done (the device now runs the image's CPL entry)."""
    root = _ours(svc, signed, field=field).root
    header = root.find(_sr("Header"))
    if root.tag != _sr("Request") or header is None:
        raise InvalidInput("not a DUIS request (sr:Request with sr:Header)", field=field)
    variant = (header.findtext(_sr("CommandVariant")) or "").strip()
    service = (header.findtext(_sr("ServiceReference")) or "").strip()
    if service != ACTIVATE_FIRMWARE_SERVICE or variant not in {
        str(v) for v in SIGNED_PRE_COMMAND_VARIANTS
    }:
        raise InvalidInput(
            f"ServiceReference {excerpt(service) or '(none)'} / CommandVariant "
            f"{excerpt(variant) or '(none)'} is not a signed 11.3 pre-command (11.3 / 5, 6 or 7)",
            field=field,
        )
    rid = RequestId.parse((header.findtext(_sr("RequestID")) or "").strip(), field=field)
    payload_text = root.findtext(f"{_sr('Body')}/{_sr('SignedPreCommand')}/{_sr('GBCSPayload')}")
    if payload_text is None:
        raise InvalidInput("no sr:Body/sr:SignedPreCommand/sr:GBCSPayload", field=field)
    try:
        command = base64.b64decode("".join(payload_text.split()), validate=True)
    except ValueError:
        raise InvalidInput("sr:GBCSPayload is not base64", field=field) from None
    pc, signature = parse_signed_command(command, field=field)
    if pc.recipient != rid.target:
        raise InvalidInput(
            f"the signed command is for {pc.recipient}, the request for {rid.target}", field=field
        )
    # the device accepts the command only with the key its Supplier cell names
    facts = devices.device_facts(svc.db, [rid.target]).get(rid.target)
    if facts is not None and facts.ambiguous_skis:
        raise PolicyRefused(
            f"device {rid.target} has {len(facts.ambiguous_skis)} Supplier digital-signing "
            "cells naming different keys: which one it trusts is unknown"
        )
    ski = facts.supplier_ski if facts is not None else None
    if ski is None:
        raise PolicyRefused(f"device {rid.target} has no Supplier digital-signing cell")
    keys = [k for k in svc.token.keys(refresh=True) if k.ski == ski]
    if not keys:
        raise PolicyRefused(f"no key on the token has SKI {ski.hex()}, which {rid.target} trusts")
    try:
        verify_p256_sha256(keys[0].public_key, pc.signed_bytes, signature)
    except SignatureInvalid:
        raise PolicyRefused(
            f"the device would refuse the command: its signature does not verify with key "
            f"{keys[0].label!r} (SKI {ski.hex()}), which its Supplier cell names"
        ) from None
    [message] = cplops.record_activation_results(
        svc.db, svc.config.supplier_eui, [str(rid)], svc.clock()
    )
    record = devices.get_device(svc.db, rid.target)
    entry = record.current_entry_id if record is not None else None
    return ActivationDone(rid, rid.target, entry, message)


# -- SR 6.15.1 and the SR 6.24.1 read-back --------------------------------------------------


def update_credentials(
    svc: Services, devices_: Sequence[Eui64], certificate: x509.Certificate, *, field: str
) -> list[CredentialsResponse]:
    """Each device's 6.24.1 read-back after SR 6.15.1 put ``certificate`` in its Supplier
    digital-signing cell, as DUIS responses signed by the development DCC."""
    dcc = dev_dcc(svc.config)
    now = svc.clock()
    try:
        smki = check_certificate_for(
            KeyPurpose.SUPPLIER_DS,
            certificate,
            supplier_eui=svc.config.supplier_eui,
            now=now,
            issuers=svc.issuers,
        )
    except CertificateRejected as exc:
        raise InvalidInput(
            f"not a Supplier digital-signing certificate a device would take: {exc}", field=field
        ) from None
    out = []
    for device in devices_:
        record = devices.get_device(svc.db, device)
        if record is None:
            raise NotFound(f"device {device} is not registered")
        cells = _replace_supplier_cell(record.cells, smki.eui, smki.ski)
        payload = credentials_response(device, cells, recipient=svc.config.dcc_eui, now=now)
        check = parse_security_credentials_response(payload).supplier_signing_cell()
        assert check is not None and check.ski == smki.ski
        response = _response_root(
            request_id=None,
            responder=device,
            supplier=svc.config.supplier_eui,
            now=now,
            service=CREDENTIALS_SERVICE,
        )
        etree.SubElement(response[1][0], _sr("GBCSPayload")).text = base64.b64encode(
            payload
        ).decode("ascii")
        out.append(CredentialsResponse(device, smki.ski, _signed(svc, dcc, response)))
    return out


def credentials_response(
    device: Eui64, cells: Iterable[TrustAnchorCell], *, recipient: Eui64, now: dt.datetime
) -> bytes:
    """The device's GBCS response to SR 6.24.1 (CS02a, no MAC envelope), listing ``cells``
    per remote party role (docs/trust-anchor.md)."""
    by_role: dict[int, list[TrustAnchorCell]] = {}
    for cell in cells:
        by_role.setdefault(int(cell.role), []).append(cell)
    roles = b""
    for role, role_cells in sorted(by_role.items()):
        encoded = b"".join(_cell(c) for c in role_cells)
        sequence = 1 if role == RemotePartyRole.SUPPLIER else 0
        roles += _tlv(
            0x30,
            _tlv(0x02, _integer(role))
            + _tlv(0x0A, _integer(0))
            + _tlv(0x02, _integer(sequence))
            + _tlv(0x30, encoded),
        )
    return (
        _general_signing(
            cra=CRA_RESPONSE,
            counter=int(now.timestamp()),
            originator=device,
            recipient=recipient,
            message_code=MESSAGE_CODE_CS02A,
            content=_tlv(0x30, roles),
        )
        + b"\x00"  # no signature
    )


def _replace_supplier_cell(
    cells: Iterable[TrustAnchorCell], eui: Eui64, ski: bytes
) -> list[TrustAnchorCell]:
    new = TrustAnchorCell(
        role=int(RemotePartyRole.SUPPLIER),
        key_usage=KeyUsage.DIGITAL_SIGNATURE,
        cell_usage=CellUsage.MANAGEMENT,
        subject_eui=eui,
        ski=ski,
    )
    kept = [
        c
        for c in cells
        if not (
            c.role == RemotePartyRole.SUPPLIER
            and c.key_usage is KeyUsage.DIGITAL_SIGNATURE
            and c.cell_usage is CellUsage.MANAGEMENT
        )
    ]
    return [new, *kept]


def _cell(cell: TrustAnchorCell) -> bytes:
    usage = b"\x07\x80" if cell.key_usage is KeyUsage.DIGITAL_SIGNATURE else b"\x03\x08"
    body = _tlv(0x03, usage)
    if cell.cell_usage is not CellUsage.MANAGEMENT:
        body += _tlv(0x02, _integer(int(cell.cell_usage)))
    return _tlv(0x30, body + _tlv(0x04, cell.subject_eui.value) + _tlv(0x04, cell.ski))


# -- shared ------------------------------------------------------------------------------


def _ours(svc: Services, document: bytes, *, field: str) -> VerifiedSignature:
    """A DUIS request this server signed: verified with one of our XML-signing certificates."""
    certificates = []
    for key in svc.token.keys(refresh=True):
        if key.certificate is None:
            continue
        try:
            if parse_smki(key.certificate).role == RemotePartyRole.XML_SIGNING:
                certificates.append(key.certificate)
        except CertificateRejected:
            continue
    try:
        return verify_document(document, certificates=certificates, field=field)
    except Unsigned:
        raise InvalidInput(
            "unsigned: this server signs every request it issues", field=field
        ) from None
    except SignatureInvalid as exc:
        raise InvalidInput(
            f"not signed by this server's XML-signing key: {exc}", field=field
        ) from None


def _response_root(
    *,
    request_id: RequestId | None,
    responder: Eui64,
    supplier: Eui64,
    now: dt.datetime,
    service: tuple[str, str],
) -> etree._Element:
    """``sr:Response`` with its Header and an empty ``sr:Body/sr:ResponseMessage``: the
    RequestID it answers (none for a read-back the stand-in makes up), and a ResponseID."""
    root = etree.Element(_sr("Response"), nsmap={"sr": SR_NS}, schemaVersion="5.4")
    header = etree.SubElement(root, _sr("Header"))
    counter = request_id.counter if request_id is not None else int(now.timestamp())
    if request_id is not None:
        etree.SubElement(header, _sr("RequestID")).text = str(request_id)
    etree.SubElement(header, _sr("ResponseID")).text = f"{responder}:{supplier}:{counter}"
    etree.SubElement(header, _sr("ResponseCode")).text = "I0"
    utc = now.astimezone(dt.UTC)
    etree.SubElement(
        header, _sr("ResponseDateTime")
    ).text = f"{utc:%Y-%m-%dT%H:%M:%S}.{utc.microsecond // 1000:03d}Z"
    message = etree.SubElement(etree.SubElement(root, _sr("Body")), _sr("ResponseMessage"))
    etree.SubElement(message, _sr("ServiceReference")).text = service[0]
    etree.SubElement(message, _sr("ServiceReferenceVariant")).text = service[1]
    return root


def _signed(svc: Services, dcc: DevParty, root: etree._Element) -> bytes:
    """The response validated against the DUIS schema (when configured), then signed by the
    development DCC in the DCC XMLDSig profile."""
    if svc.schema is not None:
        svc.schema.validate(root)
    return sign_document(
        root,
        sign_digest=dcc.sign_prehashed,
        issuer_name=compact_name(dcc.certificate.issuer),
        serial=dcc.certificate.serial_number,
    )


def _general_signing(
    *,
    cra: int,
    counter: int,
    originator: Eui64,
    recipient: Eui64,
    message_code: int,
    content: bytes,
) -> bytes:
    """A GBCS General-Signing APDU up to the end of its content (no date-time)."""
    return (
        bytes((TAG_GENERAL_SIGNING, 0x09, cra))
        + counter.to_bytes(8, "big")
        + b"\x08"
        + originator.value
        + b"\x08"
        + recipient.value
        + b"\x00"
        + b"\x02"
        + message_code.to_bytes(2, "big")
        + _length(len(content))
        + content
    )


def _tlv(tag: int, value: bytes) -> bytes:
    return bytes((tag,)) + _length(len(value)) + value


def _length(n: int) -> bytes:
    if n < 0x80:
        return bytes((n,))
    octets = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes((0x80 | len(octets),)) + octets


def _integer(value: int) -> bytes:
    """A non-negative INTEGER's content, minimal two's complement."""
    return value.to_bytes(value.bit_length() // 8 + 1, "big")
