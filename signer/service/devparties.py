"""Development stand-ins for the parties outside the Supplier: the DCC and the SMKI issuing CA.

Their keys live in files under the development directory (``var/dev/dcc/``,
``var/dev/smki-ca/``, mode 0600) because they are *their* keys, not ours: like the development
manufacturer's key, they play the other side of the exchange so the README's examples run to
the end on a developer's machine. Nothing here works unless the configuration it is given is
in development mode (``server.dev_mode``), and none of it is used by the server itself.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

from signer.config import Config
from signer.errors import ConfigurationError, SignerError
from signer.gbcs.roles import RemotePartyRole
from signer.gbcs.signature import der_to_raw
from signer.smki.certificate import load_certificate, smki_key_identifier, smki_name

DCC_DIR = "dcc"
SMKI_CA_DIR = "smki-ca"
KEY_FILE = "key.pem"
CERT_FILE = "cert.pem"
DCC_CN = "DEV DCC"
SMKI_CA_CN = "DEV SMKI CA"
#: how long the development parties' certificates last
LIFETIME = dt.timedelta(days=3650)


@dataclass(frozen=True)
class DevParty:
    """A development party's key (from its file) and certificate."""

    name: str  # for messages: "development DCC"
    directory: Path
    key: ec.EllipticCurvePrivateKey
    certificate: x509.Certificate

    @property
    def cert_path(self) -> Path:
        return self.directory / CERT_FILE

    def sign_prehashed(self, digest: bytes) -> bytes:
        """Raw r||s over a SHA-256 digest, as the XMLDSig profile and GBCS carry it."""
        der = self.key.sign(digest, ec.ECDSA(Prehashed(hashes.SHA256())))
        return der_to_raw(der)


def require_development(config: Config, command: str) -> None:
    """Refuse, in one line, a configuration that is not in development mode."""
    if not config.dev_mode or config.tls is not None:
        raise ConfigurationError(
            f"{command} works only in development mode, and this configuration is not "
            "(server.dev_mode is not true): the development DCC and SMKI CA never exist "
            "outside development"
        )


def dev_directory(config: Config) -> Path:
    """The development directory: the one holding the configuration (``var/dev``)."""
    return config.base_dir


def make_dcc(directory: Path, now: dt.datetime) -> x509.Certificate:
    """A development DCC XML-signing key and its self-issued certificate in ``directory``."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = smki_name(int(RemotePartyRole.DSP_XML_SIGNING), None, DCC_CN)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + LIFETIME)
        .add_extension(
            x509.KeyUsage(True, False, False, False, False, False, False, False, False), True
        )
        .add_extension(x509.SubjectKeyIdentifier(smki_key_identifier(key.public_key())), False)
        .sign(key, hashes.SHA256())
    )
    _write(directory, key, cert)
    return cert


def make_smki_ca(directory: Path, now: dt.datetime) -> x509.Certificate:
    """A development SMKI issuing CA (``CN=DEV SMKI CA,OU=07``): key and certificate."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = smki_name(int(RemotePartyRole.ISSUING_AUTHORITY), None, SMKI_CA_CN)
    ski = smki_key_identifier(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + LIFETIME)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), True
        )
        .add_extension(x509.SubjectKeyIdentifier(ski), False)
        .sign(key, hashes.SHA256())
    )
    _write(directory, key, cert)
    return cert


def load_party(directory: Path, name: str) -> DevParty:
    """A development party's files; missing or unreadable ones are one line naming them."""
    key_path, cert_path = directory / KEY_FILE, directory / CERT_FILE
    if not key_path.is_file() or not cert_path.is_file():
        raise ConfigurationError(
            f"no {name} in {directory}: run `signer dev provision` again to add it "
            "(or delete the development directory and start again)"
        )
    try:
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        cert = load_certificate(cert_path.read_bytes(), field=str(cert_path))
    except (OSError, ValueError, TypeError, SignerError) as exc:
        raise ConfigurationError(f"{name} in {directory} cannot be read: {exc}") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or cert.public_key() != key.public_key():
        raise ConfigurationError(f"{key_path}: not the P-256 key of {cert_path}")
    return DevParty(name, directory, key, cert)


def dev_dcc(config: Config) -> DevParty:
    """The development DCC, which the configuration must trust for DUIS responses."""
    party = load_party(dev_directory(config) / DCC_DIR, "development DCC")
    if not any(_same_file(p, party.cert_path) for p in config.dcc_certificates):
        raise ConfigurationError(
            f"dcc.certificates does not list {party.cert_path}: the server would refuse the "
            "development DCC's responses; run `signer dev provision` again to add it"
        )
    return party


def dev_smki_ca(config: Config) -> DevParty:
    """The development SMKI CA, which the configuration must list as an SMKI issuer."""
    party = load_party(dev_directory(config) / SMKI_CA_DIR, "development SMKI CA")
    if not any(_same_file(p, party.cert_path) for p in config.smki_issuers):
        raise ConfigurationError(
            f"smki.issuers does not list {party.cert_path}: `signer keys install-cert` would "
            "refuse its certificates; run `signer dev provision` again to add it"
        )
    return party


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve()
    except OSError:
        return False


def _write(directory: Path, key: ec.EllipticCurvePrivateKey, cert: x509.Certificate) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    key_path = directory / KEY_FILE
    partial = key_path.with_suffix(".partial")
    partial.unlink(missing_ok=True)
    partial.touch(mode=0o600)
    partial.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    (directory / CERT_FILE).write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    partial.rename(key_path)  # last: the key's presence says "made"
