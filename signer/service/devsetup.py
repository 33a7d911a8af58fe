"""The development default: a SoftHSM2 token, keys, certificates and devices that match.

Everything here is for a developer's machine: the Supplier keys are generated inside the
token, the ARP-signing key certified by the development SMKI CA and the XML-signing key
self-issued; the manufacturer key is the manufacturer's (it lives in a file, as it would at
the manufacturer) and signs an example delivery; the development DCC and SMKI CA keys are
theirs too (``devparties``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import tomllib
from dataclasses import dataclass, replace
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from signer.config import load_config
from signer.cpl.parse import read_csv
from signer.errors import CertificateRejected, ConfigurationError, NotFound, PolicyRefused
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
from signer.service.devparties import (
    CERT_FILE,
    DCC_DIR,
    KEY_FILE,
    SMKI_CA_DIR,
    DevParty,
    load_party,
    make_dcc,
    make_smki_ca,
)
from signer.service.devsmki import issue_for_csr
from signer.service.keys import lifecycle as keys
from signer.service.services import Services, open_services
from signer.smki.certificate import check_issued_by
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
    #: what this run added to a directory provisioned before (empty: nothing, or all of it)
    added: tuple[str, ...] = ()

    @property
    def dcc_dir(self) -> Path:
        return self.directory / DCC_DIR

    @property
    def smki_ca_dir(self) -> Path:
        return self.directory / SMKI_CA_DIR


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

    Makes the development SMKI CA and DCC (their keys in files: they are the other parties'),
    generates the Supplier keys inside the token (the ARP-signing key certified by the
    development CA through a CSR, as in production; the XML-signing key self-issued, as SMKI
    XML-signing certificates are), registers the development manufacturer and devices in a
    SQLite database beside it, and writes the service configuration. A directory provisioned
    before gets what it lacks (``complete``).
    """
    directory = directory.resolve()
    env = DevEnvironment(directory, directory / "signer.toml", directory / "softhsm2.conf")
    now = now or dt.datetime.now(dt.UTC)
    if env.config_path.exists():
        return complete(env, now=now, actor=actor)
    pin_file = directory / "user.pin"
    if not env.softhsm2_conf.exists() or not pin_file.exists():
        raise ConfigurationError(
            f"no SoftHSM2 token in {directory}: run "
            f"`softhsm/init-token {directory} {DEV_TOKEN_LABEL}` first"
        )
    db_url = database_url or f"sqlite:///{directory / 'signer.db'}"
    schema_line = f'schema_dir = "{schema_dir.resolve()}"\n' if schema_dir else ""
    if not (env.smki_ca_dir / KEY_FILE).exists():
        make_smki_ca(env.smki_ca_dir, now)
    if not (env.dcc_dir / KEY_FILE).exists():
        make_dcc(env.dcc_dir, now)
    partial = env.config_path.with_suffix(".partial")
    partial.unlink(missing_ok=True)
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
        + _dcc_section(env)
        + _smki_section(env)
    )
    svc = open_services(load_config(partial))
    try:
        start, end = now - dt.timedelta(days=1), now + dt.timedelta(days=730)
        ca = load_party(env.smki_ca_dir, "development SMKI CA")
        keys.generate(svc, "supplier-ds", KeyPurpose.SUPPLIER_DS, actor=actor)
        _certify_by_dev_ca(svc, ca, "supplier-ds", now=now, actor=actor)
        keys.activate(svc, "supplier-ds", actor=actor)
        keys.generate(svc, "xml-sign", KeyPurpose.XML_SIGN, actor=actor)
        keys.self_certify(svc, "xml-sign", not_before=start, not_after=end, actor=actor)
        keys.activate(svc, "xml-sign", actor=actor)
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


def complete(env: DevEnvironment, *, now: dt.datetime, actor: str) -> DevEnvironment:
    """Add to a directory provisioned before them the development DCC and SMKI CA, and the
    configuration that trusts them; nothing if it has them.

    A configuration that has its own ``[dcc]`` or ``[smki]`` section is left as it is. The
    ARP-signing key ``supplier-ds`` a former provisioning self-certified gets a renewal from
    the development CA (same key, same SKI: devices' cells still name it) before the CA is
    listed as the SMKI issuer, so it keeps signing.
    """
    text = env.config_path.read_text()
    try:
        present = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigurationError(f"config {env.config_path}: {exc}") from None
    added: list[str] = []
    if not (env.dcc_dir / KEY_FILE).exists():
        make_dcc(env.dcc_dir, now)
        added.append(f"development DCC ({env.dcc_dir})")
    if not (env.smki_ca_dir / KEY_FILE).exists():
        make_smki_ca(env.smki_ca_dir, now)
        added.append(f"development SMKI CA ({env.smki_ca_dir})")
    extra = ""
    if "dcc" not in present:
        extra += _dcc_section(env)
        added.append("[dcc] certificates (the development DCC)")
    if "smki" not in present:
        svc = open_services(load_config(env.config_path))
        try:
            ca = load_party(env.smki_ca_dir, "development SMKI CA")
            try:
                key = svc.token.find(label="supplier-ds")
                if key.certificate is not None and not _issued_by(key.certificate, ca, now):
                    _certify_by_dev_ca(svc, ca, "supplier-ds", now=now, actor=actor)
                    added.append("supplier-ds certificate renewed by the development SMKI CA")
            except (NotFound, PolicyRefused) as exc:  # gone or retired: nothing to renew
                added.append(f"supplier-ds not renewed ({exc})")
        finally:
            svc.close()
        extra += _smki_section(env)
        added.append("[smki] issuers (the development SMKI CA)")
    if extra:
        partial = env.config_path.with_suffix(".partial")
        partial.unlink(missing_ok=True)
        partial.touch(mode=0o600)
        partial.write_text(text.rstrip("\n") + "\n" + extra)
        partial.rename(env.config_path)
    return replace(env, added=tuple(added))


def _certify_by_dev_ca(
    svc: Services, ca: DevParty, label: str, *, now: dt.datetime, actor: str
) -> None:
    """What the rotation walkthrough does by hand: CSR, the (development) CA, install-cert."""
    csr = keys.certificate_request(svc, label, str(DEV_SUPPLIER_EUI), actor=actor, cn=label)
    cert = issue_for_csr(ca, csr, supplier_eui=DEV_SUPPLIER_EUI, now=now)
    keys.install_certificate(svc, label, cert.public_bytes(serialization.Encoding.PEM), actor=actor)


def _issued_by(cert: x509.Certificate, ca: DevParty, now: dt.datetime) -> bool:
    try:
        check_issued_by(cert, [ca.certificate], now=now)
    except CertificateRejected:
        return False
    return True


def _dcc_section(env: DevEnvironment) -> str:
    path = _toml_string(str(env.dcc_dir / CERT_FILE))
    return (
        "\n# the development DCC (`signer dev dcc`): DUIS responses it signs are trusted\n"
        f"[dcc]\ncertificates = [{path}]\n"
    )


def _smki_section(env: DevEnvironment) -> str:
    path = _toml_string(str(env.smki_ca_dir / CERT_FILE))
    return (
        "\n# the development SMKI issuing CA (`signer dev smki sign`)\n"
        f"[smki]\nissuers = [{path}]\n"
    )


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
