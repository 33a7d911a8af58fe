"""`signer`: run the service, manage keys and registries, and call the API from a shell.

Every command pays for the imports of this module and of the command modules before it
starts (back-office scripts run the CLI in loops), so they import only click, the standard
library and light signer modules; what a command needs (the service, the database, the
token, grpc) is imported inside the command when it runs. `tests/cli/test_imports.py`
holds every command to `CLIENT_COMMANDS` and `LOCAL_COMMANDS`.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from signer import __version__
from signer.cli.common import config_option, load, reports_errors, run

if TYPE_CHECKING:
    from signer.service.services import Services

#: `signer.config.DEFAULT_MODULE` (a test holds them equal), spelt out so that `--help`
#: need not import the configuration code
DEFAULT_MODULE = "/usr/lib/softhsm/libsofthsm2.so"


#: the commands defined in other modules, as "module:attribute", imported when wanted
COMMAND_MODULES = {
    "keys": "signer.cli.keys:keys",
    "cpl": "signer.cli.cpl:cpl",
    "manufacturers": "signer.cli.admin:manufacturers",
    "devices": "signer.cli.admin:devices",
    "activations": "signer.cli.admin:activations",
    "audit": "signer.cli.audit:audit",
    "db": "signer.cli.db:db",
    "dev": "signer.cli.dev:dev",
    "verify": "signer.cli.client:verify",
    "resign": "signer.cli.client:resign",
    "build-duis": "signer.cli.client:build_duis",
    "activate": "signer.cli.client:activate",
    "sign-precommand": "signer.cli.client:sign_precommand",
    "health": "signer.cli.client:health",
    "campaign": "signer.cli.campaign:campaign",
}


#: the first paragraph of each of those commands' help, for `signer --help` to list them
#: without importing their modules (`tests/cli/test_entry.py` holds them equal)
COMMAND_SUMMARIES = {
    "keys": "The Supplier's keys on the PKCS#11 token: generate, certify, activate, retire.",
    "cpl": "The Central Products List (CPL/FIR) and its upgrade pathways (MP231).",
    "manufacturers": "Manufacturer codes and the certificates trusted for their deliveries.",
    "devices": "Devices and their trust anchor cells.",
    "activations": "SR 11.3 activations the service issued.",
    "audit": "The audit trail: every signature and key operation, hash-chained.",
    "db": "The registry database's schema.",
    "dev": "The development default: a local SoftHSM2 token with matching keys and devices, "
    "and stand-ins for the DCC and the SMKI issuing CA (development mode only).",
    "verify": "Verify a manufacturer delivery (VerifyManufacturer). Exit 0 if verified, 3 if not.",
    "resign": "Re-sign a verified image for devices (Resign): one upgrade image per key.",
    "build-duis": "Build the signed DUIS SR 11.1 / 11.4 request (BuildDUIS).",
    "activate": "Build signed SR 11.3 Activate Firmware requests (StreamActivation), one per "
    "device.",
    "sign-precommand": "Check CS06 pre-commands against the 11.3 requests they answer and "
    "sign them.",
    "health": "Ask the server's gRPC health service; exit 0 only if it answers SERVING.",
    "campaign": "Campaigns with four eyes: plan, approve, apply.",
}


class LazyGroup(click.Group):
    """A group whose commands in other modules are imported when one is wanted.

    `signer --version` then loads none of them, `signer verify ...` only the client
    commands, and `signer --help` none either: it lists them from `COMMAND_SUMMARIES`.
    """

    def __init__(
        self, *args: Any, lazy: Mapping[str, str], summaries: Mapping[str, str], **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.lazy = dict(lazy)
        self.summaries = dict(summaries)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self.commands, *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in self.lazy:
            module, _, attribute = self.lazy[cmd_name].partition(":")
            command = getattr(importlib.import_module(module), attribute)
            assert isinstance(command, click.Command), self.lazy[cmd_name]
            self.add_command(command, cmd_name)
        return self.commands.get(cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """As click lists commands, with a stand-in (the same help) for each not imported."""
        rows: list[tuple[str, click.Command]] = []
        for name in self.list_commands(ctx):
            command = self.commands.get(name)
            if command is None and name in self.summaries:
                command = click.Command(name, help=self.summaries[name])
            elif command is None:
                command = self.get_command(ctx, name)
            if command is not None and not command.hidden:
                rows.append((name, command))
        if rows:
            limit = formatter.width - 6 - max(len(name) for name, _ in rows)
            with formatter.section("Commands"):
                formatter.write_dl([(n, c.get_short_help_str(limit)) for n, c in rows])


@click.group(
    cls=LazyGroup,
    lazy=COMMAND_MODULES,
    summaries=COMMAND_SUMMARIES,
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.option("-v", "--verbose", is_flag=True, help="Debug logging.")
@click.version_option(__version__, package_name="signer")  # not importlib.metadata: 40 ms
def cli(verbose: bool) -> None:
    """HSM-backed firmware signing for GB smart-metering Suppliers.

    Verifies manufacturer firmware deliveries, re-signs them with the Supplier key each
    target meter trusts (inside a PKCS#11 token) and builds the signed DUIS requests.
    PINs come from a file or an environment variable named in the configuration, never
    from the command line.
    """
    from signer.cli.logs import setup_logging  # imports logging: not for --help or --version

    setup_logging(verbose)


@cli.command()
@config_option
@click.pass_context
@reports_errors
def serve(ctx: click.Context, config_path: Path | None) -> None:
    """Run the gRPC service (signer.v1.FirmwareSigner) until SIGTERM.

    SIGHUP reloads the [tls] files (role policy, CRLs, server certificate and key, client
    CA) without a restart; a reload that finds a file wrong keeps the previous ones.
    Logs go to stderr as JSON lines (log.format = "text" for people), each with the
    request ID and client identity of the call it belongs to.
    """
    import logging

    from signer.api.server import bind
    from signer.api.server import serve as run
    from signer.cli.logs import setup_logging
    from signer.service.services import open_services
    from signer.service.startup import check_startup, warn_development

    # each step refuses with one line naming the setting, before the next one starts:
    # the whole file against the schema; the files it names; the ports; the token and its
    # XML-signing key; the database path (nothing created before); only then migrations
    log = logging.getLogger("signer")
    config = load(config_path)
    root = ctx.parent.params if ctx.parent is not None else {}
    setup_logging(bool(root.get("verbose")), config.log_format)
    check_startup(config)
    listeners = bind(config)
    for key, value in config.describe().items():
        log.info("config %s = %s", key, value)
    warn_development(config)
    services = open_services(config, serving=True)
    _log_keys(services)
    run(services, listeners)


def _log_keys(services: Services) -> None:
    """What the token offers, so an operator sees a missing key before a call fails."""
    import logging

    from signer.errors import SignerError
    from signer.service.duis import xml_signing_key
    from signer.service.keys.views import UNREGISTERED, list_keys

    log = logging.getLogger("signer")
    for view in list_keys(services):
        log.info(
            "key %r (%s) %s, SKI %s, %s",
            view.label,
            view.purpose or "no purpose",
            view.state,
            (view.ski or b"").hex() or "-",
            f"certificate valid to {view.not_after:%Y-%m-%d}"
            if view.not_after
            else "no certificate",
        )
        if view.state == UNREGISTERED:
            log.warning(
                "key %r is on the token but not in the key ledger: it will not sign "
                "until `signer keys activate --label %s`",
                view.label,
                view.label,
            )
        elif not view.on_token:
            log.warning(
                "key %r is %s in the key ledger but missing from the token", view.label, view.state
            )
    try:
        key, _cert = xml_signing_key(services)
        log.info("DUIS requests are signed with XML-signing key %r", key.label)
    except SignerError as exc:
        log.warning("BuildDUIS will fail until this is fixed: %s", exc)


#: commands that only call the gRPC API: running them imports no database, HSM or XML code
CLIENT_COMMANDS = frozenset(
    {
        "verify",
        "resign",
        "build-duis",
        "activate",
        "sign-precommand",
        "health",
        "campaign plan",
        "campaign show",
        "campaign approve",
        "campaign reject",
        "campaign apply",
    }
)
#: commands that work on the token, the database or local files themselves: they import
#: that code when they run, never for `--help`
LOCAL_COMMANDS = frozenset(
    {
        "serve",
        "dev provision",
        "dev dcc respond",
        "dev dcc done",
        "dev dcc update-credentials",
        "dev smki sign",
        "keys generate",
        "keys csr",
        "keys install-cert",
        "keys activate",
        "keys retire",
        "keys list",
        "keys rotation-report",
        "keys operations",
        "keys import",
        "cpl import",
        "cpl path",
        "cpl graph",
        "manufacturers add",
        "manufacturers revoke",
        "manufacturers list",
        "devices import",
        "devices show",
        "devices inventory",
        "devices set",
        "activations succeeded",
        "audit verify",
        "audit export",
        "db upgrade",
    }
)


def main() -> None:
    run(cli)  # an unexpected error is one line, its traceback only with -v


if __name__ == "__main__":
    main()
