"""The one declaration of every setting: section, key, type, default, environment variable.

The loader validates against it and the README's table is generated from it, so a setting
cannot be read without being declared, documented and typed. Unknown sections and keys are
refused (a misspelt ``[tsl]`` must not silently turn a check off).
"""

from __future__ import annotations

import datetime as dt
import difflib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from signer.errors import ConfigurationError

DEFAULT_MODULE = "/usr/lib/softhsm/libsofthsm2.so"
LOG_FORMATS = ("json", "text")
CPL_MODES = ("strict", "advisory")
#: the longest client value echoed back in a message
_ECHO = 40


def echo(value: Any) -> str:
    """A short, quoted prefix of a value for an error message."""
    text = repr(value)
    return text if len(text) <= _ECHO else text[: _ECHO - 1] + "…"


@dataclass(frozen=True)
class Setting:
    """One key: what it is, how it is typed, where else it may come from."""

    section: str
    key: str
    kind: str  # a key of KINDS
    doc: str
    default: Any = None
    env: str | None = None
    required: bool = False
    choices: tuple[str, ...] = ()
    minimum: int | None = None
    #: re-read on SIGHUP; everything else needs a restart
    reloads: bool = False

    @property
    def name(self) -> str:
        return f"{self.section}.{self.key}"


def _s(section: str, key: str, kind: str, doc: str, **kw: Any) -> Setting:
    return Setting(section, key, kind, doc, **kw)


SETTINGS: tuple[Setting, ...] = (
    _s("server", "listen", "listen", "gRPC address host:port", default="127.0.0.1:50051",
       env="SIGNER_LISTEN"),
    _s("server", "dev_mode", "bool", "development mode: plaintext, no client certificates, "
       "every call allowed; schema and SMKI issuers optional", default=False,
       env="SIGNER_DEV_MODE"),
    _s("server", "workers", "int", "gRPC worker threads", default=16, minimum=1,
       env="SIGNER_WORKERS"),
    _s("server", "max_concurrent_rpcs", "int", "calls served or queued at once; beyond it "
       "RESOURCE_EXHAUSTED", default=1000, minimum=1, env="SIGNER_MAX_CONCURRENT_RPCS"),
    _s("server", "health_listen", "listen?", "plaintext grpc.health.v1-only port for probes "
       'without a client certificate; "" or unset: none', env="SIGNER_HEALTH_LISTEN"),
    _s("server", "ephemeral_ports_for_tests", "bool", "lets listen addresses use port 0 "
       "(the system picks a free port, printed on the READY line): test servers only",
       default=False, env="SIGNER_EPHEMERAL_PORTS_FOR_TESTS"),
    _s("server", "shutdown_grace", "seconds", "seconds calls in flight get after SIGTERM "
       "(0..3600)", default=10.0, env="SIGNER_SHUTDOWN_GRACE"),
    _s("tls", "cert", "path", "the server's certificate chain (PEM)", env="SIGNER_TLS_CERT",
       reloads=True),
    _s("tls", "key", "path", "its key (a TLS key, not an HSM key)", env="SIGNER_TLS_KEY",
       reloads=True),
    _s("tls", "client_ca", "path", "CA(s) client certificates chain to",
       env="SIGNER_TLS_CLIENT_CA", reloads=True),
    _s("tls", "policy", "path", "client identities -> roles -> RPCs", env="SIGNER_POLICY",
       reloads=True),
    _s("tls", "crls", "paths", "CRLs (PEM or DER) client certificates are checked against "
       "(SIGHUP re-reads the files listed; a new path needs a restart)",
       default=(), env="SIGNER_TLS_CRLS", reloads=True),
    _s("metrics", "listen", "listen?", '/metrics address; "" turns it off',
       default="127.0.0.1:9464", env="SIGNER_METRICS_LISTEN"),
    _s("log", "format", "choice", "json or text", default="json", choices=LOG_FORMATS,
       env="SIGNER_LOG_FORMAT"),
    _s("token", "module", "str", "the PKCS#11 library", default=DEFAULT_MODULE,
       env="SIGNER_TOKEN_MODULE"),
    _s("token", "label", "str", "the token's label", required=True, env="SIGNER_TOKEN_LABEL"),
    _s("token", "pin_file", "path", "file holding the user PIN (exactly one PIN source)",
       env="SIGNER_PIN_FILE"),
    _s("token", "pin_env", "str", "environment variable holding the user PIN",
       env="SIGNER_PIN_ENV"),
    _s("token", "softhsm2_conf", "path", "SoftHSM2 only: its configuration file",
       env="SIGNER_SOFTHSM2_CONF"),
    _s("supplier", "eui", "eui", "the Supplier's EUI-64: RequestID originator, certificate "
       "EUI", required=True, env="SIGNER_SUPPLIER_EUI"),
    _s("supplier", "dcc_eui", "eui", "RequestID target of SR 11.1 / 11.4",
       default="90-B3-D5-1F-30-00-00-02", env="SIGNER_DCC_EUI"),
    _s("supplier", "xml_signing_key", "str", "a label or PKCS#11 URI; must be on the token; "
       "unset: the one active xml-sign key", env="SIGNER_XML_SIGNING_KEY"),
    _s("database", "url", "str", "SQLAlchemy URL: sqlite:///… or postgresql+psycopg://…",
       required=True, env="SIGNER_DATABASE_URL"),
    _s("duis", "schema_dir", "path", "directory with DUIS_Schema_V5.4.xsd and its imports; "
       "required outside dev_mode", env="SIGNER_SCHEMA_DIR"),
    _s("smki", "issuers", "paths", "SMKI Issuing CA certificates key certificates chain to; "
       "required outside dev_mode", default=(), env="SIGNER_SMKI_ISSUERS"),
    _s("dcc", "certificates", "paths", "the DCC's XML-signing certificates DUIS responses "
       "must be signed by", default=(), env="SIGNER_DCC_CERTIFICATES"),
    _s("cpl", "mode", "choice", "strict: an image not on the CPL is not verified",
       default="strict", choices=CPL_MODES, env="SIGNER_CPL_MODE"),
    _s("clock", "pinned_time", "time", "a fixed now, ISO 8601 with zone; tests only",
       env="SIGNER_PINNED_TIME"),
    _s("clock", "pinned_for_tests", "bool", "lets pinned_time run outside dev_mode (test "
       "servers on the published, expired test certificates only)", default=False,
       env="SIGNER_PINNED_FOR_TESTS"),
    _s("campaigns", "approvals_required", "int", "approvals a campaign plan needs below "
       "large_campaign_devices eligible devices", default=1, minimum=1,
       env="SIGNER_CAMPAIGN_APPROVALS"),
    _s("campaigns", "approvals_required_large", "int", "approvals a plan with "
       "large_campaign_devices or more eligible devices needs", default=2, minimum=1,
       env="SIGNER_CAMPAIGN_APPROVALS_LARGE"),
    _s("campaigns", "large_campaign_devices", "int", "eligible devices from which a plan is "
       "large", default=100, minimum=1, env="SIGNER_LARGE_CAMPAIGN_DEVICES"),
    _s("campaigns", "approval_ttl", "duration", 'how long an approval counts: "24h", "90m", '
       '"3600s"', default="24h", env="SIGNER_APPROVAL_TTL"),
    _s("campaigns", "direct_limit", "int", "devices per image over direct_window above which "
       "Resign, BuildDUIS, BuildActivation and StreamActivation refuse (a campaign is "
       "needed), counted per signature kind over every direct call; 0: no limit",
       default=1000, minimum=0, env="SIGNER_DIRECT_LIMIT"),
    _s("campaigns", "direct_window", "duration", "the window direct_limit counts an image's "
       'direct-call devices over: "24h", "90m", "3600s"', default="24h",
       env="SIGNER_DIRECT_WINDOW"),
    _s("campaigns", "dev_self_approval", "bool", "the requester may approve its own plan "
       "(warned at each use): development mode only", default=False,
       env="SIGNER_DEV_SELF_APPROVAL"),
)  # fmt: skip

BY_NAME: dict[str, Setting] = {s.name: s for s in SETTINGS}
SECTIONS: dict[str, dict[str, Setting]] = {}
for _setting in SETTINGS:
    SECTIONS.setdefault(_setting.section, {})[_setting.key] = _setting
ENV_OVERRIDES: dict[str, tuple[str, str]] = {
    s.env: (s.section, s.key) for s in SETTINGS if s.env is not None
}


def _suggest(word: str, candidates: list[str]) -> str:
    close = difflib.get_close_matches(word, candidates, n=1, cutoff=0.6)
    return f" (did you mean {close[0]}?)" if close else ""


def check_names(raw: Mapping[str, Any]) -> None:
    """Refuse unknown sections, keys and values that are not tables where a section is."""
    for section, table in raw.items():
        if section not in SECTIONS:
            known = sorted(SECTIONS)
            raise ConfigurationError(
                f"unknown section [{section}]{_suggest(section, known)}; known: {', '.join(known)}"
            )
        if not isinstance(table, dict):
            raise ConfigurationError(f"{section} must be a [{section}] table")
        for key in table:
            if key not in SECTIONS[section]:
                names = [f"{section}.{k}" for k in SECTIONS[section]] + list(BY_NAME)
                hint = _suggest(f"{section}.{key}", names) or _suggest(
                    str(key), list(SECTIONS[section])
                )
                raise ConfigurationError(f"unknown setting {section}.{key}{hint}")


# -- kinds: (value from TOML or the environment, setting) -> typed value --------------------


def _str(value: Any, s: Setting, from_env: bool) -> str:
    if not isinstance(value, str):
        raise ConfigurationError(f"{s.name} {echo(value)} is not a string")
    return value


def _int(value: Any, s: Setting, from_env: bool) -> int:
    if from_env and isinstance(value, str):
        try:
            value = int(value.strip())
        except ValueError:
            raise ConfigurationError(f"{s.name} {echo(value)} is not a whole number") from None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigurationError(f"{s.name} {echo(value)} is not a whole number")
    if s.minimum is not None and value < s.minimum:
        raise ConfigurationError(f"{s.name} {value} is below {s.minimum}")
    return value


def _seconds(value: Any, s: Setting, from_env: bool) -> float:
    if from_env and isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            raise ConfigurationError(f"{s.name} {echo(value)} is not a number of seconds") from None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigurationError(f"{s.name} {echo(value)} is not a number of seconds")
    if not 0 <= value <= 3600:
        raise ConfigurationError(f"{s.name} {value} is outside 0..3600 seconds")
    return float(value)


def _bool(value: Any, s: Setting, from_env: bool) -> bool:
    if isinstance(value, bool):
        return value
    if from_env and isinstance(value, str):
        text = value.strip().lower()
        if text in ("1", "true", "yes", "on"):
            return True
        if text in ("0", "false", "no", "off", ""):
            return False
    raise ConfigurationError(f"{s.name} {echo(value)} is not true or false")


def _choice(value: Any, s: Setting, from_env: bool) -> str:
    if value not in s.choices:
        raise ConfigurationError(f"{s.name} {echo(value)} is not {' or '.join(s.choices)}")
    return str(value)


def _listen(value: Any, s: Setting, from_env: bool) -> str:
    text = _str(value, s, from_env)
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or (host.startswith("[") != host.endswith("]")):
        raise ConfigurationError(f"{s.name} {echo(text)} is not host:port")
    # 0 (the system picks one) passes here; the loader refuses it without
    # server.ephemeral_ports_for_tests, which only it can see
    if not 0 <= int(port) <= 65535:
        raise ConfigurationError(f"{s.name} {echo(text)}: port {int(port)} is outside 1..65535")
    return text


def _optional_listen(value: Any, s: Setting, from_env: bool) -> str | None:
    if value == "":
        return None
    return _listen(value, s, from_env)


def _path(value: Any, s: Setting, from_env: bool) -> str:
    text = _str(value, s, from_env)
    if not text.strip():
        raise ConfigurationError(f"{s.name} is empty: give a path or leave it out")
    return text


def _paths(value: Any, s: Setting, from_env: bool) -> tuple[str, ...]:
    if from_env and isinstance(value, str):
        value = [p.strip() for p in value.split(",") if p.strip()]
    if not isinstance(value, list):
        raise ConfigurationError(
            f'{s.name} {echo(value)} is not a list of paths (write ["a.pem"], not "a.pem")'
        )
    for item in value:
        if not isinstance(item, str) or not item.strip():
            raise ConfigurationError(f"{s.name}: {echo(item)} is not a path")
    return tuple(value)


def _eui(value: Any, s: Setting, from_env: bool) -> str:
    return _str(value, s, from_env)  # parsed by the loader (Eui64 names the setting)


def _time(value: Any, s: Setting, from_env: bool) -> dt.datetime | None:
    """A fixed "now" for tests against the published, partly expired test certificates."""
    if value == "":
        return None
    if isinstance(value, dt.datetime):
        when = value
    elif isinstance(value, str):
        try:
            when = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise ConfigurationError(f"{s.name} {echo(value)} is not ISO 8601") from None
    else:
        raise ConfigurationError(f"{s.name} {echo(value)} is not a date and time")
    if when.tzinfo is None:
        raise ConfigurationError(f"{s.name} needs a time zone (e.g. ...Z)")
    return when


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _duration(value: Any, s: Setting, from_env: bool) -> str:
    """A duration as written: whole seconds, minutes, hours or days ("24h", "90m",
    "3600s", "2d"), more than zero; `parse_duration` turns it into a timedelta."""
    text = _str(value, s, from_env).strip().lower()
    number, unit = text[:-1], text[-1:]
    if unit not in _UNITS or not number.isdigit() or int(number) == 0:
        raise ConfigurationError(
            f'{s.name} {echo(value)} is not a duration such as "24h", "90m" or "3600s"'
        )
    return text


def parse_duration(text: str) -> dt.timedelta:
    """A duration `_duration` accepted, as a timedelta."""
    return dt.timedelta(seconds=int(text[:-1]) * _UNITS[text[-1]])


KINDS: dict[str, Callable[[Any, Setting, bool], Any]] = {
    "str": _str,
    "int": _int,
    "seconds": _seconds,
    "bool": _bool,
    "choice": _choice,
    "listen": _listen,
    "listen?": _optional_listen,
    "path": _path,
    "paths": _paths,
    "eui": _eui,
    "time": _time,
    "duration": _duration,
}
_KIND_NAMES = {
    "str": "string",
    "int": "integer",
    "seconds": "number",
    "bool": "boolean",
    "choice": "string",
    "listen": "host:port",
    "listen?": 'host:port or ""',
    "path": "path",
    "paths": "list of paths",
    "eui": "EUI-64",
    "time": "date-time",
    "duration": "duration",
}


def validate(raw: Mapping[str, Mapping[str, Any]], from_env: set[str]) -> dict[str, Any]:
    """Every declared setting by name, typed; ``from_env`` names the ones given as text."""
    check_names(raw)
    out: dict[str, Any] = {}
    for s in SETTINGS:
        table = raw.get(s.section, {})
        if s.key not in table:
            # the token's settings are required by the commands that open it, and checked
            # there (`Config.token`): those that need the database only run without them
            if s.required and s.section != "token":
                raise ConfigurationError(f"{s.name} is required ({s.doc})")
            out[s.name] = s.default
            continue
        out[s.name] = KINDS[s.kind](table[s.key], s, s.name in from_env)
    return out


def markdown_table() -> str:
    """The README's settings table, from the declaration."""
    rows = [
        "| setting | type | default | environment | restart? | what |",
        "|---|---|---|---|---|---|",
    ]
    for s in SETTINGS:
        if s.required:
            default = "required"
        elif s.default in (None, ()):
            default = "—"
        elif isinstance(s.default, bool):
            default = str(s.default).lower()
        else:
            default = f"`{s.default}`"
        kind = _KIND_NAMES[s.kind] if not s.choices else " / ".join(s.choices)
        restart = "SIGHUP" if s.reloads else "restart"
        rows.append(f"| `{s.name}` | {kind} | {default} | `{s.env}` | {restart} | {s.doc} |")
    return "\n".join(rows)
