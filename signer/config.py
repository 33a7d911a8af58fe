"""Service configuration: a TOML file, then ``SIGNER_*`` environment overrides."""

from __future__ import annotations

import datetime as dt
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from signer.duis.request import DCC_TEST_EUI
from signer.errors import ConfigurationError, InvalidInput
from signer.gbcs.eui import Eui64
from signer.hsm.pin import PinSource

DEFAULT_MODULE = "/usr/lib/softhsm/libsofthsm2.so"

# environment variable -> (section, key)
ENV_OVERRIDES: dict[str, tuple[str, str]] = {
    "SIGNER_LISTEN": ("server", "listen"),
    "SIGNER_TOKEN_MODULE": ("token", "module"),
    "SIGNER_TOKEN_LABEL": ("token", "label"),
    "SIGNER_PIN_FILE": ("token", "pin_file"),
    "SIGNER_PIN_ENV": ("token", "pin_env"),
    "SIGNER_SOFTHSM2_CONF": ("token", "softhsm2_conf"),
    "SIGNER_SUPPLIER_EUI": ("supplier", "eui"),
    "SIGNER_DCC_EUI": ("supplier", "dcc_eui"),
    "SIGNER_XML_SIGNING_KEY": ("supplier", "xml_signing_key"),
    "SIGNER_DATABASE_URL": ("database", "url"),
    "SIGNER_SCHEMA_DIR": ("duis", "schema_dir"),
    "SIGNER_PINNED_TIME": ("clock", "pinned_time"),
    "SIGNER_CPL_MODE": ("cpl", "mode"),
    "SIGNER_DEV_MODE": ("server", "dev_mode"),
    "SIGNER_SHUTDOWN_GRACE": ("server", "shutdown_grace"),
    "SIGNER_TLS_CERT": ("tls", "cert"),
    "SIGNER_TLS_KEY": ("tls", "key"),
    "SIGNER_TLS_CLIENT_CA": ("tls", "client_ca"),
    "SIGNER_POLICY": ("tls", "policy"),
    "SIGNER_METRICS_LISTEN": ("metrics", "listen"),
    "SIGNER_HEALTH_LISTEN": ("server", "health_listen"),
    "SIGNER_LOG_FORMAT": ("log", "format"),
}

LOG_FORMATS = ("json", "text")


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
class Config:
    listen: str
    token: TokenConfig
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

    def describe(self) -> dict[str, str]:
        """What was loaded, for the start-up log: the PIN's source, never the PIN."""
        return {
            "listen": self.listen,
            "token_module": self.token.module,
            "token_label": self.token.label,
            "pin_source": self.token.pin.describe(),
            "supplier_eui": str(self.supplier_eui),
            "dcc_eui": str(self.dcc_eui),
            "database": _redact_url(self.database_url),
            "schema_dir": str(self.schema_dir) if self.schema_dir else "(none: no schema check)",
            "smki_issuers": ", ".join(map(str, self.smki_issuers)) or "(none: no chain check)",
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


def load_config(path: Path | None, environ: Mapping[str, str] | None = None) -> Config:
    env = os.environ if environ is None else environ
    raw: dict[str, dict[str, Any]] = {}
    base = Path.cwd()
    if path is not None:
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigurationError(f"cannot read config {path}: {exc.strerror}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigurationError(f"config {path}: {exc}") from None
        base = path.resolve().parent
    for var, (section, key) in ENV_OVERRIDES.items():
        if var in env:
            raw.setdefault(section, {})[key] = env[var]
    if "pin_file" in raw.get("token", {}) and "SIGNER_PIN_ENV" in env:
        raw["token"].pop("pin_file")
    if "pin_env" in raw.get("token", {}) and "SIGNER_PIN_FILE" in env:
        raw["token"].pop("pin_env")
    return _build(raw, base)


def _build(raw: dict[str, dict[str, Any]], base: Path) -> Config:
    def get(section: str, key: str, default: Any = None) -> Any:
        return raw.get(section, {}).get(key, default)

    def path_of(value: str) -> Path:
        p = Path(value).expanduser()
        return p if p.is_absolute() else (base / p)

    label = get("token", "label")
    if not label:
        raise ConfigurationError("token.label is required")
    pin_file, pin_env = get("token", "pin_file"), get("token", "pin_env")
    pin = PinSource(file=path_of(pin_file) if pin_file else None, env=pin_env)
    supplier = get("supplier", "eui")
    if not supplier:
        raise ConfigurationError("supplier.eui is required")
    try:
        supplier_eui = Eui64.parse(supplier, field="supplier.eui")
        dcc_eui = Eui64.parse(
            get("supplier", "dcc_eui", str(DCC_TEST_EUI)), field="supplier.dcc_eui"
        )
    except InvalidInput as exc:
        raise ConfigurationError(str(exc)) from None
    schema_dir = get("duis", "schema_dir")
    db_url = get("database", "url")
    if not db_url:
        # No silent default: a fresh database would hand out RequestID counters again.
        raise ConfigurationError("database.url is required (e.g. sqlite:///var/signer.db)")
    if db_url.startswith("sqlite:///") and not db_url.startswith("sqlite:////"):
        db_url = "sqlite:///" + str(path_of(db_url.removeprefix("sqlite:///")))
    dev_mode = _flag(get("server", "dev_mode", False), "server.dev_mode")
    tls = _tls(raw.get("tls", {}), path_of, dev_mode)
    metrics_listen = get("metrics", "listen", "127.0.0.1:9464")
    log_format = get("log", "format", "json")
    if log_format not in LOG_FORMATS:
        raise ConfigurationError(f"log.format {log_format!r} is not json or text")
    return Config(
        listen=get("server", "listen", "127.0.0.1:50051"),
        token=TokenConfig(
            module=get("token", "module", DEFAULT_MODULE),
            label=label,
            pin=pin,
            softhsm2_conf=path_of(conf) if (conf := get("token", "softhsm2_conf")) else None,
        ),
        supplier_eui=supplier_eui,
        dcc_eui=dcc_eui,
        database_url=db_url,
        schema_dir=path_of(schema_dir) if schema_dir else None,
        smki_issuers=tuple(path_of(p) for p in get("smki", "issuers", [])),
        dcc_certificates=tuple(path_of(p) for p in get("dcc", "certificates", [])),
        xml_signing_key=get("supplier", "xml_signing_key"),
        workers=int(get("server", "workers", 16)),
        max_concurrent_rpcs=int(get("server", "max_concurrent_rpcs", 1000)),
        pinned_time=_pinned(get("clock", "pinned_time")),
        cpl_mode=_cpl_mode(get("cpl", "mode", "strict")),
        base_dir=base,
        dev_mode=dev_mode,
        tls=tls,
        metrics_listen=metrics_listen or None,
        health_listen=get("server", "health_listen") or None,
        log_format=log_format,
        shutdown_grace=_seconds(get("server", "shutdown_grace", 10.0), "server.shutdown_grace"),
    )


def _seconds(value: Any, name: str) -> float:
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise ConfigurationError(f"{name} {value!r} is not a number of seconds") from None
    if not 0 <= seconds <= 3600:
        raise ConfigurationError(f"{name} {seconds} is outside 0..3600 seconds")
    return seconds


def _flag(value: Any, name: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise ConfigurationError(f"{name} {value!r} is not true or false")


def _tls(section: dict[str, Any], path_of: Any, dev_mode: bool) -> TlsConfig | None:
    """All four files or none; `serve` refuses none outside development mode."""
    names = ("cert", "key", "client_ca", "policy")
    given = [n for n in names if section.get(n)]
    if not given:
        return None
    if dev_mode:
        raise ConfigurationError(
            "server.dev_mode = true and [tls] are both set: development "
            "mode serves plaintext; remove one"
        )
    missing = [f"tls.{n}" for n in names if n not in given]
    if missing:
        raise ConfigurationError(f"{', '.join(missing)} required with the rest of [tls]")
    cert, key, client_ca, policy = (path_of(section[n]) for n in names)
    return TlsConfig(
        cert, key, client_ca, policy, crls=tuple(path_of(p) for p in section.get("crls", []))
    )


def _cpl_mode(value: str) -> str:
    if value not in ("strict", "advisory"):
        raise ConfigurationError(f"cpl.mode {value!r} is not strict or advisory")
    return value


def _pinned(value: Any) -> dt.datetime | None:
    """A fixed "now" for tests against the published, partly expired test certificates."""
    if value is None or value == "":
        return None
    when = value if isinstance(value, dt.datetime) else None
    if when is None:
        try:
            when = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError:
            raise ConfigurationError(f"clock.pinned_time {value!r} is not ISO 8601") from None
    if when.tzinfo is None:
        raise ConfigurationError("clock.pinned_time needs a time zone (e.g. ...Z)")
    return when


def _redact_url(url: str) -> str:
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url
