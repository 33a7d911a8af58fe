"""Shared CLI plumbing: configuration, error reporting, output.

Light at import, like every module of `signer.cli`: `signer --help` and the client commands
load these, so the configuration, service and database code is imported when it is used.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import click

from signer.errors import SignerError

if TYPE_CHECKING:
    from signer.config import Config
    from signer.service.services import Services

F = TypeVar("F", bound=Callable[..., Any])

config_option = click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=lambda: os.environ.get("SIGNER_CONFIG"),
    show_default="$SIGNER_CONFIG",
    help="Service configuration (TOML); SIGNER_* environment variables override it.",
)


def load(config_path: Path | None) -> Config:
    from signer.config import load_config

    return load_config(config_path)


@contextmanager
def services(config: Config) -> Iterator[Services]:
    """The token, database and clock a command works with, closed afterwards.

    The command runs as a `Caller` (the operating-system user, a fresh request ID, the
    command's name), so its audit trail records say who ran which command.
    """
    from signer.caller import Caller, bound, new_request_id
    from signer.service.services import open_services

    caller = Caller(identity=actor(), request_id=new_request_id(), method=command_name())
    svc = open_services(config)
    try:
        with bound(caller):
            yield svc
    finally:
        svc.close()


def actor() -> str:
    """Who runs this command, as key operation records name them.

    The effective user comes from the kernel, not the environment; for root started by
    sudo, SUDO_USER adds the person behind it (sudo sets it; other users cannot claim it).
    """
    import pwd
    import socket

    uid = os.geteuid()
    try:
        user = pwd.getpwuid(uid).pw_name
    except KeyError:  # containers often run a uid with no passwd entry
        user = f"uid={uid}"
    sudo = os.environ.get("SUDO_USER") if uid == 0 and "SUDO_UID" in os.environ else None
    who = f"{sudo} (sudo as {user})" if sudo and sudo != user else user
    return f"cli:{who}@{socket.gethostname()}"


def command_name() -> str:
    """The command being run, as typed after the program name: "signer keys retire"."""
    names: list[str] = []
    ctx = click.get_current_context(silent=True)
    while ctx is not None and ctx.parent is not None:
        names.append(ctx.info_name or "")
        ctx = ctx.parent
    return " ".join(["signer", *reversed(names)])


def reports_errors(fn: F) -> F:
    """Print a signer error as one line on stderr, in words, and exit with its family's code.

    Not found exits 5, everything else 1 (README "Exit codes"); click's usage errors keep 2.
    """

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except SignerError as exc:
            from signer.errors import NotFound

            raise (NotFoundFailure if isinstance(exc, NotFound) else SignerFailure)(exc) from None

    return wrapper  # type: ignore[return-value]


class SignerFailure(click.ClickException):
    """A signer error as the CLI reports it: ``Error: <message>``, exit 1 (README "Exit
    codes")."""

    exit_code = 1

    def __init__(self, exc: SignerError) -> None:
        super().__init__(str(exc).strip() or describe(exc))


class NotFoundFailure(SignerFailure):
    """What was named does not exist: exit 5."""

    exit_code = 5


def describe(exc: SignerError) -> str:
    """What kind of failure an error without a message is, in words (never its class name)."""
    from signer.errors import ConfigurationError, InvalidInput, NotFound, PolicyRefused, Unavailable

    for family, words in (
        (NotFound, "not found"),
        (InvalidInput, "invalid input"),
        (PolicyRefused, "refused"),
        (Unavailable, "unavailable"),
        (ConfigurationError, "configuration error"),
    ):
        if isinstance(exc, family):
            return words
    return "failed"


def run(command: click.Command) -> NoReturn:
    """Run the CLI with a last resort: an error nobody expected is one line, not a traceback.

    Every refusal the code means is reported where it happens (``reports_errors``, the
    commands' own file checks); this catches what is left (a bug, or an input class no one
    thought of), prints its type and a short message, and logs the traceback at debug level
    only (``signer -v``), so an operator never faces a stack dump.
    """
    try:
        command.main()  # standalone: click reports its own usage errors and exits
    except Exception as exc:  # the last resort, by design
        import logging

        log = logging.getLogger(__name__)
        log.debug("unexpected error", exc_info=True)
        click.echo(f"Error: unexpected {type(exc).__name__}: {short(str(exc))}", err=True)
        if not log.isEnabledFor(logging.DEBUG):
            click.echo("(run `signer -v ...` to log the traceback)", err=True)
        sys.exit(1)
    sys.exit(0)


def short(text: str, limit: int = 200) -> str:
    """The first line of a message, at most ``limit`` characters: never a dump."""
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= limit else line[: limit - 3] + "..."
