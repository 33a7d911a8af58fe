"""Shared CLI plumbing: configuration, error reporting, output."""

from __future__ import annotations

import functools
import os
import pwd
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import click

from signer.caller import Caller, bound, new_request_id
from signer.config import Config, load_config
from signer.errors import SignerError
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
    return load_config(config_path)


@contextmanager
def services(config: Config) -> Iterator[Services]:
    """The token, database and clock a command works with, closed afterwards.

    The command runs as a `Caller` (the operating-system user, a fresh request ID, the
    command's name), so its audit trail records say who ran which command.
    """
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
    """Print a signer error as one line on stderr and exit 1 (2 for usage errors)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except SignerError as exc:
            raise click.ClickException(f"{type(exc).__name__}: {exc}") from None

    return wrapper  # type: ignore[return-value]
