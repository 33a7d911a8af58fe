"""Log output: JSON lines for the service (with request ID and client), text for commands.

Log records carry messages and identifiers only. Nothing here adds key material, PINs or
image bytes, and the call sites never pass them (a test greps a full run's logs for them).
"""

from __future__ import annotations

import logging
import sys

from signer.caller import current

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class CallerFields(logging.Filter):
    """Stamp each record with the caller bound to the thread's current call."""

    def filter(self, record: logging.LogRecord) -> bool:
        caller = current()
        record.request_id = caller.request_id
        record.client = caller.identity
        if caller.client_request_id is not None:
            record.client_request_id = caller.client_request_id
        return True


def setup_logging(verbose: bool, fmt: str = "text") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(CallerFields())
    if fmt == "json":
        from pythonjsonlogger.json import JsonFormatter  # the service's format: not for commands

        handler.setFormatter(
            JsonFormatter(
                "%(levelname)s %(name)s %(message)s %(request_id)s %(client)s",
                rename_fields={"levelname": "level", "name": "logger"},
                timestamp="time",
                json_ensure_ascii=False,
            )
        )  # ISO 8601, UTC
    else:
        handler.setFormatter(logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    logging.getLogger("alembic").setLevel(logging.WARNING)
