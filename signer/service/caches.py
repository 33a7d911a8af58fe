"""Per-process caches: facts that cannot change under us, and trust that tells us it did.

A verified library image is immutable (a failed verdict never replaces it), and a
certificate's profile verdict holds for as long as the certificate and its issuer are
valid; both are re-derived on the hot path otherwise (a 10 MB read from the database, X.509
parsing per call). What signing trusts (CPL, manufacturer certificates, key ledger) can
change in any process: it is cached per trust generation, which database triggers move
with every change (`signer.registry.trust`).
"""

from __future__ import annotations

import contextvars
import datetime as dt
import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

from signer.cpl.model import CplEntry
from signer.cpl.paths import PathEvaluator, UpgradeGraph
from signer.errors import PolicyRefused
from signer.registry import cpl, keys, manufacturers, trust
from signer.registry.db import Database
from signer.registry.library import LibraryImage
from signer.registry.manufacturers import ManufacturerCert
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


class TrustSnapshot:
    """What signing trusts, as of one trust generation: the CPL and its upgrade graph, the
    manufacturer certificates, the key ledger, and (filled as asked) which certificate
    verified each library image."""

    def __init__(
        self,
        generation: int,
        entries: Iterable[CplEntry],
        manufacturers: Iterable[ManufacturerCert],
        ledger: Mapping[tuple[str, bytes], tuple[KeyState, KeyPurpose]],
    ) -> None:
        self.generation = generation
        listed = sorted(entries, key=lambda e: e.entry_id)
        self.entries: dict[str, CplEntry] = {e.entry_id: e for e in listed}
        self.graph = UpgradeGraph(listed)
        self._by_image: dict[bytes, list[CplEntry]] = {}
        for e in listed:
            if e.image_hash is not None:
                self._by_image.setdefault(e.image_hash, []).append(e)
        self._manufacturers: dict[int, list[ManufacturerCert]] = {}
        for c in manufacturers:
            self._manufacturers.setdefault(c.code, []).append(c)
        self._ledger = dict(ledger)
        self._evaluators: dict[str, PathEvaluator] = {}
        self._verified_by: dict[str, tuple[bool, str | None]] = {}
        self._lock = threading.Lock()

    def for_image(self, image_hash: bytes) -> list[CplEntry]:
        """Every entry recording this Manufacturer Image hash, by entry ID."""
        return list(self._by_image.get(image_hash, ()))

    def manufacturer_certificates(self, code: int) -> list[ManufacturerCert]:
        return list(self._manufacturers.get(code, ()))

    def key_state(self, token_label: str, key_id: bytes) -> tuple[KeyState, KeyPurpose] | None:
        return self._ledger.get((token_label, key_id))

    def evaluator(self, target_id: str) -> PathEvaluator:
        with self._lock:
            if target_id not in self._evaluators:
                self._evaluators[target_id] = PathEvaluator(self.graph, target_id)
            return self._evaluators[target_id]

    def verified_by(
        self, image_id: str, read: Callable[[], tuple[bool, str | None]]
    ) -> tuple[bool, str | None]:
        """Whether the image is in the library and its verifying certificate's fingerprint,
        read once per generation (a re-verification or a deletion moves the generation)."""
        with self._lock:
            if image_id in self._verified_by:
                return self._verified_by[image_id]
        found = read()
        with self._lock:
            self._verified_by[image_id] = found
        return found


class TrustCache:
    """The current `TrustSnapshot`: one read of the trust generation per look, a reload only
    when it moved. Any change committed anywhere (this process, a replica, the CLI, SQL) is
    seen by the next call that starts after it; within `pinned`, a call sees one snapshot
    throughout."""

    def __init__(self) -> None:
        self._snapshot: TrustSnapshot | None = None
        self._lock = threading.Lock()
        self._pinned: contextvars.ContextVar[TrustSnapshot | None] = contextvars.ContextVar(
            "signer_trust_snapshot", default=None
        )

    def current(self, db: Database) -> TrustSnapshot:
        pinned = self._pinned.get()
        if pinned is not None:
            return pinned
        generation = trust.current(db)
        snapshot = self._snapshot
        if snapshot is not None and snapshot.generation == generation:
            return snapshot
        with self._lock:
            snapshot = self._snapshot
            if snapshot is None or snapshot.generation != generation:
                # read after the generation: at least as new as it (a change committed in
                # between moves it again, and the next look reloads)
                snapshot = TrustSnapshot(
                    generation,
                    cpl.all_entries(db),
                    manufacturers.certificates(db),
                    keys.all_states(db),
                )
                self._snapshot = snapshot
            return snapshot

    @contextmanager
    def pinned(self, db: Database) -> Iterator[TrustSnapshot]:
        """One snapshot for the whole block (a call): every check of it agrees."""
        snapshot = self.current(db)
        token = self._pinned.set(snapshot)
        try:
            yield snapshot
        finally:
            self._pinned.reset(token)
