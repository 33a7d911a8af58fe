"""Read a TOML file, apply ``SIGNER_*`` overrides, validate against the one schema, build."""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from signer.config.model import CampaignsConfig, Config, TlsConfig, TokenConfig
from signer.config.schema import ENV_OVERRIDES, echo, parse_duration, validate
from signer.errors import ConfigurationError, InvalidInput
from signer.gbcs.eui import Eui64
from signer.hsm.pin import PinSource

TLS_FILES = ("cert", "key", "client_ca", "policy")


def load_config(path: Path | None, environ: Mapping[str, str] | None = None) -> Config:
    """The configuration, or one ConfigurationError naming the first wrong setting.

    Pure: nothing is opened but the file itself; whether named files exist and parse is
    checked by `signer.service.startup` before `serve` binds a port.
    """
    env = os.environ if environ is None else environ
    raw: dict[str, Any] = {}
    base = Path.cwd()
    if path is not None:
        raw = _read(path)
        base = path.resolve().parent
    from_env: set[str] = set()
    for var, (section, key) in ENV_OVERRIDES.items():
        if var in env:
            table = raw.setdefault(section, {})
            if isinstance(table, dict):
                table[key] = env[var]
                from_env.add(f"{section}.{key}")
    token = raw.get("token")
    if isinstance(token, dict):  # a PIN source from the environment replaces the file's
        if "pin_file" in token and "SIGNER_PIN_ENV" in env and "SIGNER_PIN_FILE" not in env:
            token.pop("pin_file")
        if "pin_env" in token and "SIGNER_PIN_FILE" in env and "SIGNER_PIN_ENV" not in env:
            token.pop("pin_env")
    return _build(validate(raw, from_env), base)


def _read(path: Path) -> dict[str, Any]:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigurationError(f"cannot read config {path}: {exc.strerror}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigurationError(
            f"config {path}: not UTF-8 (byte {exc.start}); TOML files are UTF-8"
        ) from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigurationError(f"config {path}: {exc}") from None


def _build(v: dict[str, Any], base: Path) -> Config:
    def path_of(value: str) -> Path:
        p = Path(value).expanduser()
        return p if p.is_absolute() else (base / p)

    def paths(name: str) -> tuple[Path, ...]:
        return tuple(path_of(p) for p in v[name])

    def optional(name: str) -> Path | None:
        return path_of(v[name]) if v[name] else None

    # the token settings are checked when the token is opened (`Config.token`): commands
    # that need the database only run without them (an auditor has no PIN)
    token: TokenConfig | None = None
    pin_file, pin_env = v["token.pin_file"], v["token.pin_env"]
    problems = [
        why
        for wrong, why in (
            (not v["token.label"], "token.label is required (the token's label)"),
            (
                (pin_file is None) == (pin_env is None),
                "set exactly one PIN source: token.pin_file or token.pin_env",
            ),
        )
        if wrong
    ]
    if not problems:
        token = TokenConfig(
            module=v["token.module"],
            label=v["token.label"],
            pin=PinSource(file=path_of(pin_file) if pin_file else None, env=pin_env),
            softhsm2_conf=optional("token.softhsm2_conf"),
        )
    eui = {}
    for name in ("supplier.eui", "supplier.dcc_eui"):
        try:
            eui[name] = Eui64.parse(v[name], field=name)
        except InvalidInput as exc:
            raise ConfigurationError(str(exc)) from None
    db_url = v["database.url"].strip()
    if not db_url:
        # No silent default: a fresh database would hand out RequestID counters again.
        raise ConfigurationError("database.url is required (e.g. sqlite:///var/signer.db)")
    if db_url.startswith("sqlite:///") and not db_url.startswith("sqlite:////"):
        rest = db_url.removeprefix("sqlite:///")
        if rest and not rest.startswith(":memory:"):
            db_url = "sqlite:///" + str(path_of(rest))
    _no_ephemeral_ports(v)
    dev_mode = v["server.dev_mode"]
    return Config(
        listen=v["server.listen"],
        token_settings=token,
        token_problem=problems[0] if problems else "",
        supplier_eui=eui["supplier.eui"],
        dcc_eui=eui["supplier.dcc_eui"],
        database_url=db_url,
        schema_dir=optional("duis.schema_dir"),
        smki_issuers=paths("smki.issuers"),
        dcc_certificates=paths("dcc.certificates"),
        xml_signing_key=v["supplier.xml_signing_key"] or None,
        workers=v["server.workers"],
        max_concurrent_rpcs=v["server.max_concurrent_rpcs"],
        pinned_time=v["clock.pinned_time"],
        pinned_for_tests=v["clock.pinned_for_tests"],
        cpl_mode=v["cpl.mode"],
        base_dir=base,
        dev_mode=dev_mode,
        tls=_tls(v, path_of, dev_mode),
        metrics_listen=v["metrics.listen"],
        health_listen=v["server.health_listen"],
        log_format=v["log.format"],
        shutdown_grace=v["server.shutdown_grace"],
        campaigns=_campaigns(v, dev_mode),
    )


def _campaigns(v: dict[str, Any], dev_mode: bool) -> CampaignsConfig:
    if v["campaigns.dev_self_approval"] and not dev_mode:
        raise ConfigurationError(
            "campaigns.dev_self_approval = true is for development mode only (server.dev_mode "
            "= true): outside it a requester never approves its own campaign"
        )
    return CampaignsConfig(
        approvals_required=v["campaigns.approvals_required"],
        approvals_required_large=v["campaigns.approvals_required_large"],
        large_campaign_devices=v["campaigns.large_campaign_devices"],
        approval_ttl=parse_duration(v["campaigns.approval_ttl"]),
        direct_limit=v["campaigns.direct_limit"],
        direct_window=parse_duration(v["campaigns.direct_window"]),
        dev_self_approval=v["campaigns.dev_self_approval"],
    )


LISTEN_SETTINGS = ("server.listen", "server.health_listen", "metrics.listen")


def _no_ephemeral_ports(v: dict[str, Any]) -> None:
    """Port 0 binds a port nobody was told about: probes, scrapers and clients miss it."""
    if v["server.ephemeral_ports_for_tests"]:
        return
    for name in LISTEN_SETTINGS:
        address = v[name]
        if address is not None and address.rpartition(":")[2].lstrip("0") == "":
            raise ConfigurationError(
                f"{name} {echo(address)}: port 0 is outside 1..65535 (the system would pick "
                "one no client knows); a test server sets "
                "server.ephemeral_ports_for_tests = true"
            )


def _tls(v: dict[str, Any], path_of: Any, dev_mode: bool) -> TlsConfig | None:
    """All four files or none; `serve` refuses none outside development mode."""
    given = [n for n in TLS_FILES if v[f"tls.{n}"]]
    if not given:
        if v["tls.crls"]:
            raise ConfigurationError("tls.crls is set without [tls] cert, key, client_ca, policy")
        return None
    if dev_mode:
        raise ConfigurationError(
            "server.dev_mode = true and [tls] are both set: development "
            "mode serves plaintext; remove one"
        )
    missing = [f"tls.{n}" for n in TLS_FILES if n not in given]
    if missing:
        raise ConfigurationError(f"{', '.join(missing)} required with the rest of [tls]")
    cert, key, client_ca, policy = (path_of(v[f"tls.{n}"]) for n in TLS_FILES)
    crls = tuple(path_of(p) for p in v["tls.crls"])
    return TlsConfig(cert, key, client_ca, policy, crls=crls)
