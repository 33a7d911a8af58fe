"""The one error hierarchy of the signer.

Every layer raises these; the gRPC transport maps each family to one status code
(``signer.api.status``), so a client can tell its own mistake from a policy refusal
from an outage without parsing messages.
"""

from __future__ import annotations


class SignerError(Exception):
    """Root of every error the signer raises on purpose."""


class InvalidInput(SignerError):
    """The caller sent something malformed (maps to INVALID_ARGUMENT).

    ``field`` names the offending input field and ``offset`` the byte offset inside it,
    when known, so the caller can find the fault without reading our code.
    """

    def __init__(self, message: str, *, field: str | None = None, offset: int | None = None):
        self.message = message
        self.field = field
        self.offset = offset
        where = []
        if field:
            where.append(field)
        if offset is not None:
            where.append(f"offset {offset}")
        super().__init__(f"{' @ '.join(where)}: {message}" if where else message)


class FormatError(InvalidInput):
    """Bytes that do not parse as the format they claim to be."""


class PolicyRefused(SignerError):
    """A rule says no (maps to FAILED_PRECONDITION)."""


class CertificateRejected(PolicyRefused):
    """A certificate fails the SMKI profile, validity, chain or pinning checks."""


class SignatureInvalid(PolicyRefused):
    """A signature does not verify. Verification raises rather than returning False."""


class Unsigned(SignatureInvalid):
    """A document that should carry a signature carries none."""


class NotFound(SignerError):
    """A named object (image, key, device) does not exist (maps to NOT_FOUND)."""


class Unavailable(SignerError):
    """A backend (HSM, database) cannot be reached right now (maps to UNAVAILABLE)."""


class CallEnded(Unavailable):
    """The client stopped waiting (cancelled, deadline passed, server stopping) before the
    answer was ready; what was made for it is withheld (maps to CANCELLED or
    DEADLINE_EXCEEDED, what the client already saw)."""


class HsmUnavailable(Unavailable):
    """The PKCS#11 token cannot be used: module missing, token absent, session lost."""


class HsmLoginFailed(HsmUnavailable):
    """The PIN was refused. Never retried: a retry could lock the token."""


class ConfigurationError(SignerError):
    """The service's own configuration is wrong; raised at start-up, never per call."""


class DevicesRefused(PolicyRefused):
    """Every device of a request was refused; each refusal says why."""

    def __init__(self, message: str, refusals: list[tuple[str, str, str]]):
        self.refusals = refusals  # (device EUI, reason code, detail)
        listed = "; ".join(f"{d}: {r} ({t})" for d, r, t in refusals[:50])
        more = f"; and {len(refusals) - 50} more" if len(refusals) > 50 else ""
        super().__init__(f"{message}: {listed}{more}")


class CampaignRefused(PolicyRefused):
    """A campaign rule says no (maps to FAILED_PRECONDITION); ``reason`` is the machine code
    clients read (``ErrorInfo.reason``): one of ``CAMPAIGN_REASONS``."""

    def __init__(self, message: str, reason: str):
        self.reason = reason
        super().__init__(message)


#: the reasons a `CampaignRefused` carries
CAMPAIGN_REASONS = (
    "SELF_APPROVAL",
    "ALREADY_APPROVED",
    "NOT_APPROVED",
    "PLAN_STALE",
    "PLAN_REJECTED",
    "PLAN_APPLIED",
    "PLAN_BUSY",
    "CAMPAIGN_REQUIRED",
    "DEV_IDENTITY_OUTSIDE_DEV",
)


def excerpt(value: object, limit: int = 32) -> str:
    """A client's value as an error message may show it: the repr of at most ``limit``
    characters (or bytes) of it, with "…" and its total length when there is more. An
    error message never carries a 10 MB value back, nor into the log."""
    if not isinstance(value, str | bytes | bytearray | memoryview):
        value = str(value)
    if isinstance(value, memoryview | bytearray):
        value = bytes(value)
    if len(value) <= limit:
        return repr(value)
    unit = "characters" if isinstance(value, str) else "bytes"
    return f"{value[:limit]!r}… ({len(value)} {unit})"
