"""The loaded configuration: typed values the rest of the service reads."""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass, field
from pathlib import Path

from signer.errors import ConfigurationError
from signer.gbcs.eui import Eui64
from signer.hsm.pin import PinSource


@dataclass(frozen=True)
class TokenConfig:
    module: str
    label: str
    pin: PinSource
    softhsm2_conf: Path | None = None

    def prepare_environment(self) -> None:
        """SoftHSM2 reads SOFTHSM2_CONF when the module loads; an explicit setting wins."""
        if self.softhsm2_conf is not None:
            os.environ["SOFTHSM2_CONF"] = str(self.softhsm2_conf)


@dataclass(frozen=True)
class TlsConfig:
    """mTLS: the server's certificate and key, the CA clients must chain to, the role policy."""

    cert: Path
    key: Path
    client_ca: Path
    policy: Path
    # certificate revocation lists (PEM or DER) client certificates are checked against
    crls: tuple[Path, ...] = ()


@dataclass(frozen=True)
class CampaignsConfig:
    """[campaigns]: who must approve a campaign, for how long, and when one is needed."""

    approvals_required: int = 1
    approvals_required_large: int = 2
    large_campaign_devices: int = 100
    approval_ttl: dt.timedelta = dt.timedelta(hours=24)
    direct_limit: int = 1000  # 0: no limit
    direct_window: dt.timedelta = dt.timedelta(hours=24)  # direct_limit counts over it
    dev_self_approval: bool = False

    def required_for(self, eligible: int) -> int:
        """Approvals a plan with this many eligible devices needs."""
        if eligible >= self.large_campaign_devices:
            return self.approvals_required_large
        return self.approvals_required


@dataclass(frozen=True)
class Config:
    listen: str
    # the [token] settings; None when they are missing or wrong (``token_problem`` says how):
    # only commands that open the token need them, and ``token`` refuses then
    token_settings: TokenConfig | None
    supplier_eui: Eui64
    dcc_eui: Eui64
    database_url: str
    schema_dir: Path | None = None
    smki_issuers: tuple[Path, ...] = ()
    # the DCC's XML-signing certificates: a DUIS response is trusted only if one of them signed it
    dcc_certificates: tuple[Path, ...] = ()
    xml_signing_key: str | None = None
    workers: int = 16
    # calls served or queued at once; beyond it a call is answered RESOURCE_EXHAUSTED
    max_concurrent_rpcs: int = 1000
    pinned_time: dt.datetime | None = None
    pinned_for_tests: bool = False  # pinned_time allowed outside development mode
    cpl_mode: str = "strict"  # "strict": an image not on the CPL is not verified
    base_dir: Path = field(default=Path("."))
    # development mode: plaintext, no client certificates, every call allowed (and warned)
    dev_mode: bool = False
    tls: TlsConfig | None = None
    metrics_listen: str | None = "127.0.0.1:9464"  # None: no metrics endpoint
    # a plaintext port serving grpc.health.v1 only, for probes that cannot present a client
    # certificate (Kubernetes' gRPC probes); None: health on the main port only
    health_listen: str | None = None
    log_format: str = "json"
    shutdown_grace: float = 10.0  # seconds calls in flight get after SIGTERM
    token_problem: str = ""  # why token_settings is None
    campaigns: CampaignsConfig = field(default_factory=CampaignsConfig)

    @property
    def token(self) -> TokenConfig:
        """The [token] settings, or the ConfigurationError naming what is missing or wrong:
        checked when a command opens the token (`serve`, `keys`), not by commands that need
        the database only (README "Commands that need no token")."""
        if self.token_settings is None:
            raise ConfigurationError(self.token_problem or "the [token] settings are missing")
        return self.token_settings

    def describe(self) -> dict[str, str]:
        """What was loaded, for the start-up log: the PIN's source, never the PIN."""
        return {
            "listen": self.listen,
            "token_module": self.token_settings.module if self.token_settings else "(not set)",
            "token_label": self.token_settings.label if self.token_settings else "(not set)",
            "pin_source": (
                self.token_settings.pin.describe() if self.token_settings else self.token_problem
            ),
            "supplier_eui": str(self.supplier_eui),
            "dcc_eui": str(self.dcc_eui),
            "database": _redact_url(self.database_url),
            "schema_dir": str(self.schema_dir) if self.schema_dir else "(none: no schema check)",
            "smki_issuers": ", ".join(map(str, self.smki_issuers)) or "(none: no chain check)",
            "dcc_certificates": ", ".join(map(str, self.dcc_certificates)) or "(none)",
            "xml_signing_key": self.xml_signing_key or "(the token's XML-signing key)",
            "cpl_mode": self.cpl_mode,
            "transport": (
                "DEVELOPMENT MODE: plaintext, no client authentication"
                if self.tls is None
                else f"mTLS (certificate {self.tls.cert}, client CA {self.tls.client_ca}, "
                f"policy {self.tls.policy})"
            ),
            "metrics": self.metrics_listen or "(off)",
            "health_port": (
                f"{self.health_listen} (plaintext, grpc.health.v1 only)"
                if self.health_listen
                else "(none: health on the main port)"
            ),
            "log_format": self.log_format,
            "clock": (
                f"PINNED at {self.pinned_time.isoformat()} (tests only)"
                if self.pinned_time
                else "system"
            ),
        }

    def production_gaps(self) -> list[str]:
        """What development mode runs without; outside it each of these refuses the start."""
        gaps = []
        if self.schema_dir is None:
            gaps.append("duis.schema_dir (DUIS requests are not schema-validated)")
        if not self.smki_issuers:
            gaps.append("smki.issuers (key certificates are not chain-checked)")
        return gaps


def _redact_url(url: str) -> str:
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url
