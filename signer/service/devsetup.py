"""The development default: a SoftHSM2 token, keys, certificates and devices that match.

Everything here is for a developer's machine: the Supplier keys are generated inside the
token with self-issued SMKI-profile certificates; the manufacturer key is the manufacturer's
(it lives in a file, as it would at the manufacturer) and signs an example delivery.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from signer.config import load_config
from signer.cpl.parse import read_csv
from signer.errors import ConfigurationError
from signer.gbcs.eui import Eui64
from signer.gbcs.ota import OtaHeader
from signer.gbcs.roles import RemotePartyRole
from signer.gbcs.trust_anchor import (
    CellUsage,
    DeviceCredentials,
    KeyUsage,
    RoleCredentials,
    TrustAnchorCell,
)
from signer.registry import cpl, devices
from signer.service import admin
from signer.service.keys import lifecycle as keys
from signer.service.services import open_services
from signer.smki.lifecycle import KeyPurpose

DEV_TOKEN_LABEL = "signer-dev"  # noqa: S105 (a label, not a secret)
DEV_SUPPLIER_EUI = Eui64.parse("90-B3-D5-1F-30-01-00-00")
DEV_MANUFACTURER_CODE = 0x121D
DEV_DEVICES = tuple(Eui64.parse(f"00-DB-12-34-56-78-90-{i:02X}") for i in (0xB1, 0xB2, 0xB3))
# B1 and B2 run DEV-1.0, from which the example image (DEV-2.0) may be installed; B3 runs the
# older DEV-0.9 and must go through DEV-1.0 first.
DEV_CURRENT_ENTRIES = ("DEV-1.0", "DEV-1.0", "DEV-0.9")


@dataclass(frozen=True)
class DevEnvironment:
    directory: Path
    config_path: Path
    softhsm2_conf: Path


def provision(
    directory: Path,
    *,
    module: str,
    schema_dir: Path | None,
    database_url: str | None = None,
    listen: str = "127.0.0.1:50051",
    metrics_listen: str = "127.0.0.1:9464",
    now: dt.datetime | None = None,
    actor: str = "signer dev provision",
) -> DevEnvironment:
    """Provision (once) the token that ``softhsm/init-token DIR signer-dev`` made in ``directory``.

    Generates the Supplier keys inside it, registers the development manufacturer and devices
    in a SQLite database beside it, and writes the service configuration.
    """
    directory = directory.resolve()
    env = DevEnvironment(directory, directory / "signer.toml", directory / "softhsm2.conf")
    if env.config_path.exists():
        return env
    pin_file = directory / "user.pin"
    if not env.softhsm2_conf.exists() or not pin_file.exists():
        raise ConfigurationError(
            f"no SoftHSM2 token in {directory}: run "
            f"`softhsm/init-token {directory} {DEV_TOKEN_LABEL}` first"
        )
    now = now or dt.datetime.now(dt.UTC)
    db_url = database_url or f"sqlite:///{directory / 'signer.db'}"
    schema_line = f'schema_dir = "{schema_dir.resolve()}"\n' if schema_dir else ""
    partial = env.config_path.with_suffix(".partial")
    partial.touch(mode=0o600)  # a database URL may carry a password
    partial.write_text(
        "# Development configuration written by `signer dev provision`.\n"
        f"[server]\nlisten = {_toml_string(listen)}\n"
        "# development only: plaintext gRPC, no client certificates, every call allowed\n"
        "dev_mode = true\n\n"
        f"[metrics]\nlisten = {_toml_string(metrics_listen)}\n\n"
        f'[token]\nmodule = "{module}"\nlabel = "{DEV_TOKEN_LABEL}"\n'
        f'pin_file = "{pin_file}"\nsofthsm2_conf = "{env.softhsm2_conf}"\n\n'
        f'[supplier]\neui = "{DEV_SUPPLIER_EUI}"\n\n'
        f"[database]\nurl = {_toml_string(db_url)}\n\n[duis]\n{schema_line}"
    )
    svc = open_services(load_config(partial))
    try:
        start, end = now - dt.timedelta(days=1), now + dt.timedelta(days=730)
        for label, purpose in (
            ("supplier-ds", KeyPurpose.SUPPLIER_DS),
            ("xml-sign", KeyPurpose.XML_SIGN),
        ):
            keys.generate(svc, label, purpose, actor=actor)
            keys.self_certify(svc, label, not_before=start, not_after=end, actor=actor)
            keys.activate(svc, label, actor=actor)
        supplier_ski = svc.token.find(label="supplier-ds").ski
        db = svc.db
        mfr_cert = _manufacturer(directory / "manufacturer", now)
        admin.add_manufacturer_certificate(db, DEV_MANUFACTURER_CODE, mfr_cert, now)
        assert supplier_ski is not None
        for eui in DEV_DEVICES:
            devices.store_credentials(db, _device_credentials(eui, supplier_ski), now)
        example = example_delivery(directory)
        image_hash = bytes.fromhex((example / "hash.hex").read_text().strip())
        cpl_file = directory / "cpl.csv"
        cpl_file.write_text(dev_cpl_csv(image_hash))
        report = cpl.import_entries(db, read_csv(cpl_file.read_text().splitlines()), now)
        assert report.applied, report.errors
        for eui, entry in zip(DEV_DEVICES, DEV_CURRENT_ENTRIES, strict=True):
            devices.set_inventory(
                db,
                eui,
                device_type="ESME",
                hardware_version=0x0001,
                current_entry_id=entry,
                now=now,
            )
    finally:
        svc.close()
    partial.rename(env.config_path)  # last: its presence says "provisioned"
    return env


def _toml_string(value: str) -> str:
    """A TOML basic string: JSON's escaping is a subset TOML accepts."""
    return json.dumps(value)


def dev_cpl_csv(example_hash: bytes) -> str:
    """A small CPL for the dev model: 0.9 -> 1.0 -> 2.0 (the example delivery's image)."""
    rows = [
        ("DEV-0.9", "00000000", hashlib.sha256(b"DEV 0.9").hexdigest(), "N/A"),
        ("DEV-1.0", "00000001", hashlib.sha256(b"DEV 1.0").hexdigest(), "DEV-0.9"),
        ("DEV-2.0", "00000002", example_hash.hex(), "DEV-1.0"),
    ]
    head = (
        "entry_id,manufacturer_code,device_type,model,image_type,hardware_version,"
        "firmware_version,image_hash,upgrade_from,zigbee_chipset_vendor,"
        "zigbee_stack_version,band_join_option\n"
    )
    return head + "".join(
        f"{eid},{DEV_MANUFACTURER_CODE:04X},ESME,DEV-ESME,0001,0001,{ver},{h},{pred},,,\n"
        for eid, ver, h, pred in rows
    )


def example_delivery(directory: Path, *, image: bytes | None = None) -> Path:
    """Write a manufacturer delivery in the separate-elements shape, signed by the dev key."""
    mdir = directory / "manufacturer"
    key = serialization.load_pem_private_key((mdir / "key.pem").read_bytes(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    image = image or (b"DEV firmware image " * 64)
    header = OtaHeader(
        header_version=0x0100,
        header_length=56,
        field_control=0,
        manufacturer_code=DEV_MANUFACTURER_CODE,
        image_type=0x0001,
        file_version=0x00000002,
        zigbee_stack_version=0x0002,
        header_string=b"signer development image".ljust(32, b"\0"),
        total_image_size=56 + len(image) + 66,
        security_credential_version=None,
        upgrade_file_destination=None,
        min_hardware_version=None,
        max_hardware_version=None,
    ).to_bytes()
    out = directory / "example"
    out.mkdir(exist_ok=True)
    (out / "ota_header.bin").write_bytes(header)
    (out / "manufacturer_image.bin").write_bytes(image)
    (out / "manufacturer_signature.der").write_bytes(
        key.sign(header + image, ec.ECDSA(hashes.SHA256()))
    )
    (out / "hash.hex").write_text(hashlib.sha256(image).hexdigest() + "\n")
    return out


def _manufacturer(mdir: Path, now: dt.datetime) -> x509.Certificate:
    mdir.mkdir(exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "DEV manufacturer 121D")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=730))
        .sign(key, hashes.SHA256())
    )
    key_path = mdir / "key.pem"
    key_path.touch(mode=0o600)
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    (mdir / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert


def _device_credentials(eui: Eui64, supplier_ski: bytes) -> DeviceCredentials:
    cell = TrustAnchorCell(
        role=int(RemotePartyRole.SUPPLIER),
        key_usage=KeyUsage.DIGITAL_SIGNATURE,
        cell_usage=CellUsage.MANAGEMENT,
        subject_eui=DEV_SUPPLIER_EUI,
        ski=supplier_ski,
    )
    return DeviceCredentials(
        device=eui,
        roles=(
            RoleCredentials(
                role=int(RemotePartyRole.SUPPLIER), status=0, sequence_number=0, cells=(cell,)
            ),
        ),
    )
