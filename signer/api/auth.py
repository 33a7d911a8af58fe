"""Who may call what: client certificate identity -> roles -> FirmwareSigner RPCs.

The TLS handshake has already proven the client holds a key the client CA certified; this
checks the certificate is not revoked (`signer.api.revocation`) and decides what it may do.
Deny by default; health and reflection (`OPEN_SERVICES`) are open to any client past the
handshake. The policy file is checked in full at start (and at each SIGHUP reload, which
keeps the old policy if the new one is wrong), so a typo stops the server instead of
silently locking a client out or letting one in. Its format is in the
README, section "The policy file", and `deploy/policy.example.toml`.
"""

from __future__ import annotations

import contextvars
import difflib
import ipaddress
import logging
import tomllib
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal, NoReturn

import grpc
from cryptography import x509
from cryptography.x509.oid import NameOID
from grpc_health.v1 import health

from signer.api import reflection
from signer.api._proto.signer.v1 import signer_pb2 as pb
from signer.api.callctx import (
    DEV_IDENTITY_HEADER,
    UNAUTHENTICATED,
    dev_identity_offered,
    valid_dev_name,
)
from signer.api.handlers import (
    Behavior,
    Continuation,
    Handler,
    Rpc,
    ServerInterceptor,
    Wrapped,
    wrap,
)
from signer.api.revocation import utc_now
from signer.api.richdetails import Details, fit_message, trailer
from signer.api.status import reason_code
from signer.caller import Caller, current
from signer.errors import ConfigurationError
from signer.metrics import AUTH_DENIED

if TYPE_CHECKING:
    from signer.api.reload import TransportState

log = logging.getLogger(__name__)

#: every role there is; a policy naming another one is refused (a typo must not lock out)
ROLES = ("manufacturer", "supplier", "key-admin", "auditor", "ops", "approver")
_SERVICE = pb.DESCRIPTOR.services_by_name["FirmwareSigner"]
SERVICE = _SERVICE.full_name
#: the RPCs a policy may grant, straight from the compiled proto
RPC_NAMES: tuple[str, ...] = tuple(m.name for m in _SERVICE.methods)
#: Open to every client that passed the TLS handshake, whatever its roles: load balancers and
#: orchestrators probe health with whatever certificate they were given, and reflection only
#: describes the public API. Neither reveals a key, an image or a device, nor signs anything.
OPEN_SERVICES = frozenset({health.SERVICE_NAME, *reflection.SERVICE_NAMES})
#: subjectAltName forms as `signer.caller.Caller.alt_names` spells them
SAN_PREFIXES = ("DNS:", "URI:", "email:", "IP:")
#: attribute names OpenSSL prints (``-nameopt RFC2253``) that cryptography does not know
_OPENSSL_NAMES = {
    "serialNumber": NameOID.SERIAL_NUMBER,
    "emailAddress": NameOID.EMAIL_ADDRESS,
    "title": NameOID.TITLE,
    "GN": NameOID.GIVEN_NAME,
    "SN": NameOID.SURNAME,
}

MatchKind = Literal["cn", "san", "subject"]
Fail = Callable[[str], ConfigurationError]
_MATCH_KINDS: tuple[MatchKind, ...] = ("cn", "san", "subject")


@dataclass(frozen=True)
class ClientEntry:
    """One ``[[clients]]`` entry: how a certificate is recognised, and the roles it gets."""

    kind: MatchKind
    value: str  # normalised: subjects as cryptography prints them, IP addresses compressed
    roles: tuple[str, ...]
    index: int = 0  # 1-based position in the file, for messages

    def matches(self, caller: Caller) -> bool:
        if self.kind == "cn":
            return caller.common_name == self.value
        if self.kind == "san":
            return self.value in caller.alt_names
        return caller.identity == self.value

    def describe(self) -> str:
        return f'[[clients]] entry {self.index} ({self.kind} = "{self.value}")'


@dataclass(frozen=True)
class Policy:
    """The role table and the client entries of one policy file, validated."""

    grants: Mapping[str, frozenset[str]]  # role -> the RPC names it may call
    clients: tuple[ClientEntry, ...]
    source: str = "<policy>"

    @classmethod
    def load(cls, path: Path) -> Policy:
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigurationError(f"cannot read policy {path}: {exc.strerror}") from None
        except UnicodeDecodeError:
            raise ConfigurationError(f"policy {path}: not UTF-8 text") from None
        return cls.parse(text, source=str(path))

    @classmethod
    def parse(cls, text: str, *, source: str = "<policy>") -> Policy:
        def fail(message: str) -> ConfigurationError:
            return ConfigurationError(f"policy {source}: {message}")

        try:
            raw = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise fail(f"invalid TOML: {exc}") from None
        unknown = sorted(set(raw) - {"roles", "clients"})
        if unknown:
            raise fail(f"unknown key {unknown[0]!r}: a policy has only [roles] and [[clients]]")
        grants = _grants(raw.get("roles"), fail)
        clients = _clients(raw.get("clients", []), grants, fail)
        return cls(grants=MappingProxyType(grants), clients=clients, source=source)

    def roles_of(self, caller: Caller) -> tuple[str, ...]:
        """The union of the roles of every entry matching the caller, in `ROLES` order."""
        held = {role for entry in self.clients if entry.matches(caller) for role in entry.roles}
        return tuple(r for r in ROLES if r in held)

    def principal_of(self, caller: Caller) -> str:
        """Who the caller is for four eyes: the client entries it matches (``cn=...``,
        ``san=...``, ``subject=...``; several: all, sorted, joined by `` + ``). Two
        certificates one entry recognises are one principal, whatever else differs; the
        campaign use cases compare principals as sets of entries (sharing one: one person)."""
        return " + ".join(sorted(f"{e.kind}={e.value}" for e in self.clients if e.matches(caller)))

    def roles_for(self, method: str) -> tuple[str, ...]:
        """The roles allowed to call a FirmwareSigner RPC, in `ROLES` order."""
        return tuple(r for r in ROLES if method in self.grants.get(r, frozenset()))

    def refusal(self, caller: Caller, rpc: Rpc) -> str | None:
        """None when the caller may make this call, else why not (sent to the client)."""
        if rpc.service in OPEN_SERVICES:
            return None
        held = self.roles_of(caller)
        who = f"client {describe_caller(caller)} " + (
            f"has roles: {', '.join(held)}" if held else "has no role"
        )
        if rpc.service != SERVICE:
            return f"{rpc.full_method.lstrip('/')} is not covered by the policy; {who}"
        needed = self.roles_for(rpc.method)
        if set(needed) & set(held):
            return None
        if not needed:
            return f"{rpc.method} is granted to no role by the policy; {who}"
        if len(needed) == 1:
            return f"{rpc.method} needs role {needed[0]}; {who}"
        return f"{rpc.method} needs one of the roles {', '.join(needed)}; {who}"

    def describe(self) -> str:
        """One line for the start-up log."""
        return (
            f"role policy {self.source}: {len(self.clients)} client entr"
            f"{'y' if len(self.clients) == 1 else 'ies'}; "
            + "; ".join(
                f"{role}: {', '.join(sorted(self.grants[role])) or '(nothing)'}"
                for role in ROLES
                if role in self.grants
            )
        )


def describe_caller(caller: Caller) -> str:
    """The certificate subject, or its alternative names when the subject is empty."""
    return caller.identity or ", ".join(caller.alt_names) or "(empty subject)"


def _grants(table: Any, fail: Fail) -> dict[str, frozenset[str]]:
    if table is None:
        raise fail("no [roles] table: it maps each role to the RPCs it may call")
    if not isinstance(table, dict):
        raise fail('roles must be a table: [roles] role = ["Rpc", ...]')
    grants: dict[str, frozenset[str]] = {}
    for role, methods in table.items():
        if role not in ROLES:
            raise fail(
                f"[roles] {role}: unknown role {role!r}{_hint(role, ROLES)} "
                f"(roles: {', '.join(ROLES)})"
            )
        if not isinstance(methods, list) or not all(isinstance(m, str) for m in methods):
            raise fail(f"[roles] {role}: give a list of RPC names")
        for method in methods:
            if method not in RPC_NAMES:
                raise fail(
                    f"[roles] {role}: unknown RPC {method!r}{_hint(method, RPC_NAMES)} "
                    f"({SERVICE} has: {', '.join(RPC_NAMES)})"
                )
        grants[role] = frozenset(methods)
    return grants


def _clients(
    entries: Any, grants: Mapping[str, frozenset[str]], fail: Fail
) -> tuple[ClientEntry, ...]:
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise fail("clients must be [[clients]] entries (an array of tables)")
    out: list[ClientEntry] = []
    seen: dict[tuple[str, str], ClientEntry] = {}
    for index, entry in enumerate(entries, 1):
        where = f"[[clients]] entry {index}"
        unknown = sorted(set(entry) - {*_MATCH_KINDS, "roles"})
        if unknown:
            raise fail(f"{where}: unknown key {unknown[0]!r} (keys: cn, san, subject, roles)")
        kinds = [k for k in _MATCH_KINDS if k in entry]
        if len(kinds) != 1:
            raise fail(
                f"{where}: give exactly one of cn, san or subject"
                + (f", not {' and '.join(kinds)}" if kinds else "")
            )
        kind = kinds[0]
        value = entry[kind]
        if not isinstance(value, str) or not value:
            raise fail(f"{where}: {kind} must be a non-empty string")
        where = f'{where} ({kind} = "{value}")'
        value = _normalised(kind, value, _prefixed(fail, where))
        roles = entry.get("roles")
        if not isinstance(roles, list) or not roles or not all(isinstance(r, str) for r in roles):
            raise fail(f"{where}: roles must be a non-empty list of role names")
        for role in roles:
            if role not in ROLES:
                raise fail(
                    f"{where}: unknown role {role!r}{_hint(role, ROLES)} "
                    f"(roles: {', '.join(ROLES)})"
                )
            if role not in grants:
                raise fail(f"{where}: role {role!r} is not defined in [roles]")
        client = ClientEntry(kind, value, tuple(dict.fromkeys(roles)), index)
        if (kind, value) in seen:
            raise fail(
                f"{client.describe()} repeats {seen[kind, value].describe()}: "
                "give one entry all of its roles"
            )
        seen[kind, value] = client
        out.append(client)
    return tuple(out)


def _normalised(kind: MatchKind, value: str, fail: Fail) -> str:
    """The value in the exact form `signer.api.callctx` gives the caller's names."""
    if kind == "cn":
        return value
    if kind == "san":
        prefix = next((p for p in SAN_PREFIXES if value.startswith(p)), None)
        if prefix is None or len(value) == len(prefix):
            raise fail(
                f"san must start with one of {', '.join(SAN_PREFIXES)} and name "
                "something, e.g. DNS:backoffice.example.com"
            )
        if prefix == "IP:":
            try:
                return f"IP:{ipaddress.ip_address(value[3:])}"
            except ValueError:
                raise fail(f"{value[3:]!r} is not an IP address") from None
        return value
    try:
        name = x509.Name.from_rfc4514_string(value, _OPENSSL_NAMES)
    except ValueError:
        raise fail(
            "subject is not an RFC 4514 name; write it as `openssl x509 -noout "
            "-subject -nameopt RFC2253` prints it (most specific first, no spaces "
            "after the commas)"
        ) from None
    return name.rfc4514_string()


def _prefixed(fail: Fail, where: str) -> Fail:
    return lambda message: fail(f"{where}: {message}")


def _hint(word: str, choices: tuple[str, ...]) -> str:
    close = difflib.get_close_matches(word, choices, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


#: (request ID, principal) of the call being served, bound by `AuthInterceptor`
_PRINCIPAL: contextvars.ContextVar[tuple[str, str] | None] = contextvars.ContextVar(
    "signer_principal", default=None
)


def principal_of(caller: Caller) -> str:
    """The caller's principal (`Policy.principal_of` under the policy its call was checked
    against); without a policy (development mode) its identity (``dev:NAME`` when it gave
    ``signer-dev-identity``). The campaign use cases compare and count these; the audit
    trail keeps the identity."""
    bound = _PRINCIPAL.get()
    if bound is not None and bound[0] == caller.request_id:
        return bound[1]
    return caller.identity


@contextmanager
def _principal_bound(caller: Caller, principal: str) -> Iterator[None]:
    token = _PRINCIPAL.set((caller.request_id, principal))
    try:
        yield
    finally:
        _PRINCIPAL.reset(token)


class AuthInterceptor(ServerInterceptor):
    """Check the certificate against the CRLs, then the policy, before the behaviour runs
    (for streams: before the first item).

    With no transport state (development mode) every call is allowed, and each one says so
    in the log. Inside the call context and the metrics, so the caller is bound and the
    metrics count the refusals; outside `outcome`, so a refused caller never reaches the
    servicer. Each call reads the current snapshot once: a SIGHUP reload applies to the
    calls that start after it, and calls in flight finish under the one they started with.
    """

    def __init__(self, state: TransportState | None, *, dev_mode: bool | None = None) -> None:
        self.state = state
        # without transport state the server is in development mode (`transport_state`)
        self.dev_mode = state is None if dev_mode is None else dev_mode
        self._wrapped = Wrapped()
        if state is not None:
            log.info("%s", state.current.policy.describe())
            log.info("client certificate revocation: %s", state.current.revocations.describe())

    def intercept_service(
        self, continuation: Continuation, details: grpc.HandlerCallDetails
    ) -> Handler | None:
        handler = continuation(details)
        return self._wrapped.get(handler, details, lambda: wrap(handler, details, self._around))

    def _around(self, rpc: Rpc, behavior: Behavior) -> Behavior:
        # Not a generator: for response streams the check runs when the outer interceptor
        # creates the iterator, so a refused caller never reaches the servicer's code.
        def checked(request: Any, context: grpc.ServicerContext) -> Any:
            caller = current()
            principal = self._check(rpc, context)
            if rpc.streams_responses:
                return _stream(caller, principal, behavior, request, context)
            with _principal_bound(caller, principal):
                return behavior(request, context)

        return checked

    def _check(self, rpc: Rpc, context: grpc.ServicerContext) -> str:
        """Refuse the call, or return the caller's principal under the policy checked."""
        caller = current()
        method = rpc.full_method.lstrip("/")
        self._check_dev_identity(rpc, context, method)
        if self.state is None:  # development mode: said once, at start (`attach`)
            return caller.identity
        snapshot = self.state.current
        pem = (context.auth_context().get("x509_pem_cert") or [b""])[0]
        if caller.identity == UNAUTHENTICATED or not isinstance(pem, bytes) or not pem:
            # cannot happen while the server requires client certificates; if the transport
            # were ever misconfigured, refuse rather than treat the caller as anyone
            AUTH_DENIED.labels(reason="no_certificate").inc()
            log.warning("refused %s: no verified client certificate", method)
            _deny(
                context,
                grpc.StatusCode.UNAUTHENTICATED,
                "a client certificate is required",
                "no_certificate",
                {"method": method},
            )
        revoked = snapshot.revocations.refusal(pem, utc_now())
        if revoked is not None:  # health and reflection included: revoked is revoked
            AUTH_DENIED.labels(reason=revoked.reason).inc()
            log.warning(
                "refused %s: %s",
                method,
                revoked.message,
                extra={"grpc_method": rpc.method, "auth_reason": revoked.reason},
            )
            _deny(
                context,
                grpc.StatusCode.UNAUTHENTICATED,
                revoked.message,
                revoked.reason,
                {"method": method},
            )
        refusal = snapshot.policy.refusal(caller, rpc)
        if refusal is not None:
            AUTH_DENIED.labels(reason="permission_denied").inc()
            log.warning(
                "permission denied: %s",
                refusal,
                extra={"grpc_method": rpc.method, "auth_reason": "permission_denied"},
            )
            about = {"method": method}
            about["roles_held"] = ",".join(snapshot.policy.roles_of(caller))
            if rpc.service == SERVICE:
                about["roles_needed"] = ",".join(snapshot.policy.roles_for(rpc.method))
            _deny(context, grpc.StatusCode.PERMISSION_DENIED, refusal, "permission_denied", about)
        return snapshot.policy.principal_of(caller)

    def _check_dev_identity(self, rpc: Rpc, context: grpc.ServicerContext, method: str) -> None:
        """A development identity (``signer-dev-identity``) is for development servers only;
        a production server refuses a call carrying one rather than ignore it (the client
        believes it acts as someone else). In development mode its value must be a name."""
        offered = dev_identity_offered(context)
        if offered is None:
            return
        if not self.dev_mode:
            log.warning(
                "refused %s: %s metadata outside development mode",
                method,
                DEV_IDENTITY_HEADER,
                extra={"grpc_method": rpc.method, "auth_reason": "dev_identity_outside_dev"},
            )
            _deny(
                context,
                grpc.StatusCode.INVALID_ARGUMENT,
                f"{DEV_IDENTITY_HEADER}: a development identity is accepted only by a server "
                "in development mode; this one identifies clients by their certificate",
                "dev_identity_outside_dev",
                {"method": method, "field": DEV_IDENTITY_HEADER},
            )
        if not valid_dev_name(offered):
            _deny(
                context,
                grpc.StatusCode.INVALID_ARGUMENT,
                f"{DEV_IDENTITY_HEADER}: give a name of 1 to 64 letters, digits or . _ @ -",
                "invalid_input",
                {"method": method, "field": DEV_IDENTITY_HEADER},
            )


def _stream(
    caller: Caller, principal: str, behavior: Behavior, request: Any, context: Any
) -> Iterator[Any]:
    """A response stream whose every step runs with the caller's principal bound."""
    with _principal_bound(caller, principal):
        items = iter(behavior(request, context))
    while True:
        with _principal_bound(caller, principal):
            try:
                item = next(items)
            except StopIteration:
                return
        yield item


def _deny(
    context: grpc.ServicerContext,
    code: grpc.StatusCode,
    message: str,
    reason: str,
    metadata: dict[str, str],
) -> NoReturn:
    """End the call with ``code``, and the reason (the `signer_auth_denied_total` label,
    upper-cased) in the rich error details."""
    message = fit_message(message)  # a certificate may list any number of names
    context.set_trailing_metadata(trailer(code, message, Details(reason_code(reason), metadata)))
    context.abort(code, message)
