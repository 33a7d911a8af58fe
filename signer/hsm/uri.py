"""Naming a key: a plain label, or a PKCS#11 URI (RFC 7512) as p11tool and OpenSSL print them.

Only what picks one key pair on the configured token is understood. Everything else is
refused by name rather than ignored, because an ignored attribute would let the URI select a
key the operator did not mean:

* ``manufacturer``, ``model``, ``serial`` (token identity) are refused: the token is chosen
  by the configuration, and we have no honest way to check them here. Name it with ``token=``.
* ``slot-*`` and ``library-*`` are refused: the module and slot come from the configuration.
* Every query attribute is refused: ``pin-value``/``pin-source`` because PINs never travel in
  a key name, ``module-name``/``module-path`` because the module comes from the configuration.
  Error messages never repeat a query value, so a pasted PIN does not reach the logs.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from urllib.parse import quote, unquote_to_bytes

from signer.errors import InvalidInput

MAX_LABEL_LENGTH = 128

_SCHEME = "pkcs11:"
_KEY_TYPES = ("private", "public", "cert")
_TOKEN_IDENTITY = ("manufacturer", "model", "serial")
_PIN_ADVICE = (
    "PINs never go on the command line or in configuration; use the token's pin_file or pin_env"
)
_MODULE_ADVICE = "the PKCS#11 module comes from the configuration"
_REFUSED = {
    "pin-value": _PIN_ADVICE,
    "pin-source": _PIN_ADVICE,
    "module-name": _MODULE_ADVICE,
    "module-path": _MODULE_ADVICE,
    "slot-id": "slots are not selectable; name the token with token=",
    "slot-description": "slots are not selectable; name the token with token=",
    "slot-manufacturer": "slots are not selectable; name the token with token=",
    "library-manufacturer": _MODULE_ADVICE,
    "library-description": _MODULE_ADVICE,
    "library-version": _MODULE_ADVICE,
    **{
        name: "the token is chosen by the configuration; name it with token= only"
        for name in _TOKEN_IDENTITY
    },
}
_NAME = re.compile(r"[A-Za-z0-9_-]+")
# RFC 7512 pk11-pchar: unreserved, pk11-res-avail, "&", and percent-encoded octets.
_PCHAR = re.compile(r"(?:[A-Za-z0-9\-._~:\[\]@!$'()*+,=&]|%[0-9A-Fa-f]{2})*")
# What describe() may leave unencoded: pk11-pchar minus "%" escapes.
_SAFE = "-._~:[]@!$'()*+,=&"


@dataclass(frozen=True)
class KeyRef:
    """Which key pair to use; None means "any" for that attribute."""

    label: str | None  # CKA_LABEL (URI attribute "object")
    key_id: bytes | None  # CKA_ID ("id")
    token: str | None  # token label ("token")

    def __post_init__(self) -> None:
        if self.label is None and self.key_id is None:
            raise ValueError("a KeyRef needs a label or a key_id")

    def describe(self) -> str:
        """The form error messages use: a quoted label, or a URI when that says more."""
        if self.token is None and self.key_id is None:
            return repr(self.label)
        parts = []
        if self.token is not None:
            parts.append("token=" + quote(self.token, safe=_SAFE))
        if self.label is not None:
            parts.append("object=" + quote(self.label, safe=_SAFE))
        if self.key_id is not None:
            parts.append("id=" + "".join(f"%{b:02X}" for b in self.key_id))
        return _SCHEME + ";".join(parts)


def parse_key_ref(text: str, *, field: str = "key") -> KeyRef:
    """Read a key name from configuration or a request; see the module docstring for the rules.

    The scheme is matched case-insensitively (RFC 3986 §3.1), attribute names exactly.
    """
    if text[: len(_SCHEME)].lower() != _SCHEME:
        return KeyRef(label=_check_label(text, field=field, what="label"), key_id=None, token=None)
    path, _, query = text[len(_SCHEME) :].partition("?")
    if query:
        for qattr in query.split("&"):
            _refuse_query_attribute(qattr.partition("=")[0], field=field)
    attrs: dict[str, str] = {}
    for pattr in path.split(";") if path else ():
        name, eq, value = pattr.partition("=")
        if not _NAME.fullmatch(name):
            raise InvalidInput(
                "PKCS#11 URI has an empty or malformed attribute name"
                + (f" {name!r}" if name and len(name) <= 40 else ""),
                field=field,
            )
        if name in _REFUSED:
            raise InvalidInput(
                f"PKCS#11 URI attribute {name!r} is not supported: {_REFUSED[name]}", field=field
            )
        if name not in ("token", "object", "id", "type"):
            raise InvalidInput(
                f"PKCS#11 URI attribute {name!r} is unknown (supported: token, object, id, type)",
                field=field,
            )
        if not eq:
            raise InvalidInput(f"PKCS#11 URI attribute {name!r} has no '=' value", field=field)
        if name in attrs:
            raise InvalidInput(f"PKCS#11 URI attribute {name!r} is given twice", field=field)
        attrs[name] = value
    if "type" in attrs:
        kind = _decode(attrs["type"], "type", field).decode("utf-8", "replace")
        if kind not in _KEY_TYPES:
            raise InvalidInput(
                f"PKCS#11 URI attribute 'type' is {kind[:20]!r}; it must be one "
                f"of {', '.join(_KEY_TYPES)} (all name the same key pair)",
                field=field,
            )
    label = token = None
    key_id = None
    if "object" in attrs:
        label = _check_label(
            _utf8(attrs["object"], "object", field), field=field, what="attribute 'object'"
        )
    if "token" in attrs:
        token = _check_label(
            _utf8(attrs["token"], "token", field), field=field, what="attribute 'token'"
        )
    if "id" in attrs:
        key_id = _decode(attrs["id"], "id", field)
        if not key_id:
            raise InvalidInput("PKCS#11 URI attribute 'id' is empty", field=field)
    if label is None and key_id is None:
        raise InvalidInput("PKCS#11 URI names no key: give attribute 'object' or 'id'", field=field)
    return KeyRef(label=label, key_id=key_id, token=token)


def _refuse_query_attribute(name: str, *, field: str) -> None:
    """Every query attribute is refused; only its name is ever shown, never its value."""
    if name in _REFUSED:
        raise InvalidInput(
            f"PKCS#11 URI query attribute {name!r} is not accepted: {_REFUSED[name]}", field=field
        )
    shown = repr(name) if _NAME.fullmatch(name) and len(name) <= 40 else "(malformed)"
    raise InvalidInput(
        f"PKCS#11 URI query attribute {shown} is unknown; no query attributes are accepted",
        field=field,
    )


def _decode(value: str, name: str, field: str) -> bytes:
    if not _PCHAR.fullmatch(value):
        bad = next((m.group() for m in re.finditer(r"%(?![0-9A-Fa-f]{2}).{0,2}", value)), None)
        detail = (
            f"malformed percent-encoding {bad!r}"
            if bad is not None
            else "a character that must be percent-encoded (e.g. space as %20)"
        )
        raise InvalidInput(f"PKCS#11 URI attribute {name!r} has {detail}", field=field)
    return unquote_to_bytes(value)


def _utf8(value: str, name: str, field: str) -> str:
    try:
        return _decode(value, name, field).decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidInput(
            f"PKCS#11 URI attribute {name!r} is not UTF-8 once percent-decoded", field=field
        ) from None


def _check_label(label: str, *, field: str, what: str) -> str:
    if not label:
        raise InvalidInput(f"key {what} is empty", field=field)
    if len(label) > MAX_LABEL_LENGTH:
        raise InvalidInput(
            f"key {what} has {len(label)} characters, at most {MAX_LABEL_LENGTH} allowed",
            field=field,
        )
    if any(unicodedata.category(c) == "Cc" for c in label):
        raise InvalidInput(f"key {what} contains a control character", field=field)
    return label
