"""The session's SoftHSM2 tokens, and the published test keys imported into them."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from signer.errors import NotFound
from signer.hsm.pin import Pin
from signer.hsm.token import Token
from signer.service import admin

MODULE = os.environ.get("SIGNER_TEST_MODULE", "/usr/lib/softhsm/libsofthsm2.so")
TOKEN_LABEL = "signer-test"
Z1B_TOKEN_LABEL = "signer-z1b"
SPARE_TOKEN_LABEL = "signer-spare"  # never logged in: for the wrong-PIN test
# the key-lifecycle tests run twice (SQLite, PostgreSQL) and make keys with fixed labels:
# the second run gets a token of its own
LIFECYCLE_PG_TOKEN_LABEL = "signer-lifecycle-pg"
TOKEN_LABELS = (TOKEN_LABEL, Z1B_TOKEN_LABEL, SPARE_TOKEN_LABEL, LIFECYCLE_PG_TOKEN_LABEL)
USER_PIN = "test-pin-4821"
SO_PIN = "so-pin-1234"


@dataclass
class Hsm:
    """Where the session's tokens live; ``token()`` opens one once and keeps it open."""

    directory: Path
    conf: Path
    pin_file: Path
    tokens: dict[str, Token] = field(default_factory=dict)

    def token(self, label: str = TOKEN_LABEL) -> Token:
        if label not in self.tokens:
            self.tokens[label] = Token(MODULE, label, Pin(self.pin_file.read_text().strip()))
            self.tokens[label].open()
        return self.tokens[label]


#: The published RTDS keys the server tests sign with: label -> (key, certificate) in vectors.
VECTOR_KEYS = {
    "z1-supplier-ds": ("keys/Z1-supplier-ds.key.pem", "certs/Z1-supplier-ds.pem"),
    "xml-sign": (
        "keys/xml-sign-90B3D51F30010000-ds.key.pem",
        "certs/xml-sign-90B3D51F30010000-ds.pem",
    ),
}


def ensure_vector_keys(token: Token, vectors: Path, *labels: str) -> None:
    """``ensure_key`` for the named ``VECTOR_KEYS`` (all of them if none is named)."""
    for label in labels or tuple(VECTOR_KEYS):
        key, cert = VECTOR_KEYS[label]
        ensure_key(token, label, vectors / key, vectors / cert)


def ensure_key(token: Token, label: str, key_pem: Path, cert_pem: Path) -> None:
    """Import a published test key under ``label`` unless the session token already has it."""
    try:
        token.find(label=label)
    except NotFound:
        admin.import_key(token, label, key_pem.read_bytes(), cert_pem.read_bytes())
