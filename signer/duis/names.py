"""Distinguished names compared as names, not text, the way XMLDSig KeyInfo writes issuers.

Parsing is ``cryptography``'s RFC 4514 parser (UTF-8 escapes such as ``\\C3\\A9`` included);
only the leniencies real tools need are added before it: attribute types in any case or with
an ``OID.`` prefix, spaces around separators, the reversed (X.500) order, values compared
case-insensitively.
"""

from __future__ import annotations

import re
from typing import Final

from cryptography import x509
from cryptography.x509.oid import NameOID


def same_distinguished_name(a: str, b: str) -> bool:
    """Compare RFC 4514 strings as names, not text: ``CN=U1, OU=07`` equals ``CN=U1,OU=07``.

    The reversed (X.500) order is accepted too, since some tools write it that way.
    """
    na, nb = parse_distinguished_name(a), parse_distinguished_name(b)
    return na is not None and nb is not None and same_name(na, nb)


#: An attribute type OpenSSL and Java tools write that RFC 4514 does not define.
_EXTRA_NAMES: Final = {"SERIALNUMBER": NameOID.SERIAL_NUMBER}
#: Escape pairs (matched first, so an escaped separator is left alone), an attribute type
#: where one may start with the spaces around it and its ``=``, or trailing spaces.
_DN_LENIENCY = re.compile(
    r"(?P<escape>\\.)"
    r"|(?:^|\s*(?P<sep>[,+]))\s*(?:OID\.)?(?P<type>[A-Za-z][A-Za-z0-9-]*|[0-9.]+)\s*=\s*"
    r"|\s+$",
    re.IGNORECASE | re.DOTALL,
)


def parse_distinguished_name(text: str) -> x509.Name | None:
    """``cryptography``'s RFC 4514 parse, made as lenient as ``same_distinguished_name``
    promises: attribute types in any case or with an ``OID.`` prefix, spaces around ``,``,
    ``+`` and ``=``. None for text that is no name."""

    def tidy(m: re.Match[str]) -> str:
        if m["type"] is None:
            return m["escape"] or ""
        return f"{m['sep'] or ''}{m['type'].upper()}="

    try:
        name = x509.Name.from_rfc4514_string(_DN_LENIENCY.sub(tidy, text), _EXTRA_NAMES)
    except ValueError:
        return None
    return name if name.rdns else None


def same_name(a: x509.Name, b: x509.Name) -> bool:
    """Equal RDN by RDN, values compared case-insensitively, in either order."""
    ka, kb = _rdn_key(a), _rdn_key(b)
    return ka == kb or ka == kb[::-1]


def _rdn_key(name: x509.Name) -> tuple[frozenset[tuple[str, str | bytes]], ...]:
    return tuple(
        frozenset(
            (a.oid.dotted_string, a.value.casefold() if isinstance(a.value, str) else a.value)
            for a in rdn
        )
        for rdn in name.rdns
    )
