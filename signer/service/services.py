"""Everything a use case needs, opened once per process."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from cryptography import x509

from signer.clock import Clock, fixed_clock, system_clock
from signer.config import Config
from signer.duis.schema import DuisSchema
from signer.errors import ConfigurationError
from signer.hsm.token import Token, TokenKey
from signer.registry.db import Database, open_database
from signer.service.caches import (
    CertificateVerdicts,
    LedgerStates,
    UpgradeGraphs,
    VerifiedImages,
)
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
    images: VerifiedImages = field(default_factory=VerifiedImages)
    certificate_verdicts: CertificateVerdicts = field(default_factory=CertificateVerdicts)
    graphs: UpgradeGraphs = field(default_factory=UpgradeGraphs)
    ledger: LedgerStates = field(default_factory=LedgerStates)
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
) -> Services:
    """Open the token, migrate the database, load the schema and the SMKI issuers."""
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
    schema = DuisSchema.load(config.schema_dir) if config.schema_dir else None
    db = database or open_database(config.database_url)
    if token is None:
        config.token.prepare_environment()
        token = Token(config.token.module, config.token.label, config.token.pin.read())
        token.open()
    return Services(
        config=config, token=token, db=db, clock=clock, schema=schema, issuers=tuple(issuers)
    )
