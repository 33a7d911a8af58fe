"""A full key rotation, run as a security team runs it: the `signer keys` commands against a
real token, a running server signing for devices split across two Supplier keys, and
independent checks (cryptography, openssl, pkcs11-tool) of what came out."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from signer.api._proto.signer.v1 import signer_pb2 as pb
from signer.api._proto.signer.v1 import signer_pb2_grpc as pb_grpc
from signer.limits import CHANNEL_OPTIONS
from signer.registry import devices
from signer.registry.db import Database, open_database
from signer.service import admin
from tests.support.cli import signer
from tests.support.constants import MANUFACTURER_CODE, PINNED, SUPPLIER_EUI
from tests.support.devices import credentials
from tests.support.hsm import MODULE, TOKEN_LABEL, Hsm
from tests.support.independent import raw_signature_verifies, split_upgrade_image
from tests.support.manufacturer import Manufacturer
from tests.support.server import start_server, verify_separate, write_config
from tests.support.smki_ca import TestCa, pem

OLD, NEW = "rot-old", "rot-new"
ON_OLD = [f"00-DB-00-00-00-00-0A-{i:02X}" for i in range(1, 4)]
ON_NEW = [f"00-DB-00-00-00-00-0B-{i:02X}" for i in range(1, 3)]
STALE = "00-DB-00-00-00-00-0C-01"


def _cells(db: Database, euis: list[str], ski: bytes) -> None:
    """Record the devices' 6.24.1 answer: their Supplier digital-signing cell names ``ski``."""
    for eui in euis:
        devices.store_credentials(db, credentials(eui, ski=ski), PINNED)


def _certify(ca: TestCa, label: str, config: Path, tmp: Path) -> x509.Certificate:
    """generate -> csr (checked by openssl) -> the CA issues -> install-cert -> activate."""
    signer(
        "keys", "generate", "--purpose", "supplier-ds", "--label", label, "--config", str(config)
    )
    csr_path = tmp / f"{label}.csr"
    signer(
        "keys",
        "csr",
        "--label",
        label,
        "--eui",
        SUPPLIER_EUI,
        "--cn",
        label,
        "--out",
        str(csr_path),
        "--config",
        str(config),
    )
    check = subprocess.run(
        ["openssl", "req", "-verify", "-noout", "-in", str(csr_path)],
        capture_output=True,
        text=True,
    )
    assert check.returncode == 0 and "verify OK" in check.stdout + check.stderr
    csr = x509.load_pem_x509_csr(csr_path.read_bytes())
    cert = ca.issue(csr)
    (tmp / f"{label}.pem").write_bytes(pem(cert))
    signer(
        "keys", "install-cert", "--label", label, str(tmp / f"{label}.pem"), "--config", str(config)
    )
    # a PKCS#11 URI names the key as well as its label does
    out = signer(
        "keys",
        "activate",
        "--label",
        f"pkcs11:token={TOKEN_LABEL};object={label}",
        "--config",
        str(config),
    ).stdout
    assert "is active" in out
    return cert


def _pkcs11_tool(hsm: Hsm, *args: str) -> subprocess.CompletedProcess[str]:
    pin = hsm.pin_file.read_text().strip()
    return subprocess.run(
        [
            "pkcs11-tool",
            "--module",
            MODULE,
            "--token-label",
            TOKEN_LABEL,
            "--login",
            "--pin",
            pin,
            *args,
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "SOFTHSM2_CONF": str(hsm.conf)},
    )


def test_a_full_rotation_from_the_command_line(
    hsm: Hsm, manufacturer: Manufacturer, tmp_path: Path
) -> None:
    if not subprocess.run(["which", "pkcs11-tool"], capture_output=True).returncode == 0:
        pytest.fail("pkcs11-tool is not installed (Debian package opensc)")
    ca = TestCa()
    ca.write(tmp_path / "ca.pem")
    db_url = f"sqlite:///{tmp_path / 'signer.db'}"
    config = write_config(
        tmp_path / "signer.toml",
        hsm,
        db_url,
        extra=f'\n[smki]\nissuers = ["{tmp_path / "ca.pem"}"]\n',
    )
    db = open_database(db_url)
    admin.add_manufacturer(
        db, f"{MANUFACTURER_CODE:04X}", manufacturer.cert_pem.read_bytes(), PINNED
    )

    old_cert, new_cert = (_certify(ca, OLD, config, tmp_path), _certify(ca, NEW, config, tmp_path))
    old_ski = old_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    new_ski = new_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    _cells(db, ON_OLD, old_ski)
    _cells(db, ON_NEW, new_ski)

    server = start_server(config, tmp_path / "server.log")
    try:
        stub = pb_grpc.FirmwareSignerStub(
            grpc.insecure_channel(server.address, options=CHANNEL_OPTIONS)
        )
        image = b"rotation firmware " * 30
        verdict = verify_separate(stub, manufacturer, image)
        assert verdict.verified

        # During the rotation each device is signed for with the key its cell names.
        resp = stub.Resign(pb.ResignRequest(image_id=verdict.image_id, device_ids=ON_OLD + ON_NEW))
        by_label = {i.key_label: i for i in resp.images}
        assert sorted(by_label) == [NEW, OLD] and not resp.refused
        for label, cert, group in ((OLD, old_cert, ON_OLD), (NEW, new_cert, ON_NEW)):
            assert list(by_label[label].device_ids) == group
            _, img, _, sig = split_upgrade_image(by_label[label].upgrade_image)
            assert img == image
            assert raw_signature_verifies(cert, img, sig), label
            assert not raw_signature_verifies(old_cert if cert is new_cert else new_cert, img, sig)

        # Back-office systems see the same keys over gRPC: public data only.
        listed = {k.label: k for k in stub.ListKeys(pb.ListKeysRequest()).keys}
        for label, cert, count in ((OLD, old_cert, 3), (NEW, new_cert, 2)):
            info = listed[label]
            assert (info.state, info.purpose, info.devices, info.role) == (
                "active",
                "supplier-ds",
                count,
                "02",
            )
            assert info.certificate_der == cert.public_bytes(serialization.Encoding.DER)
            assert info.not_after.ToDatetime().date() == cert.not_valid_after_utc.date()
            assert info.days_left == (cert.not_valid_after_utc - PINNED).days
        # public data only: exactly these fields, none of them key material
        assert set(pb.KeyInfo.DESCRIPTOR.fields_by_name) == {
            "label",
            "cka_id",
            "ski",
            "purpose",
            "state",
            "on_token",
            "role",
            "eui",
            "certificate_serial",
            "issuer",
            "not_before",
            "not_after",
            "days_left",
            "devices",
            "certificate_der",
        }

        rows = {
            r["label"]: r
            for r in json.loads(signer("keys", "list", "--json", "--config", str(config)).stdout)[
                "keys"
            ]
        }
        assert (rows[OLD]["devices"], rows[OLD]["state"], rows[OLD]["ski"]) == (
            3,
            "active",
            old_ski.hex(),
        )
        assert rows[OLD]["issuer"] == "CN=TESTCA,OU=07"  # as SMKI writes issuers
        # the names ListKeys gives the same values (README "Output"), bytes in hex
        assert set(pb.KeyInfo.DESCRIPTOR.fields_by_name) - {"certificate_der"} <= set(rows[OLD])
        assert (rows[OLD]["cka_id"], rows[OLD]["role"]) == (listed[OLD].cka_id.hex(), "02")
        assert rows[OLD]["certificate_serial"] == str(old_cert.serial_number)
        assert rows[OLD]["not_after"] == old_cert.not_valid_after_utc.isoformat().replace(
            "+00:00", "Z"
        )  # RFC 3339 with its zone
        table = signer("keys", "list", "--config", str(config)).stdout
        assert table.splitlines()[0].split()[:3] == ["LABEL", "CKA_ID", "SKI"]

        report = json.loads(
            signer(
                "keys",
                "rotation-report",
                "--from",
                OLD,
                "--to",
                NEW,
                "--json",
                "--config",
                str(config),
            ).stdout
        )
        assert report["still_on_old"] == ON_OLD and report["on_new"] == 2
        plain = signer(
            "keys", "rotation-report", "--from", OLD, "--to", NEW, "--config", str(config)
        )
        assert plain.stdout.split() == ON_OLD  # one device per line; the summary on stderr
        assert "3 device(s) still trust 'rot-old'" in plain.stderr

        # Retirement waits for the devices that still trust the old key, and names them.
        refused = signer("keys", "retire", "--label", OLD, "--config", str(config), check=False)
        assert refused.returncode == 1
        for eui in ON_OLD:
            assert eui in refused.stderr
        assert "3 registered device(s)" in refused.stderr

        # Their credentials are updated (SR 6.15.1), the new 6.24.1 answers recorded.
        _cells(db, ON_OLD, new_ski)
        assert (
            json.loads(
                signer(
                    "keys",
                    "rotation-report",
                    "--from",
                    OLD,
                    "--to",
                    NEW,
                    "--json",
                    "--config",
                    str(config),
                ).stdout
            )["still_on_old"]
            == []
        )
        signer("keys", "retire", "--label", OLD, "--config", str(config))

        # The retired key can no longer sign: the token itself refuses it ...
        old_id = rows[OLD]["cka_id"]
        digest = tmp_path / "digest.bin"
        digest.write_bytes(hashlib.sha256(b"after retirement").digest())
        attempt = _pkcs11_tool(
            hsm,
            "--sign",
            "--id",
            old_id,
            "--mechanism",
            "ECDSA",
            "--input-file",
            str(digest),
            "--output-file",
            str(tmp_path / "sig.bin"),
        )
        assert attempt.returncode != 0, attempt.stdout
        assert "CKR_KEY_FUNCTION_NOT_PERMITTED" in attempt.stdout + attempt.stderr
        control = _pkcs11_tool(
            hsm,
            "--sign",
            "--id",
            rows[NEW]["cka_id"],
            "--mechanism",
            "ECDSA",
            "--input-file",
            str(digest),
            "--output-file",
            str(tmp_path / "sig.bin"),
        )
        assert control.returncode == 0, control.stderr  # the same command, the active key
        # ... and the server refuses a device that still names it, from the next call on
        # (the retirement moved the trust generation the server's caches read).
        _cells(db, [STALE], old_ski)
        resp = stub.Resign(
            pb.ResignRequest(image_id=verdict.image_id, device_ids=[*ON_OLD, *ON_NEW, STALE])
        )
        assert [i.key_label for i in resp.images] == [NEW]
        assert list(resp.images[0].device_ids) == ON_OLD + ON_NEW
        assert [(r.device_id, r.reason) for r in resp.refused] == [(STALE, "key_not_active")]
        assert "retired" in resp.refused[0].detail
        _, img, _, sig = split_upgrade_image(resp.images[0].upgrade_image)
        assert raw_signature_verifies(new_cert, img, sig)

        # Retirement is final.
        again = signer("keys", "activate", "--label", OLD, "--config", str(config), check=False)
        assert again.returncode == 1 and "retired" in again.stderr
    finally:
        assert server.stop() == 0

    # Every key operation is on record with who ran it, refusals included.
    ops = json.loads(signer("keys", "operations", "--json", "--config", str(config)).stdout)[
        "operations"
    ]
    mine = [
        (o["operation"], o["key_label"], o["outcome"]) for o in ops if o["key_label"] in (OLD, NEW)
    ]
    for label in (OLD, NEW):
        for step in ("generate", "csr", "install-cert", "activate"):
            assert (step, label, "ok") in mine
    assert ("retire", OLD, "refused") in mine and ("retire", OLD, "ok") in mine
    assert ("disable-signing", OLD, "ok") in mine
    assert ("activate", OLD, "refused") in mine
    assert all(o["actor"].startswith("cli:") for o in ops if o["key_label"] in (OLD, NEW))
    assert all(o["at"].endswith("Z") for o in ops)  # RFC 3339, UTC
    lines = signer("keys", "operations", "--config", str(config)).stdout.splitlines()
    assert lines[0].split() == ["AT", "ACTOR", "OPERATION", "KEY", "OUTCOME", "REASON"]
    pin = hsm.pin_file.read_text().strip()
    assert pin not in (tmp_path / "server.log").read_text()
