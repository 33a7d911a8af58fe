"""Everything a use case needs, opened once per process."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from cryptography import x509

from signer.clock import Clock, fixed_clock, system_clock
from signer.config import Config
from signer.duis.schema import DuisSchema
from signer.errors import ConfigurationError, InvalidInput, NotFound
from signer.hsm.token import Token, TokenKey
from signer.hsm.uri import parse_key_ref
from signer.registry.db import Database, check_database, open_database
from signer.service.caches import CertificateVerdicts, TrustCache, VerifiedImages
from signer.service.dcc import load_dcc_certificates
from signer.smki.certificate import SmkiCertificate, load_certificate

log = logging.getLogger(__name__)


@dataclass
class Services:
    config: Config
    token: Token
    db: Database
    clock: Clock = system_clock
    schema: DuisSchema | None = None
    issuers: tuple[x509.Certificate, ...] = field(default=())
    # the DCC's XML-signing certificates ([dcc] certificates): who may sign a DUIS response
    dcc_certificates: tuple[x509.Certificate, ...] = field(default=())
    images: VerifiedImages = field(default_factory=VerifiedImages)
    certificate_verdicts: CertificateVerdicts = field(default_factory=CertificateVerdicts)
    trust: TrustCache = field(default_factory=TrustCache)
    # the XML-signing key and its checked certificate, reused while the certificate is valid
    xml_key: tuple[TokenKey, SmkiCertificate] | None = None

    def close(self) -> None:
        self.token.close()
        self.db.dispose()


def open_services(
    config: Config,
    *,
    clock: Clock = system_clock,
    token: Token | None = None,
    database: Database | None = None,
    serving: bool = False,
) -> Services:
    """Load the SMKI issuers and the schema, open the token, then migrate the database.

    The token comes before the database, so a wrong token or PIN stops the start before any
    database is created or migrated. ``serving`` (`signer serve`) adds two refusals: a
    configured XML-signing key missing from the token, and a database path that cannot be
    a database (not a URL, not SQLite, a directory, a missing or read-only directory).
    """
    # the token's settings first: a command that opens the token without them stops at once,
    # naming the setting (the commands that need no token never come here)
    token_settings = config.token if token is None else None
    issuers = []
    for path in config.smki_issuers:
        try:
            issuers.append(load_certificate(path.read_bytes(), field=str(path)))
        except OSError as exc:
            raise ConfigurationError(f"cannot read SMKI issuer {path}: {exc.strerror}") from None
    if config.pinned_time is not None:
        log.warning(
            "the clock is PINNED at %s: certificate validity is judged at that time; "
            "never run production like this",
            config.pinned_time.isoformat(),
        )
        clock = fixed_clock(config.pinned_time)
    dcc_certificates = load_dcc_certificates(config.dcc_certificates)
    if not dcc_certificates:
        log.warning(
            "no DCC certificates ([dcc] certificates): every DUIS response is refused as "
            "unauthenticated; raw GBCS is accepted only with its explicit flag"
        )
    schema = DuisSchema.load(config.schema_dir) if config.schema_dir else None
    opened = token is None
    if token is None:
        assert token_settings is not None
        token_settings.prepare_environment()
        token = Token(token_settings.module, token_settings.label, token_settings.pin.read())
        token.open()
    try:
        if serving:
            _check_xml_key(config, token)
            if database is None:
                check_database(config.database_url)
        db = database or open_database(config.database_url)
    except BaseException:
        if opened:
            token.close()
        raise
    return Services(
        config=config,
        token=token,
        db=db,
        clock=clock,
        schema=schema,
        issuers=tuple(issuers),
        dcc_certificates=dcc_certificates,
    )


def _check_xml_key(config: Config, token: Token) -> None:
    """A configured ``supplier.xml_signing_key`` must name a key on this token."""
    name = config.xml_signing_key
    if name is None:
        return
    setting = "supplier.xml_signing_key"
    try:
        ref = parse_key_ref(name, field=setting)
        if ref.token is not None and ref.token != token.token_label:
            raise ConfigurationError(
                f"{setting} names token {ref.token!r}, but token.label is {token.token_label!r}"
            )
        token.find(label=ref.label, key_id=ref.key_id)
    except (InvalidInput, NotFound) as exc:
        raise ConfigurationError(f"{setting} {name[:64]!r}: {exc}") from None
