"""Manufacturer trust over time, and the firmware a DUIS request names.

A revoked certificate verifies nothing from its revocation time on, and no image it verified
is re-signed, built into a request or activated any more (failing closed); BuildDUIS refuses a
FirmwareVersion that is not the image's. Service level on the real token, then end to end:
the server and the CLI in their own processes.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import grpc
import pytest
from cryptography.hazmat.primitives import hashes

from signer.api._proto.signer.v1 import signer_pb2 as pb
from signer.errors import DevicesRefused, InvalidInput, PolicyRefused
from signer.gbcs import delivery as deliveries
from signer.registry import cpl
from signer.service import admin
from signer.service.activation import ActivationSpec, build_activations
from signer.service.duis import build_duis
from signer.service.precommands import (
    PreCommandRefusal,
    PreCommandRefused,
    sign_pre_command_batch,
    sign_pre_command_for,
)
from signer.service.resign import resign
from signer.service.services import Services
from signer.service.verify import Verdict, verify_manufacturer
from tests.support.audit_rows import execute
from tests.support.cli import signer
from tests.support.constants import PINNED, RTDS_DEVICE, SUPPLIER_EUI
from tests.support.cpl_factory import entry
from tests.support.hsm import Hsm
from tests.support.independent import cs06_pre_command, duis_fields, ota_header
from tests.support.ledger import services_for
from tests.support.manufacturer import Manufacturer, new_manufacturer
from tests.support.server import prepare, running_server, verify_separate

IMAGE = b"manufacturer trust firmware " * 20


@dataclass
class Env:
    svc: Services
    db_url: str
    config: Path
    manufacturer: Manufacturer
    tmp: Path


@pytest.fixture
def env(hsm: Hsm, vectors: Path, tmp_path: Path) -> Iterator[Env]:
    """A fresh database trusting a manufacturer of its own (revoking it touches nothing else)."""
    m = new_manufacturer(tmp_path)
    config, db, db_url = prepare(hsm, vectors, m, tmp_path)
    yield Env(services_for(hsm.token(), db, config), db_url, config, m, tmp_path)
    db.dispose()


def _verify(
    svc: Services, m: Manufacturer, image: bytes = IMAGE, *, file_version: int = 0x01020304
) -> Verdict:
    h = ota_header(len(image), file_version=file_version)
    return verify_manufacturer(
        svc,
        deliveries.from_separate(
            ota_header=h,
            manufacturer_image=image,
            signature=m.sign(h + image),
            hash=hashlib.sha256(image).digest(),
        ),
    )


def _fingerprint(m: Manufacturer) -> str:
    return m.certificate.fingerprint(hashes.SHA256()).hex()


def _duis(svc: Services, image_id: str, version: str) -> bytes:
    return build_duis(
        svc,
        image_id=image_id,
        upgrade_image=None,
        device_ids=[RTDS_DEVICE],
        firmware_version=version,
        service="11.1",
    ).document


# -- BuildDUIS names the firmware it carries ----------------------------------------------------


def test_build_duis_refuses_a_version_other_than_the_ota_file_version(env: Env) -> None:
    verdict = _verify(env.svc, env.manufacturer)  # file version 0x01020304, on no CPL entry
    assert verdict.verified, verdict.checks
    for wrong in ("00000001", "1", "1020304"):
        with pytest.raises(InvalidInput) as err:
            _duis(env.svc, verdict.image_id, wrong)
        assert err.value.field == "firmware_version"
        assert repr(wrong) in str(err.value) and "'01020304'" in str(err.value)
        assert "OTA header's file version" in str(err.value)
    doc = _duis(env.svc, verdict.image_id, "01020304")
    assert duis_fields(doc)["FirmwareVersion"] == "01020304"


def test_with_a_cpl_entry_the_version_is_the_entrys(env: Env) -> None:
    image = b"firmware on the CPL " * 20
    report = cpl.import_entries(
        env.svc.db,
        [
            entry(
                "TRUST-1",
                firmware_version="0102abcd",
                image_hash=hashlib.sha256(image).digest(),
            )
        ],
        PINNED,
    )
    assert report.applied, report.errors
    verdict = _verify(env.svc, env.manufacturer, image, file_version=0x0102ABCD)
    assert verdict.verified and verdict.cpl_entry_id == "TRUST-1", verdict.checks
    with pytest.raises(InvalidInput, match="CPL entry TRUST-1 gives '0102abcd'") as err:
        _duis(env.svc, verdict.image_id, "0102ABCE")
    assert err.value.field == "firmware_version"
    # the entry's own text passes the version check: the devices are judged next (the RTDS
    # device has no inventory, so the pathway refuses it; no version complaint)
    with pytest.raises(DevicesRefused):
        _duis(env.svc, verdict.image_id, "0102abcd")


# -- revocation -----------------------------------------------------------------------------------


def test_a_revoked_certificate_verifies_nothing_and_stops_what_it_verified(env: Env) -> None:
    svc, m = env.svc, env.manufacturer
    verdict = _verify(svc, m)
    assert verdict.verified
    assert resign(
        svc, image_id=verdict.image_id, device_ids=[RTDS_DEVICE], force_replace=None
    ).images
    revoked = admin.revoke_manufacturer_certificate(
        svc.db, "121D", fingerprint=_fingerprint(m), reason="signing key stolen", now=PINNED
    )
    assert revoked.revoked_at == PINNED
    for call in (
        lambda: resign(
            svc, image_id=verdict.image_id, device_ids=[RTDS_DEVICE], force_replace=None
        ),
        lambda: _duis(svc, verdict.image_id, "01020304"),
    ):
        with pytest.raises(PolicyRefused) as err:
            call()
        text = str(err.value)
        assert "signing key stolen" in text and _fingerprint(m)[:16] in text, text
    again = _verify(svc, m)  # the same delivery, now
    assert not again.verified
    (check,) = [c for c in again.checks if c.name == "manufacturer_signature"]
    assert not check.passed
    assert "CN=Test Manufacturer 121D" in check.detail and "signing key stolen" in check.detail
    # the manufacturer's new certificate vouches for the image again: it is signed again
    renewed = _another(env.tmp, "renewed")
    assert admin.add_manufacturer_certificate(svc.db, 0x121D, renewed.certificate, PINNED)
    assert _verify(svc, renewed).verified
    assert resign(
        svc, image_id=verdict.image_id, device_ids=[RTDS_DEVICE], force_replace=None
    ).images


def test_a_revocation_stops_the_activation_of_what_it_verified(env: Env) -> None:
    """An SR 11.3 request issued before the revocation: its pre-command is signed no more."""
    svc, m = env.svc, env.manufacturer
    verdict = _verify(svc, m)
    built, refused = build_activations(
        svc, ActivationSpec(image_id=verdict.image_id), [RTDS_DEVICE]
    )
    assert len(built) == 1, refused
    pre = cs06_pre_command(
        originator=SUPPLIER_EUI,
        recipient=RTDS_DEVICE,
        counter=built[0].request_id.counter,
        firmware_hash=hashlib.sha256(IMAGE).digest(),
    )
    admin.revoke_manufacturer_certificate(
        svc.db, "121D", fingerprint=_fingerprint(m), reason="signing key stolen", now=PINNED
    )
    [result] = sign_pre_command_batch(svc, [pre], accept_unauthenticated=True)
    assert isinstance(result, PreCommandRefusal), result
    assert result.code == "pre_command_image_not_trusted"
    assert "signing key stolen" in result.reason
    with pytest.raises(PreCommandRefused):
        sign_pre_command_for(svc, pre_command=pre, accept_unauthenticated=True)


def test_a_revocation_counts_from_its_time_on(env: Env) -> None:
    svc, m = env.svc, env.manufacturer
    verdict = _verify(svc, m)
    # given in another zone than UTC: the same instant, however the database keeps times
    at = (PINNED + dt.timedelta(days=1)).astimezone(dt.timezone(dt.timedelta(hours=1)))
    admin.revoke_manufacturer_certificate(
        svc.db, "121D", serial=str(m.certificate.serial_number), reason="ends", at=at, now=PINNED
    )
    assert resign(
        svc, image_id=verdict.image_id, device_ids=[RTDS_DEVICE], force_replace=None
    ).images
    later = replace(svc, clock=lambda: at + dt.timedelta(seconds=1))
    with pytest.raises(PolicyRefused, match="ends"):
        resign(later, image_id=verdict.image_id, device_ids=[RTDS_DEVICE], force_replace=None)
    assert not _verify(later, m).verified


def test_an_image_verified_before_the_library_recorded_its_certificate(env: Env) -> None:
    """Failing closed: any revoked certificate of its code might have been the one."""
    svc, m = env.svc, env.manufacturer
    verdict = _verify(svc, m)
    execute(
        env.db_url,
        "UPDATE firmware_images SET manufacturer_fingerprint = NULL WHERE image_id = ?",
        verdict.image_id,
    )
    assert resign(
        svc, image_id=verdict.image_id, device_ids=[RTDS_DEVICE], force_replace=None
    ).images
    other = _another(env.tmp, "other")
    admin.add_manufacturer_certificate(svc.db, 0x121D, other.certificate, PINNED)
    admin.revoke_manufacturer_certificate(
        svc.db, "121D", fingerprint=_fingerprint(other), reason="retired", now=PINNED
    )
    with pytest.raises(PolicyRefused, match="verify the delivery again"):
        resign(svc, image_id=verdict.image_id, device_ids=[RTDS_DEVICE], force_replace=None)
    assert _verify(svc, m).verified  # re-verified: the library now names m's certificate
    assert resign(
        svc, image_id=verdict.image_id, device_ids=[RTDS_DEVICE], force_replace=None
    ).images


def test_an_image_deleted_from_the_library_is_no_longer_signed(env: Env) -> None:
    """Deleted by another process (SQL here) after this one cached the image: the deletion
    moves the trust generation, and the next call reads the library again."""
    svc, m = env.svc, env.manufacturer
    verdict = _verify(svc, m)
    assert resign(
        svc, image_id=verdict.image_id, device_ids=[RTDS_DEVICE], force_replace=None
    ).images
    execute(env.db_url, "DELETE FROM firmware_images WHERE image_id = ?", verdict.image_id)
    with pytest.raises(PolicyRefused, match="no longer in the firmware library"):
        resign(svc, image_id=verdict.image_id, device_ids=[RTDS_DEVICE], force_replace=None)


def _another(tmp: Path, name: str) -> Manufacturer:
    """A second key and certificate of the same manufacturer (its PEM in a folder of its own)."""
    (tmp / name).mkdir()
    return new_manufacturer(tmp / name)


# -- end to end: the server, and the CLI beside it ---------------------------------------------


def test_revocation_by_the_cli_stops_the_running_server(
    hsm: Hsm, vectors: Path, tmp_path: Path
) -> None:
    m = new_manufacturer(tmp_path)
    with running_server(hsm, vectors, m, tmp_path) as running:
        config = str(running.server.config)
        image_id = running.verify(m, IMAGE)
        with pytest.raises(grpc.RpcError) as wrong:
            running.stub.BuildDUIS(
                pb.BuildDUISRequest(
                    image_id=image_id, device_ids=[RTDS_DEVICE], firmware_version="00000007"
                )
            )
        assert wrong.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "firmware_version" in (wrong.value.details() or "")
        built = running.stub.BuildDUIS(
            pb.BuildDUISRequest(
                image_id=image_id, device_ids=[RTDS_DEVICE], firmware_version="01020304"
            )
        )
        assert duis_fields(built.duis_request)["FirmwareVersion"] == "01020304"

        out = signer(
            "manufacturers",
            "revoke",
            "121d",
            "--fingerprint",
            _fingerprint(m),
            "--reason",
            "compromised HSM",
            "--config",
            config,
        ).stdout
        assert "revoked from 2024-06-01T12:00:00Z" in out
        with pytest.raises(grpc.RpcError) as refused:
            running.stub.Resign(pb.ResignRequest(image_id=image_id, device_ids=[RTDS_DEVICE]))
        assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "compromised HSM" in (refused.value.details() or "")
        verdict = verify_separate(running.stub, m, IMAGE)
        assert not verdict.verified
        assert any("compromised HSM" in c.detail for c in verdict.checks if not c.passed)

        listed = json.loads(signer("manufacturers", "list", "--json", "--config", config).stdout)[
            "manufacturers"
        ]
        assert [(c["code"], c["state"], c["reason"]) for c in listed] == [
            ("121D", "revoked", "compromised HSM")
        ]
        assert listed[0]["fingerprint"] == _fingerprint(m)
        text = signer("manufacturers", "list", "--config", config).stdout
        assert "121D  CN=Test Manufacturer 121D" in text and "revoked" in text
        again = signer(
            "manufacturers",
            "revoke",
            "121D",
            "--serial",
            str(m.certificate.serial_number),
            "--reason",
            "twice",
            "--config",
            config,
            check=False,
        )
        assert again.returncode == 1 and "already revoked" in again.stderr
        assert "Traceback" not in again.stderr
        trail = signer("audit", "verify", "--config", config, check=False)
        assert trail.returncode == 0, trail.stderr
