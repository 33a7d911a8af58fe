"""Who is asking, for the call being served: logs, audit records and metrics read it here.

The transport binds a `Caller` for each call (gRPC: the client certificate's subject; CLI:
the operating-system user); everything below reads it instead of threading it through every
use case. A context variable, so concurrent calls on other threads never see each other's.
"""

from __future__ import annotations

import contextvars
import re
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")


@dataclass(frozen=True)
class Caller:
    identity: str  # "CN=backoffice,O=Supplier" (certificate subject), "cli:ann@host", ...
    request_id: str  # made by us, unique: correlates our log lines and audit records
    method: str = ""  # the RPC or command being served
    common_name: str | None = None  # only when the subject has exactly one CN
    alt_names: tuple[str, ...] = ()  # subjectAltName entries, e.g. "DNS:x", "URI:spiffe://..."
    # the ID the client offered (x-request-id) for its own correlation; never trusted as ours
    client_request_id: str | None = None
    # whether the client is still waiting for the answer (False once it cancelled, its
    # deadline passed or the server cut the call at shutdown)
    active: Callable[[], bool] = field(default=lambda: True, compare=False, repr=False)


SYSTEM = Caller(identity="system", request_id="-")
_current: contextvars.ContextVar[Caller] = contextvars.ContextVar("signer_caller", default=SYSTEM)


def current() -> Caller:
    return _current.get()


@contextmanager
def bound(caller: Caller) -> Iterator[Caller]:
    token = _current.set(caller)
    try:
        yield caller
    finally:
        _current.reset(token)


def new_request_id() -> str:
    return uuid.uuid4().hex


def offered_request_id(offered: object) -> str | None:
    """A client's own request ID, kept for its correlation when it is a sane token."""
    if isinstance(offered, str) and _REQUEST_ID.fullmatch(offered):
        return offered
    return None
