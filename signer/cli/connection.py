"""How a client command reaches the service: --server and the mTLS files, as one `Connection`.

grpc is imported when a channel is opened, not here: `signer --help` loads this module.
"""

from __future__ import annotations

import functools
import os
import re
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, NoReturn, TypeVar

import click

from signer.cli.files import existing_file, read_input
from signer.limits import CHANNEL_OPTIONS

if TYPE_CHECKING:
    import grpc

F = TypeVar("F", bound=Callable[..., Any])


def _env(name: str) -> Callable[[], str | None]:
    return lambda: os.environ.get(name) or None


# (option, its environment variable, help)
_TLS_OPTIONS = (
    ("--tls-ca", "SIGNER_CLIENT_CA", "CA certificate(s) the server's certificate chains to (PEM)."),
    (
        "--tls-cert",
        "SIGNER_CLIENT_CERT",
        "This client's certificate (PEM); its subject is "
        "the identity the server's role policy matches.",
    ),
    ("--tls-key", "SIGNER_CLIENT_KEY", "This client's private key (PEM)."),
)


class Connection(NamedTuple):
    """Where the service is and how to reach it: mTLS with all three files, else plaintext.

    A named tuple rather than a dataclass: every command pays for what this module imports.
    """

    server: str
    tls: tuple[Path, Path, Path] | None = None  # CA, certificate, key

    @classmethod
    def of(cls, server: str, ca: Path | None, cert: Path | None, key: Path | None) -> Connection:
        given = (ca, cert, key)
        if all(p is None for p in given):
            return cls(server)  # a development-mode server: plaintext, no identity
        missing = [
            f"{opt} (or ${env})"
            for (opt, env, _), p in zip(_TLS_OPTIONS, given, strict=True)
            if p is None
        ]
        if missing:
            raise click.UsageError(
                f"missing {' and '.join(missing)}: mTLS needs --tls-ca, "
                "--tls-cert and --tls-key together (none of them for a "
                "development-mode server)"
            )
        assert ca is not None and cert is not None and key is not None
        return cls(server, (ca, cert, key))

    def channel(self) -> grpc.Channel:
        import grpc

        if self.tls is None:
            return grpc.insecure_channel(self.server, options=CHANNEL_OPTIONS)
        ca, cert, key = (read_input(p) for p in self.tls)
        credentials = grpc.ssl_channel_credentials(
            root_certificates=ca, private_key=key, certificate_chain=cert
        )
        return grpc.secure_channel(self.server, credentials, options=CHANNEL_OPTIONS)

    def fail(self, exc: grpc.RpcError, files: Mapping[str, Path | None] | None = None) -> NoReturn:
        """Report a failed call on stderr, in words, and exit with its code (README "Exit
        codes": 5 for NOT_FOUND, else 1).

        ``files``: the file each request field came from; a refusal that names the field
        (its details start with it) names the file too: ``Error: <file>: <details>``.
        A hint follows only when the failure suggests one.
        """
        from signer.cli.output import ExitCode

        code = exc.code()
        details = exc.details() or ""
        words = _WORDS.get(code.name, code.name.lower().replace("_", " "))
        path = (files or {}).get(re.split(r"[^A-Za-z0-9_]", details, maxsplit=1)[0])
        where = f"{path}: " if path is not None else ""
        click.echo(f"Error: {where}{words}: {details}" if details else f"Error: {words}", err=True)
        hint = None if _answered(exc) else self._hint(code.name, details)
        if hint:
            click.echo(f"hint: {hint}", err=True)
        sys.exit(int(ExitCode.NOT_FOUND if code.name == "NOT_FOUND" else ExitCode.ERROR))

    def _hint(self, code: str, details: str) -> str | None:
        """A hint that fits a call the server never answered: a refused connection is not
        a TLS problem, and a refusal by the server is neither."""
        if code != "UNAVAILABLE":
            return None
        text = details.lower()
        if "resolving" in text or "lookup" in text:
            return f"the name in {self.server} does not resolve (--server or $SIGNER_SERVER)"
        if "connection refused" in text:
            return (
                f"nothing answers at {self.server}: is the server running there? "
                "(--server or $SIGNER_SERVER)"
            )
        if self.tls is None:
            return (
                "this call went in plaintext (no --tls-ca, --tls-cert, --tls-key); "
                "a server outside development mode needs mTLS"
            )
        return (
            "the connection failed after it was made, as a TLS handshake fails: check that "
            "--tls-ca is the CA of the server's certificate and that the server trusts this "
            "client's certificate"
        )

    def call(self, name: str, request: Any, files: Mapping[str, Path | None] | None = None) -> Any:
        """One unary call on a channel of its own; ``files`` as for `fail`."""
        import grpc

        from signer.api._proto.signer.v1 import signer_pb2_grpc as pb_grpc

        with self.channel() as channel:
            try:
                return getattr(pb_grpc.FirmwareSignerStub(channel), name)(request, timeout=300)
            except grpc.RpcError as exc:
                self.fail(exc, files)


def connection_options(fn: F) -> F:
    """--server and the three mTLS files, handed to the command as one `Connection`."""

    @functools.wraps(fn)
    def wrapper(
        *args: Any,
        server: str,
        tls_ca: Path | None,
        tls_cert: Path | None,
        tls_key: Path | None,
        **kwargs: Any,
    ) -> Any:
        return fn(*args, connection=Connection.of(server, tls_ca, tls_cert, tls_key), **kwargs)

    for opt, env, text in reversed(_TLS_OPTIONS):
        wrapper = click.option(
            opt, type=existing_file, default=_env(env), show_default=f"${env}", help=text
        )(wrapper)
    wrapper = click.option(
        "--server",
        default=lambda: os.environ.get("SIGNER_SERVER", "127.0.0.1:50051"),
        show_default="$SIGNER_SERVER or 127.0.0.1:50051",
        help="Address of the signer service.",
    )(wrapper)
    return wrapper  # type: ignore[return-value]


def _answered(exc: grpc.RpcError) -> bool:
    """Whether the server itself ended the call: its errors carry the rich details."""
    trailers = getattr(exc, "trailing_metadata", None)
    try:
        metadata = trailers() if callable(trailers) else None
    except Exception:  # a call object that cannot say: treat it as not answered
        return False
    return any(key == "grpc-status-details-bin" for key, _ in metadata or ())


#: gRPC status codes as the CLI reports them, in words
_WORDS = {
    "INVALID_ARGUMENT": "invalid request",
    "FAILED_PRECONDITION": "refused",
    "NOT_FOUND": "not found",
    "UNAVAILABLE": "server unavailable",
    "PERMISSION_DENIED": "permission denied",
    "UNAUTHENTICATED": "not authenticated",
    "DEADLINE_EXCEEDED": "timed out",
    "CANCELLED": "cancelled",
    "RESOURCE_EXHAUSTED": "server busy",
    "ALREADY_EXISTS": "already exists",
    "UNIMPLEMENTED": "not implemented by this server",
    "INTERNAL": "server error",
    "UNKNOWN": "server error",
}
