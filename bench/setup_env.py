"""Provision a throwaway benchmark environment: token, keys, SQLite DB, devices, config.

Run as its own process (``python bench/setup_env.py DIR --devices N``) so the benchmark
driver never has the PKCS#11 module loaded while the token is being built; prints one JSON
line describing what it made.

Self-contained on purpose (the development provisioning in signer.service.devsetup is a moving
target): a fresh SoftHSM2 token via ``softhsm2-util``; a Supplier ARP key and an XML-signing
key generated inside it, each with a self-issued SMKI-profile certificate valid from yesterday
(so the server needs no pinned clock); a manufacturer key in a file; and ``N + 1`` devices
written straight into the ``devices`` / ``trust_anchor_cells`` tables with batched SQLAlchemy
Core inserts (``store_credentials`` in a loop is slow for 50,000), each with a Supplier
digital-signing management cell naming the Supplier key's SKI. ``--db-url`` puts the
registry in another database (bench/replicas.py: a throwaway PostgreSQL) instead of SQLite.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import secrets
import subprocess
import sys
from pathlib import Path
from typing import cast

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import Table, insert

from signer.config import load_config
from signer.gbcs.eui import Eui64
from signer.gbcs.roles import RemotePartyRole
from signer.gbcs.trust_anchor import CellUsage, KeyUsage
from signer.hsm.token import TokenKey
from signer.registry.db import open_database
from signer.registry.models import Device, TrustAnchorCellRow
from signer.service import admin
from signer.service.keys import lifecycle as keys
from signer.service.services import Services, open_services
from signer.smki.lifecycle import KeyPurpose

MODULE = "/usr/lib/softhsm/libsofthsm2.so"
TOKEN_LABEL = "signer-bench"
SUPPLIER_EUI = Eui64.parse("90-B3-D5-1F-30-01-00-00")
MANUFACTURER_CODE = 0x121D
SUPPLIER_KEY_LABEL = "supplier-ds"
XML_KEY_LABEL = "xml-sign"
SMALL_DEVICE = "00-DB-12-34-56-78-90-B1"
#: every device's inventory: an ESME on CPL entry BENCH-2 (`import_cpl` adds the targets)
INVENTORY = {"device_type": "ESME", "hardware_version": 1, "current_entry_id": "BENCH-2"}
CPL_MODEL = "BENCH-M1"


def bulk_device_euis(n: int) -> list[str]:
    """``n`` distinct dashed EUI-64s, disjoint from SMALL_DEVICE."""
    return [
        f"00-DB-00-00-00-{i >> 16 & 0xFF:02X}-{i >> 8 & 0xFF:02X}-{i & 0xFF:02X}" for i in range(n)
    ]


def init_token(d: Path) -> tuple[Path, Path]:
    (d / "tokens").mkdir(parents=True)
    conf = d / "softhsm2.conf"
    conf.write_text(
        f"directories.tokendir = {d / 'tokens'}\nobjectstore.backend = file\n"
        "log.level = ERROR\nslots.removable = false\n"
    )
    pin_file = d / "user.pin"
    pin_file.touch(mode=0o600)
    pin_file.write_text(secrets.token_hex(8) + "\n")
    os.environ["SOFTHSM2_CONF"] = str(conf)
    # softhsm2-util takes PINs only as arguments: a throwaway benchmark token.
    subprocess.run(
        [
            "softhsm2-util",
            "--init-token",
            "--free",
            "--label",
            TOKEN_LABEL,
            "--so-pin",
            secrets.token_hex(8),
            "--pin",
            pin_file.read_text().strip(),
        ],
        check=True,
        capture_output=True,
    )
    return conf, pin_file


def token_key(svc: Services, label: str, purpose: KeyPurpose, now: dt.datetime) -> TokenKey:
    """Generated, self-certified and activated through the key lifecycle use cases."""
    keys.generate(svc, label, purpose, actor="bench")
    keys.self_certify(
        svc,
        label,
        not_before=now - dt.timedelta(days=1),
        not_after=now + dt.timedelta(days=30),
        actor="bench",
        issuer_cn="BENCH",
    )
    keys.activate(svc, label, actor="bench")
    return svc.token.find(label=label)


def manufacturer(d: Path, now: dt.datetime) -> tuple[Path, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "BENCH manufacturer 121D")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    path = d / "manufacturer.key.pem"
    path.touch(mode=0o600)
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return path, cert


DEVICES = cast(Table, Device.__table__)
CELLS = cast(Table, TrustAnchorCellRow.__table__)


def add_devices(db_url: str, euis: list[str], ski_hex: str, now: dt.datetime) -> None:
    db = open_database(db_url)
    batch = 10_000
    with db.engine.begin() as conn:
        for i in range(0, len(euis), batch):
            chunk = [e.replace("-", "") for e in euis[i : i + batch]]
            conn.execute(
                insert(DEVICES), [{"eui": e, "updated_at": now, **INVENTORY} for e in chunk]
            )
            conn.execute(insert(CELLS), supplier_cells(chunk, ski_hex))
    db.dispose()


def import_cpl(db_url: str, targets: dict[str, tuple[int, bytes]]) -> None:
    """A strict CPL, as production runs: BENCH-1 -> BENCH-2 -> each target entry, whose
    (file version, Manufacturer Image) is given, so the devices' pathway permits them."""
    from signer.cpl.parse import read_csv
    from signer.registry import cpl

    rows = [
        ("BENCH-1", 0, hashlib.sha256(b"BENCH-1").hexdigest(), "N/A"),
        ("BENCH-2", 1, hashlib.sha256(b"BENCH-2").hexdigest(), "BENCH-1"),
        *(
            (e, v, hashlib.sha256(image).hexdigest(), "BENCH-2")
            for e, (v, image) in targets.items()
        ),
    ]
    csv = [
        "entry_id,manufacturer_code,device_type,model,image_type,hardware_version,"
        "firmware_version,image_hash,upgrade_from,zigbee_chipset_vendor,"
        "zigbee_stack_version,band_join_option",
        *(
            f"{e},{MANUFACTURER_CODE:04X},ESME,{CPL_MODEL},0001,0001,{v:08X},{h},{p},,,"
            for e, v, h, p in rows
        ),
    ]
    db = open_database(db_url)
    try:
        report = cpl.import_entries(db, read_csv(csv), dt.datetime.now(dt.UTC))
    finally:
        db.dispose()
    if not report.applied:
        raise RuntimeError(f"CPL import failed: {report.errors}")


def supplier_cells(euis: list[str], ski_hex: str) -> list[dict[str, object]]:
    """Cell rows: each device's Supplier digital-signing management cell naming ``ski_hex``."""
    return [
        {
            "device_eui": e,
            "role": int(RemotePartyRole.SUPPLIER),
            "key_usage": KeyUsage.DIGITAL_SIGNATURE.value,
            "cell_usage": int(CellUsage.MANAGEMENT),
            "subject_eui": SUPPLIER_EUI.hex,
            "ski": ski_hex,
        }
        for e in euis
    ]


def write_config(d: Path, conf: Path, pin_file: Path, db_url: str, schema_dir: Path | None) -> Path:
    lines = [
        "[server]",
        'listen = "127.0.0.1:0"',
        "ephemeral_ports_for_tests = true",
        "dev_mode = true",
        "",
        "[metrics]",
        'listen = "127.0.0.1:0"',
        "",
        "[log]",
        'format = "text"',
        "",
        "[token]",
        f'module = "{MODULE}"',
        f'label = "{TOKEN_LABEL}"',
        f'pin_file = "{pin_file}"',
        f'softhsm2_conf = "{conf}"',
        "",
        "[supplier]",
        f'eui = "{SUPPLIER_EUI}"',
        "",
        "[database]",
        f'url = "{db_url}"',
        "",
        # the benchmarks send 50,000 devices per direct call: no campaign limit
        "[campaigns]",
        "direct_limit = 0",
        "",
    ]
    if schema_dir is not None:
        lines += ["[duis]", f'schema_dir = "{schema_dir}"', ""]
    path = d / "bench.toml"
    path.write_text("\n".join(lines))
    return path


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("directory", type=Path)
    ap.add_argument("--devices", type=int, default=50_000)
    ap.add_argument("--schema-dir", type=Path, default=None)
    ap.add_argument("--db-url", default=None, help="default: a SQLite file in DIRECTORY")
    args = ap.parse_args()
    d: Path = args.directory.resolve()
    d.mkdir(parents=True)
    now = dt.datetime.now(dt.UTC)

    conf, pin_file = init_token(d)
    db_url = args.db_url or f"sqlite:///{d / 'signer.db'}"
    config = write_config(d, conf, pin_file, db_url, args.schema_dir)
    svc = open_services(load_config(config))
    try:
        supplier = token_key(svc, SUPPLIER_KEY_LABEL, KeyPurpose.SUPPLIER_DS, now)
        token_key(svc, XML_KEY_LABEL, KeyPurpose.XML_SIGN, now)
        mkey, mcert = manufacturer(d, now)
        admin.add_manufacturer_certificate(svc.db, MANUFACTURER_CODE, mcert, now)
    finally:
        svc.close()
    assert supplier.ski is not None
    add_devices(db_url, [SMALL_DEVICE, *bulk_device_euis(args.devices)], supplier.ski.hex(), now)
    json.dump(
        {
            "directory": str(d),
            "config": str(config),
            "softhsm2_conf": str(conf),
            "module": MODULE,
            "token_label": TOKEN_LABEL,
            "pin_file": str(pin_file),
            "supplier_key_label": SUPPLIER_KEY_LABEL,
            "supplier_key_id": supplier.key_id.hex(),
            "supplier_ski": supplier.ski.hex(),
            "manufacturer_key": str(mkey),
            "manufacturer_code": MANUFACTURER_CODE,
            "db_url": db_url,
            "small_device": SMALL_DEVICE,
            "bulk_devices": args.devices,
        },
        sys.stdout,
    )
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
