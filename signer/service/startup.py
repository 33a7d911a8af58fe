"""What `signer serve` checks before it binds a port, opens the token or touches the database.

Each refusal is one `ConfigurationError` naming the setting, so a misconfigured replica stops
with one line and leaves nothing behind: no database file, no migrated schema, no port.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from cryptography import x509

from signer.config import Config
from signer.duis.schema import DUIS_SCHEMA_FILE, DuisSchema
from signer.errors import ConfigurationError, SignerError
from signer.registry.db import check_database_url
from signer.smki.certificate import load_certificate

log = logging.getLogger("signer")

#: outside development mode each of these must be set; the reason is in the refusal
PRODUCTION_REQUIRES = {
    "duis.schema_dir": (
        "the DUIS 5.4 schema every request is validated against (DUIS_Schema_V5.4.xsd and "
        "its imports, from the DCC's published DUIS XSD release)"
    ),
    "smki.issuers": (
        "the SMKI Issuing CA certificates the Supplier's key certificates must chain to "
        "(from the SMKI repository)"
    ),
}


def check_startup(config: Config) -> None:
    """Refuse a configuration `serve` cannot run safely; warn once about development gaps."""
    _production(config)
    _token_files(config)
    if config.tls is not None:
        for name in ("cert", "key", "client_ca", "policy"):
            _readable(getattr(config.tls, name), f"tls.{name}")
        for path in config.tls.crls:
            _crl(path)
    if config.schema_dir is not None:
        _schema(config.schema_dir)
    for path in config.smki_issuers:
        _certificate(path, "smki.issuers")
    for path in config.dcc_certificates:
        _certificate(path, "dcc.certificates")
    # the database URL's form here; its path once the token is open (`open_services`)
    check_database_url(config.database_url)


def warn_development(config: Config) -> None:
    """Development mode's one start-up line naming the checks it runs without."""
    if config.dev_mode and config.production_gaps():
        log.warning(
            "DEVELOPMENT MODE runs without %s; production refuses to start without them",
            " and ".join(config.production_gaps()),
        )


def _production(config: Config) -> None:
    if config.dev_mode:
        return
    if config.pinned_time is not None and not config.pinned_for_tests:
        raise ConfigurationError(
            "clock.pinned_time is set outside development mode: a fixed clock freezes every "
            "certificate validity check and revocation time; unset it (SIGNER_PINNED_TIME "
            "too), or, for a test server only, set clock.pinned_for_tests = true"
        )
    if config.schema_dir is None:
        raise ConfigurationError(
            "duis.schema_dir is required outside development mode: "
            + PRODUCTION_REQUIRES["duis.schema_dir"]
        )
    if not config.smki_issuers:
        raise ConfigurationError(
            "smki.issuers is required outside development mode: "
            + PRODUCTION_REQUIRES["smki.issuers"]
        )


def _readable(path: Path, setting: str) -> bytes:
    try:
        return path.read_bytes()
    except IsADirectoryError:
        raise ConfigurationError(f"{setting} {path}: is a directory, not a file") from None
    except OSError as exc:
        raise ConfigurationError(f"{setting} {path}: {exc.strerror}") from None


def _token_files(config: Config) -> None:
    """The module, SoftHSM2's configuration and its token directory, and the PIN file:
    what the PKCS#11 module would otherwise fail on with a vendor error."""
    token = config.token
    module = Path(token.module)
    if not module.is_file() or not os.access(module, os.R_OK):
        why = "is not a readable file" if module.exists() else "does not exist"
        raise ConfigurationError(f"token.module {module}: {why} (the PKCS#11 library)")
    if token.softhsm2_conf is not None:
        text = _readable(token.softhsm2_conf, "token.softhsm2_conf")
        tokendir = _softhsm_tokendir(text)
        if tokendir is not None and not Path(tokendir).is_dir():
            raise ConfigurationError(
                f"token.softhsm2_conf {token.softhsm2_conf}: directories.tokendir "
                f"{tokendir} is not a directory"
            )
    if token.pin.file is not None:
        _readable(token.pin.file, "token.pin_file")
    elif token.pin.env is not None and token.pin.env not in os.environ:
        raise ConfigurationError(
            f"token.pin_env: the environment variable {token.pin.env} is not set"
        )


def _softhsm_tokendir(text: bytes) -> str | None:
    for line in text.decode("utf-8", "replace").splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip() == "directories.tokendir":
            return value.strip()
    return None


def _schema(directory: Path) -> None:
    if not directory.is_dir():
        raise ConfigurationError(f"duis.schema_dir {directory}: not a directory")
    if not (directory / DUIS_SCHEMA_FILE).is_file():
        raise ConfigurationError(
            f"duis.schema_dir {directory}: no {DUIS_SCHEMA_FILE} (the DUIS 5.4 schema and "
            "its MMC and xmldsig imports belong there)"
        )
    try:
        DuisSchema.load(directory)  # compiled once; open_services reuses it
    except ConfigurationError as exc:
        raise ConfigurationError(f"duis.schema_dir {directory}: {exc}") from None


def _certificate(path: Path, setting: str) -> None:
    data = _readable(path, setting)
    try:
        load_certificate(data, field=setting)
    except SignerError:
        raise ConfigurationError(
            f"{setting} {path}: not an X.509 certificate (PEM or DER)"
        ) from None


def _crl(path: Path) -> None:
    data = _readable(path, "tls.crls")
    try:
        if data.lstrip().startswith(b"-----BEGIN"):
            x509.load_pem_x509_crl(data)
        else:
            x509.load_der_x509_crl(data)
    except ValueError:
        raise ConfigurationError(
            f"tls.crls {path}: not a certificate revocation list (PEM or DER)"
        ) from None
