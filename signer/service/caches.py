"""Per-process caches of facts that cannot change under us.

A verified library image is immutable (a failed verdict never replaces it), and a
certificate's profile verdict holds for as long as the certificate and its issuer are
valid; both are re-derived on the hot path otherwise (a 10 MB read from the database, X.509
parsing per call).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from signer.cpl.paths import PathEvaluator, UpgradeGraph
from signer.errors import PolicyRefused
from signer.registry import cpl, keys
from signer.registry.db import Database
from signer.registry.library import LibraryImage
from signer.smki.certificate import SmkiCertificate
from signer.smki.lifecycle import KeyPurpose, KeyState


@dataclass(frozen=True)
class VerifiedImage:
    record: LibraryImage
    manufacturer_image: bytes
    digest: bytes  # SHA-256 of manufacturer_image, recomputed when loaded


class VerifiedImages:
    """An LRU of verified images bounded by their total size."""

    def __init__(self, max_bytes: int = 48 * 1024 * 1024) -> None:
        self._max = max_bytes
        self._size = 0
        self._items: OrderedDict[str, VerifiedImage] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, image_id: str, load: Callable[[], LibraryImage | None]) -> VerifiedImage | None:
        with self._lock:
            hit = self._items.get(image_id)
            if hit is not None:
                self._items.move_to_end(image_id)
                return hit
        record = load()
        if record is None or not record.verified or record.manufacturer_image is None:
            return None
        data = record.manufacturer_image
        digest = hashlib.sha256(data).digest()
        if digest.hex() != record.image_id:
            raise PolicyRefused(
                f"library image {record.image_id} does not hash to its ID: "
                "the stored image is corrupt"
            )
        item = VerifiedImage(record, data, digest)
        with self._lock:
            if image_id not in self._items and len(data) <= self._max:
                self._items[image_id] = item
                self._size += len(data)
                while self._size > self._max:
                    _, old = self._items.popitem(last=False)
                    self._size -= len(old.manufacturer_image)
        return item


class CertificateVerdicts:
    """Profile checks that passed, with the period in which that verdict holds."""

    def __init__(self) -> None:
        self._items: dict[bytes, tuple[SmkiCertificate, dt.datetime, dt.datetime]] = {}
        self._lock = threading.Lock()

    def get(self, fingerprint: bytes, now: dt.datetime) -> SmkiCertificate | None:
        with self._lock:
            hit = self._items.get(fingerprint)
        if hit is not None and hit[1] <= now <= hit[2]:
            return hit[0]
        return None

    def put(
        self,
        fingerprint: bytes,
        verdict: SmkiCertificate,
        valid_from: dt.datetime,
        valid_to: dt.datetime,
    ) -> None:
        with self._lock:
            self._items[fingerprint] = (verdict, valid_from, valid_to)


class UpgradeGraphs:
    """The CPL's upgrade graph, rebuilt only when an import changed the CPL."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._generation: object = None
        self._graph: UpgradeGraph | None = None
        self._evaluators: dict[str, PathEvaluator] = {}

    def graph(self, db: Database) -> UpgradeGraph:
        generation = cpl.generation(db)
        with self._lock:
            if self._graph is None or generation != self._generation:
                self._graph = UpgradeGraph(cpl.all_entries(db))
                self._generation = generation
                self._evaluators = {}
            return self._graph

    def evaluator(self, db: Database, target_id: str) -> PathEvaluator:
        graph = self.graph(db)
        with self._lock:
            if target_id not in self._evaluators:
                self._evaluators[target_id] = PathEvaluator(graph, target_id)
            return self._evaluators[target_id]


class LedgerStates:
    """The key ledger's states as signing sees them: re-read at most once a second.

    A key retired by another process may look active here for up to ``MAX_AGE``; the
    retirement also clears CKA_SIGN on the token, which refuses at once.
    """

    MAX_AGE = 1.0
    MIN_AGE_ON_MISS = 0.25  # a key not (yet) active is looked up again, but not every call

    def __init__(self) -> None:
        self._states: dict[bytes, tuple[KeyState, KeyPurpose]] = {}
        self._read_at = -self.MAX_AGE
        self._lock = threading.Lock()

    def get(
        self, db: Database, token_label: str, key_id: bytes
    ) -> tuple[KeyState, KeyPurpose] | None:
        age = time.monotonic() - self._read_at
        found = self._states.get(key_id)
        if age >= self.MAX_AGE or (
            age >= self.MIN_AGE_ON_MISS and (found is None or found[0] != KeyState.ACTIVE)
        ):
            with self._lock:
                self._states = keys.states(db, token_label)
                self._read_at = time.monotonic()
            found = self._states.get(key_id)
        return found

    def invalidate(self) -> None:
        self._read_at = -self.MAX_AGE
