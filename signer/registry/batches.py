"""Long read-only look-ups over two connections: the caller's thread and one helper take
batches from the same list, so a 50,000-device look-up uses the second core.

The drivers release the GIL while a statement runs, so two statements on two pooled
connections run at once; the Python around them is small. The helper only ever helps:
it takes a connection first and batches after, so a helper that is busy with another call,
or finds no connection to spare, leaves every batch to the caller, who never waits for it. Reads
stay what they were on one connection: each statement sees the database as it runs it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

from signer.helper_thread import HelperThread
from signer.registry.db import Database, RawCursor

T = TypeVar("T")
R = TypeVar("R")

_HELPER = HelperThread("signer-read")


class _Shared(Generic[T, R]):
    """The batches, who took which, and what they gave."""

    def __init__(self, batches: Sequence[T]) -> None:
        self.batches = batches
        self._done: dict[int, R] = {}
        self._cond = threading.Condition()
        self._next = 0
        self._helping = 0  # batches the helper took and has not finished
        self._error: BaseException | None = None
        self._stopped = False

    def take(self, *, helper: bool) -> int | None:
        with self._cond:
            if self._stopped or self._next >= len(self.batches):
                return None
            i = self._next
            self._next += 1
            self._helping += helper
            return i

    def left(self) -> bool:
        with self._cond:
            return not self._stopped and self._next < len(self.batches)

    def put(self, i: int, result: R) -> None:
        with self._cond:
            self._done[i] = result

    def helped(self, error: BaseException | None = None) -> None:
        """The helper finished the batch it took last; ``error``: it failed."""
        with self._cond:
            self._helping -= 1
            if error is not None and self._error is None:
                self._error, self._stopped = error, True
            self._cond.notify_all()

    def stop(self) -> None:
        """The caller failed: the helper takes no more batches."""
        with self._cond:
            self._stopped = True

    def finish(self) -> list[R]:
        """Every batch's result, in order, once the helper's batches are done; the helper's
        error (e.g. the database unavailable) is the caller's."""
        with self._cond:
            self._cond.wait_for(lambda: self._helping == 0)
            self._stopped = True  # a helper still queued behind other calls finds nothing
            done, self._done, n, self.batches = self._done, {}, len(self.batches), ()
            if self._error is not None:
                raise self._error
            return [done[i] for i in range(n)]


def read_batches(db: Database, batches: Sequence[T], run: Callable[[RawCursor, T], R]) -> list[R]:
    """``run(cursor, batch)`` for every batch, results in the batches' order. With more than
    one batch a helper thread runs some of them on a connection of its own."""
    shared: _Shared[T, R] = _Shared(batches)
    try:
        with db.cursor() as cur:  # the caller's connection first: it never waits for one
            if len(batches) > 1:
                _HELPER.submit(_help, db, shared, run)
            while (i := shared.take(helper=False)) is not None:
                shared.put(i, run(cur, batches[i]))
    except BaseException:
        shared.stop()
        raise
    return shared.finish()


def _help(db: Database, shared: _Shared[T, R], run: Callable[[RawCursor, T], R]) -> None:
    if not shared.left() or not db.has_spare_connection():
        return  # the caller did them all while this thread was busy, or will: never wait
    busy = False  # between taking a batch and finishing it
    try:
        with db.cursor() as cur:
            while (i := shared.take(helper=True)) is not None:
                busy = True
                shared.put(i, run(cur, shared.batches[i]))
                busy = False
                shared.helped()
    except BaseException as exc:  # as the connection's context translated it (Unavailable)
        if busy:
            shared.helped(exc)  # the caller raises it
        # else no connection now, or it failed after the last batch: the caller needs nothing
