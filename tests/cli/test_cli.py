"""The command line as a user runs it: separate processes, files in and out."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from signer.smki.certificate import smki_key_identifier
from tests.support.certificates import self_signed
from tests.support.cli import signer
from tests.support.constants import RTDS_DEVICE
from tests.support.dcc import DccKey, dcc_section
from tests.support.hsm import Hsm
from tests.support.independent import (
    assert_schema_valid,
    duis_fields,
    ota_header,
    raw_signature_verifies,
    split_upgrade_image,
    xmlsec1_verify,
)
from tests.support.manufacturer import Manufacturer
from tests.support.server import Running, write_config


def test_help_names_every_command() -> None:
    out = signer("--help").stdout
    for cmd in (
        "serve",
        "keys",
        "manufacturers",
        "devices",
        "verify",
        "resign",
        "build-duis",
        "dev",
    ):
        assert cmd in out
    assert "--label" in signer("keys", "import", "--help").stdout
    keys_help = signer("keys", "--help").stdout
    for cmd in (
        "generate",
        "csr",
        "install-cert",
        "activate",
        "retire",
        "list",
        "rotation-report",
        "operations",
        "import",
    ):
        assert cmd in keys_help
    assert "PKCS#11 URI" in signer("keys", "retire", "--help").stdout


def test_keys_import_and_list_never_print_the_pin(hsm: Hsm, tmp_path: Path) -> None:
    config = write_config(tmp_path / "signer.toml", hsm, f"sqlite:///{tmp_path / 'db.sqlite'}")
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    ski = smki_key_identifier(key.public_key())  # the SMKI rule: method 2 of its own key
    (tmp_path / "bad.pem").write_bytes(
        self_signed(
            key,
            "cli import",
            now,
            now + dt.timedelta(days=1),
            extensions=[(x509.SubjectKeyIdentifier(bytes.fromhex("0102030405060708")), False)],
        ).public_bytes(serialization.Encoding.PEM)
    )
    cert = self_signed(
        key,
        "cli import",
        now,
        now + dt.timedelta(days=1),
        serial=7,
        extensions=[(x509.SubjectKeyIdentifier(ski), False)],
    )
    (tmp_path / "k.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    (tmp_path / "c.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    imported = signer(
        "keys",
        "import",
        "--label",
        "cli-imported",
        "--key",
        str(tmp_path / "k.pem"),
        "--cert",
        str(tmp_path / "c.pem"),
        "--purpose",
        "supplier-ds",
        "--config",
        str(config),
    )
    assert f"CKA_ID {ski.hex()}: pending" in imported.stdout
    unbound = signer(
        "keys",
        "import",
        "--label",
        "cli-unbound",
        "--key",
        str(tmp_path / "k.pem"),
        "--cert",
        str(tmp_path / "bad.pem"),
        "--purpose",
        "supplier-ds",
        "--config",
        str(config),
        check=False,
    )
    assert unbound.returncode == 1 and "Traceback" not in unbound.stderr
    assert "0102030405060708 is not the RFC 5280 method-2 identifier" in unbound.stderr
    again = signer(
        "keys",
        "import",
        "--label",
        "cli-imported",
        "--key",
        str(tmp_path / "k.pem"),
        "--cert",
        str(tmp_path / "c.pem"),
        "--purpose",
        "supplier-ds",
        "--config",
        str(config),
        check=False,
    )
    assert again.returncode == 1 and "already exists" in again.stderr
    listed = signer("keys", "list", "--json", "--config", str(config))
    rows = json.loads(listed.stdout)["keys"]  # one document
    row = next(r for r in rows if r["label"] == "cli-imported")
    assert {
        "label": "cli-imported",
        "cka_id": ski.hex(),
        "ski": ski.hex(),
        "state": "pending",
        "purpose": "supplier-ds",
    }.items() <= row.items()
    pin = hsm.pin_file.read_text().strip()
    for proc in (imported, again, listed):
        assert pin not in proc.stdout + proc.stderr


def test_device_import_from_hex_base64_and_duis_xml(
    hsm: Hsm, vectors: Path, dcc: DccKey, tmp_path: Path
) -> None:
    """Raw GBCS only with --unauthenticated-gbcs; DUIS XML only signed by a [dcc] cert."""
    config = write_config(
        tmp_path / "signer.toml",
        hsm,
        f"sqlite:///{tmp_path / 'db.sqlite'}",
        extra=dcc_section(dcc),
    )
    hex_file = vectors / "trust_anchor/CS02aMAC_6.24.1_SUCCESS_RESPONSE_GBCS.HEX"
    xml_file = vectors / "trust_anchor/illustration_DUIS_6.24.1_response_envelope.xml"
    signed_file = tmp_path / "signed.xml"
    signed_file.write_bytes(dcc.sign(xml_file.read_bytes(), tmp_path))
    b64_file = tmp_path / "payload.b64"
    import base64

    b64_file.write_text(base64.b64encode(bytes.fromhex(hex_file.read_text().strip())).decode())
    raw = signer("devices", "import", str(hex_file), "--config", str(config), check=False)
    assert raw.returncode == 1 and "Traceback" not in raw.stderr
    assert str(hex_file) in raw.stderr  # the file, then the field and why
    assert "credentials: raw GBCS is not authenticated" in raw.stderr
    unsigned = signer("devices", "import", str(xml_file), "--config", str(config), check=False)
    assert unsigned.returncode == 1 and "dcc_response: unsigned" in unsigned.stderr
    flag = "--unauthenticated-gbcs"
    first = signer("devices", "import", flag, str(hex_file), "--config", str(config))
    assert f"{RTDS_DEVICE}: added" in first.stdout
    for args in ((flag, str(b64_file)), (str(signed_file),)):
        assert (
            f"{RTDS_DEVICE}: updated"
            in signer("devices", "import", *args, "--config", str(config)).stdout
        )
    exported = signer("audit", "export", "--config", str(config)).stdout.splitlines()
    imports = [json.loads(line) for line in exported]
    assert [(r["operation"], r["details"]["dcc_authenticated"]) for r in imports] == [
        ("device-import", False),
        ("device-import", False),
        ("device-import", True),
    ]
    assert imports[2]["details"]["dcc_signer"] == f"CN=Test DCC,OU=07 / {dcc.cert.serial_number}"
    assert all(r["client"].startswith("cli:") for r in imports)
    assert imports[0]["method"] == "signer devices import"
    assert imports[0]["details"]["device"] == RTDS_DEVICE
    shown = json.loads(
        signer("devices", "show", RTDS_DEVICE, "--json", "--config", str(config)).stdout
    )
    z1 = x509.load_pem_x509_certificate((vectors / "certs/Z1-supplier-ds.pem").read_bytes())
    z1_ski = z1.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    supplier_ds = [
        c for c in shown["cells"] if c["role"] == "02" and c["key_usage"] == "digitalSignature"
    ]
    assert [c["ski"] for c in supplier_ds] == [z1_ski.hex()]
    bad = tmp_path / "bad.hex"
    bad.write_text("DF0901")
    failed = signer("devices", "import", flag, str(bad), "--config", str(config), check=False)
    assert failed.returncode == 1 and f"Error: {bad}: " in failed.stderr
    # issue 13: all or nothing, every bad file named
    other = tmp_path / "other.hex"
    other.write_bytes(b"\xff\xfe")
    mixed = signer(
        "devices",
        "import",
        flag,
        str(bad),
        str(hex_file),
        str(other),
        "--config",
        str(config),
        check=False,
    )
    assert mixed.returncode == 1 and "Traceback" not in mixed.stderr
    assert f"Error: {bad}: " in mixed.stderr and f"Error: {other}: " in mixed.stderr
    assert "2 bad files: none was imported" in mixed.stderr and "updated" not in mixed.stdout
    missing = signer(
        "devices", "show", "00-00-00-00-00-00-00-01", "--config", str(config), check=False
    )
    assert missing.returncode == 5 and "not registered" in missing.stderr  # README "Exit codes"


def test_manufacturers_add_is_idempotent(
    hsm: Hsm, manufacturer: Manufacturer, tmp_path: Path
) -> None:
    config = write_config(tmp_path / "signer.toml", hsm, f"sqlite:///{tmp_path / 'db.sqlite'}")
    args = (
        "manufacturers",
        "add",
        "--code",
        "121d",
        "--cert",
        str(manufacturer.cert_pem),
        "--config",
        str(config),
    )
    assert "certificate added" in signer(*args).stdout
    assert "already registered" in signer(*args).stdout
    assert json.loads(signer(*args, "--json").stdout) == {"code": "121D", "added": False}
    [listed] = json.loads(
        signer("manufacturers", "list", "--json", "--config", str(config)).stdout
    )["manufacturers"]
    assert listed["code"] == "121D" and listed["state"] == "trusted"
    assert listed["not_after"].endswith("Z") and listed["added_at"].endswith("Z")  # RFC 3339
    assert (
        "121D  CN=Test Manufacturer 121D"
        in signer("manufacturers", "list", "--config", str(config)).stdout
    )
    bad = signer(
        "manufacturers",
        "add",
        "--code",
        "XYZ",
        "--cert",
        str(manufacturer.cert_pem),
        "--config",
        str(config),
        check=False,
    )
    assert bad.returncode == 1 and "code" in bad.stderr


def test_client_commands_drive_the_three_calls(
    running: Running, manufacturer: Manufacturer, tmp_path: Path
) -> None:
    image = b"CLI firmware " * 50
    header = ota_header(len(image))
    (tmp_path / "h.bin").write_bytes(header)
    (tmp_path / "i.bin").write_bytes(image)
    (tmp_path / "s.der").write_bytes(manufacturer.sign(header + image))
    (tmp_path / "hash.hex").write_text(hashlib.sha256(image).hexdigest() + "\n")
    server = ("--server", running.server.address)
    verdict = signer(
        "verify",
        "--ota-header",
        str(tmp_path / "h.bin"),
        "--manufacturer-image",
        str(tmp_path / "i.bin"),
        "--signature",
        str(tmp_path / "s.der"),
        "--hash",
        str(tmp_path / "hash.hex"),
        "--out",
        str(tmp_path / "v.json"),
        *server,
    )
    assert "VERIFIED" in verdict.stdout
    image_id = json.loads((tmp_path / "v.json").read_text())["image_id"]
    assert image_id == hashlib.sha256(image).hexdigest()

    out = tmp_path / "out"
    some_refused = signer(
        "resign",
        "--image-id",
        image_id,
        "--device",
        f"{RTDS_DEVICE},00-DB-12-34-56-78-90-FE",
        "--out-dir",
        str(out),
        *server,
        check=False,
    )
    assert some_refused.returncode == 4, some_refused.stderr  # done, some devices refused
    assert "refused 00-DB-12-34-56-78-90-FE: unknown_device: " in some_refused.stdout
    result = json.loads((out / "result.json").read_text())
    assert result["refused"][0]["reason"] == "unknown_device"
    upgrade = (out / "z1-supplier-ds.bin").read_bytes()
    z1 = x509.load_pem_x509_certificate((running.vectors / "certs/Z1-supplier-ds.pem").read_bytes())
    _, img, _, sig = split_upgrade_image(upgrade)
    assert img == image and raw_signature_verifies(z1, image, sig)

    (tmp_path / "devices.txt").write_text(f"{RTDS_DEVICE}\n")
    signer(
        "build-duis",
        "--upgrade-image",
        str(out / "z1-supplier-ds.bin"),
        "--devices-file",
        str(tmp_path / "devices.txt"),
        "--firmware-version",
        "01020304",
        "--out",
        str(tmp_path / "req.xml"),
        *server,
    )
    doc = (tmp_path / "req.xml").read_bytes()
    assert duis_fields(doc)["FirmwareVersion"] == "01020304"
    assert_schema_valid(doc, running.vectors / "xsd")
    xml_cert = x509.load_pem_x509_certificate(
        (running.vectors / "certs/xml-sign-90B3D51F30010000-ds.pem").read_bytes()
    )
    assert xmlsec1_verify(doc, xml_cert, tmp_path).returncode == 0

    refused = signer(
        "resign",
        "--image-id",
        "00" * 32,
        "--device",
        RTDS_DEVICE,
        "--out-dir",
        str(out),
        *server,
        check=False,
    )
    assert refused.returncode == 5 and "Error: not found: " in refused.stderr
