"""Who is asking, for the call being served: logs, audit records and metrics read it here.

The transport binds a `Caller` for each call (gRPC: the client certificate's subject; CLI:
the operating-system user); everything below reads it instead of threading it through every
use case. A context variable, so concurrent calls on other threads never see each other's.
"""

from __future__ import annotations

import contextvars
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")


@dataclass(frozen=True)
class Caller:
    identity: str  # "CN=backoffice,O=Supplier" (certificate subject), "cli:ann@host", ...
    request_id: str  # correlates the client's call, our log lines and audit records
    method: str = ""  # the RPC or command being served
    common_name: str | None = None
    alt_names: tuple[str, ...] = ()  # subjectAltName entries, e.g. "DNS:x", "URI:spiffe://..."


SYSTEM = Caller(identity="system", request_id="-")
_current: contextvars.ContextVar[Caller] = contextvars.ContextVar("signer_caller",
                                                                  default=SYSTEM)


def current() -> Caller:
    return _current.get()


@contextmanager
def bound(caller: Caller) -> Iterator[Caller]:
    token = _current.set(caller)
    try:
        yield caller
    finally:
        _current.reset(token)


def new_request_id(offered: str | None = None) -> str:
    """The client's own ID when it is a sane token (so it can correlate), else a fresh one."""
    if offered and _REQUEST_ID.fullmatch(offered):
        return offered
    return uuid.uuid4().hex
