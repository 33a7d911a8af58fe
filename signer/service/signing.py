"""The signing door: every signature the service makes for a caller is attributed and recorded.

Use cases sign through a `SigningBatch` (one per call, or per batch of a stream) instead of
calling the token directly. Each signature becomes an audit trail record — who asked
(`signer.caller`), the digest, the key with its SKI and certificate serial, the image,
device count and RequestID — and the batch's records are committed together when the
batch closes. Signatures leave the use case only after that: if the records cannot be
written the batch raises ``Unavailable`` and nothing is returned (fail closed). Attempts
the token refused are recorded too, and signatures made for a call that then failed are
recorded as ``failed``: the HSM signed, the caller got nothing.
"""

from __future__ import annotations

import dataclasses
import logging
from collections import Counter
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy.orm import Session

from signer import metrics
from signer.caller import current
from signer.duis.request import RequestId
from signer.errors import CallEnded, PolicyRefused, SignerError
from signer.hsm.token import TokenKey
from signer.registry import audit
from signer.registry.auditchain import AuditEntry, entries_like
from signer.service.services import Services
from signer.smki.lifecycle import KeyPurpose

log = logging.getLogger(__name__)

# What each signature is, as the audit trail names it.
RESIGN = "resign"  # ARP signature over a Manufacturer Image (Resign, BuildDUIS by image ID)
DUIS_SIGN = "duis-sign"  # XML signature of an SR 11.1 / 11.4 request
ACTIVATION_SIGN = "activation-sign"  # XML signature of an SR 11.3 request
PRECOMMAND_SIGN = "precommand-sign"  # CS06 signature of a pre-command
PRECOMMAND_DUIS_SIGN = "precommand-duis-sign"  # XML signature of the SignedPreCommand request


class SigningBatch:
    """Signatures made for one call, held back until their audit records are committed."""

    def __init__(self, svc: Services) -> None:
        self._svc = svc
        self._entries: list[AuditEntry] = []
        self._purposes: list[str | None] = []  # per entry: the metric purpose of an ok one
        self._along: list[Callable[[Session], None]] = []

    def along(self, write: Callable[[Session], None]) -> None:
        """A write committed in the records' transaction, only if the batch commits."""
        self._along.append(write)

    def devices(self, operation: str, image_id: str) -> int:
        """The devices of this batch's ``ok`` ``operation`` signatures of the image: what
        they add to its direct count once committed."""
        return sum(
            e.device_count or 0
            for e in self._entries
            if e.outcome == "ok" and e.operation == operation and e.image_id == image_id
        )

    def mark(self) -> int:
        """Where the next signature's record goes: bounds for ``withhold``."""
        return len(self._entries)

    def withhold(
        self,
        start: int,
        stop: int,
        check: str,
        request_ids: Collection[str] | None = None,
    ) -> int:
        """Signatures made for this call that it will not return (a campaign's pre-flight
        failed them): the ``ok`` records from ``start`` to ``stop`` (``mark``s), or those
        of them whose RequestID is in ``request_ids``, are recorded ``failed`` with
        ``details["withheld"] = check`` when the batch commits: in its transaction, so the
        trail never says a withheld signature was released. Returns how many."""
        # one new details object per shared one (keyed by identity: the old one is held)
        renamed: dict[int, tuple[Mapping[str, Any], Mapping[str, Any]]] = {}
        n = 0
        for i in range(start, stop):
            e = self._entries[i]
            if e.outcome != "ok" or (
                request_ids is not None and e.duis_request_id not in request_ids
            ):
                continue
            pair = renamed.get(id(e.details))
            if pair is None:
                pair = renamed[id(e.details)] = (e.details, {**e.details, "withheld": check})
            details = pair[1]
            # a new object (entries share field objects, and ``prepare`` memoises by them)
            self._entries[i] = dataclasses.replace(e, outcome="failed", details=details)
            self._purposes[i] = None  # not released: not counted as a signature returned
            n += 1
        return n

    def sign(
        self,
        key: TokenKey,
        digest: bytes,
        *,
        purpose: KeyPurpose,
        operation: str,
        image_id: str | None = None,
        device_count: int | None = None,
        request_id: RequestId | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> bytes:
        """ECDSA over ``digest`` in the token, recorded (not yet committed) as ``operation``."""
        return self.sign_all(
            key,
            [digest],
            [request_id],
            purpose=purpose,
            operation=operation,
            image_id=image_id,
            device_count=device_count,
            details=details,
        )[0]

    def sign_all(
        self,
        key: TokenKey,
        digests: Sequence[bytes],
        request_ids: Sequence[RequestId | None],
        *,
        purpose: KeyPurpose,
        operation: str,
        image_id: str | None = None,
        device_count: int | None = None,
        details: Mapping[str, Any] | None = None,
        check: Callable[[bytes, bytes], None] | None = None,
    ) -> list[bytes]:
        """``sign`` for a batch with one key: one record per digest, the token signing them
        back to back (``check``: see ``Token.sign_digests``). If the token fails part-way,
        nothing is returned: the digests it had signed are recorded as failed (withheld),
        the others as refused or failed with the token's reason."""
        if len(request_ids) != len(digests):
            raise ValueError("one request ID (or None) per digest")
        caller = current()
        cert = key.certificate
        ski = key.ski.hex() if key.ski is not None else None
        serial = str(cert.serial_number) if cert is not None else None
        what = {"purpose": purpose.value, **(details or {})}

        def add(
            outcome: str,
            shared: Mapping[str, Any],
            metric: str | None,
            first: int = 0,
            stop: int | None = None,
        ) -> None:
            # one instant and one details mapping per token call: the records differ in
            # their digest and RequestID only, and are made as copies of one entry
            template = AuditEntry(
                at=self._svc.clock(),
                client=caller.identity,
                call_id=caller.request_id,
                method=caller.method,
                operation=operation,
                outcome=outcome,
                image_id=image_id,
                key_label=key.label,
                key_ski=ski,
                certificate_serial=serial,
                device_count=device_count,
                details=shared,
            )
            entries = entries_like(
                template,
                [d.hex() for d in digests[first:stop]],
                [str(r) if r is not None else None for r in request_ids[first:stop]],
            )
            self._entries.extend(entries)
            self._purposes.extend([metric] * len(entries))

        made: list[bytes] = []
        try:
            signatures = self._svc.token.sign_digests(key, digests, into=made, check=check)
        except SignerError as exc:
            signed = len(made)
            if signed:
                add(
                    "failed",
                    {**what, "withheld": f"{type(exc).__name__}: {exc}"},
                    None,
                    stop=signed,
                )
            add(
                "refused" if isinstance(exc, PolicyRefused) else "failed",
                {**what, "reason": str(exc)},
                None,
                first=signed,
            )
            raise
        add("ok", what, purpose.value)
        return signatures

    def signer(self, key: TokenKey, **kwargs: Any) -> Callable[[bytes], bytes]:
        """``sign`` as the ``sign_digest`` callback the pure builders take."""
        return lambda digest: self.sign(key, digest, **kwargs)

    def commit(self) -> None:
        """Write the batch's records; raises ``Unavailable`` (and releases nothing) if not.

        A client that is no longer waiting (cancelled, past its deadline, cut at shutdown)
        gets nothing: its signatures are recorded as failed, so ``ok`` always means "handed
        to a client that was still there" (it can still vanish before the bytes arrive).
        """
        if not self._entries and not self._along:
            return
        try:
            # checked last inside the transaction: waiting for the audit lock can outlast
            # the client's deadline
            audit.record(
                self._svc.db, self._entries, self._along, before_commit=_client_still_waiting
            )
        except CallEnded as gone:
            log.warning("%d signature(s) withheld: %s", len(self._entries), gone)
            self.abandon(gone)
            raise
        except Exception as exc:  # the trail, an `along` write, or a bug: nothing leaves
            log.error("%d signature(s) withheld: %s", len(self._entries), exc)
            self.abandon(exc)  # best effort: the trail itself may be what failed
            raise
        counts = Counter(
            (e.key_label, p)
            for e, p in zip(self._entries, self._purposes, strict=True)
            if p is not None
        )
        for (label, purpose), n in counts.items():
            metrics.SIGNATURES.labels(key=label, purpose=purpose).inc(n)
        self._entries, self._purposes, self._along = [], [], []

    def abandon(self, error: BaseException) -> None:
        """The call failed: record what the token did for it as failed, best effort."""
        self._along = []
        if not self._entries:
            return
        reason = f"{type(error).__name__}: {error}"
        entries = [e if e.outcome != "ok" else _failed(e, reason) for e in self._entries]
        self._entries, self._purposes = [], []
        try:
            audit.record(self._svc.db, entries)
        except SignerError as exc:
            log.error("could not record %d signature(s) of a failed call: %s", len(entries), exc)


def _client_still_waiting() -> None:
    if not current().active():
        raise CallEnded(
            "the call ended (cancelled, past its deadline or stopped) before "
            "its signatures could be returned"
        )


@contextmanager
def batch(svc: Services) -> Iterator[SigningBatch]:
    """A signing batch committed when the block ends; return its signatures after it only."""
    signing = SigningBatch(svc)
    try:
        yield signing
    except Exception as exc:
        signing.abandon(exc)
        raise
    signing.commit()


def _failed(e: AuditEntry, reason: str) -> AuditEntry:
    return AuditEntry(
        **{**e.__dict__, "outcome": "failed", "details": {**e.details, "withheld": reason}}
    )
