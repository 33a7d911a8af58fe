"""Files a command reads and writes: device lists in, names the server cannot steer, and
every problem with a file reported as one line that names it."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import NoReturn

import click

from signer.errors import CertificateRejected, InvalidInput, SignatureInvalid

existing_file = click.Path(exists=True, dir_okay=False, path_type=Path)

_CONTENT_REFUSALS = (CertificateRejected, SignatureInvalid)


class FileProblem(click.ClickException):
    """``Error: <file>: <what is wrong>``, exit 1."""

    def __init__(self, path: Path | str, problem: str) -> None:
        super().__init__(f"{path}: {problem}")


@contextmanager
def about(path: Path | str, *fields: str) -> Iterator[None]:
    """Report what goes wrong reading or parsing the file at ``path`` as a `FileProblem`.

    An `InvalidInput` is the file's when it names one of ``fields`` (what the file was given
    as; with no ``fields``, any field) or the file itself; a certificate or signature refusal
    always is. Anything else (an unknown key label, a database outage) is not about the file
    and goes on unchanged, to be reported by ``reports_errors``.
    """
    try:
        yield
    except InvalidInput as exc:
        if fields and exc.field not in (*fields, str(path), None):
            raise
        shown = exc.message if exc.field == str(path) and exc.offset is None else str(exc)
        raise FileProblem(path, shown) from None
    except _CONTENT_REFUSALS as exc:
        raise FileProblem(path, str(exc)) from None
    except UnicodeDecodeError as exc:
        raise FileProblem(path, f"not UTF-8 text (byte {exc.start})") from None
    except IsADirectoryError:
        raise FileProblem(path, "is a directory, not a file") from None
    except OSError as exc:
        raise FileProblem(path, f"cannot read it: {exc.strerror or exc}") from None
    except RecursionError:
        raise FileProblem(path, "nested too deeply to read") from None


def read_input(path: Path) -> bytes:
    with about(path):
        return path.read_bytes()


def safe_name(label: str) -> str:
    """A key label as a file name: nothing the server sends may escape --out-dir."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", label).lstrip(".") or "key"


def read_or_empty(path: Path | None) -> bytes:
    return read_input(path) if path is not None else b""


def device_list(device: tuple[str, ...], devices_file: Path | None) -> list[str]:
    """--device (repeated or comma-separated) and --devices-file, for a call that takes all."""
    out = [d for arg in device for d in arg.split(",") if d.strip()]
    if devices_file is not None:
        listed = [ln.strip() for ln in _text_lines(devices_file) if ln.strip()]
        if not listed:
            raise FileProblem(devices_file, "names no device (one EUI-64 per line)")
        out += listed
    if not out:
        raise click.UsageError("name devices with --device or --devices-file")
    return out


def device_stream(ids: list[str], devices_file: Path | None) -> Iterator[str]:
    """The same devices, read as they are streamed: a campaign's file may be any length.

    The file is checked to be UTF-8 text before the first device goes out: the stream is
    read on gRPC's thread, where a decoding error could only end the call, not name the file.
    """
    if devices_file is not None and not sum(1 for ln in _text_lines(devices_file) if ln.strip()):
        raise FileProblem(devices_file, "names no device (one EUI-64 per line)")
    for arg in ids:
        yield from (d.strip() for d in arg.split(",") if d.strip())
    if devices_file is not None:
        yield from (ln.strip() for ln in _text_lines(devices_file) if ln.strip())


def _text_lines(path: Path) -> Iterator[str]:
    """The lines of a UTF-8 text file, one at a time; a bad byte names its line."""
    with about(path), path.open("rb") as f:
        for number, raw in enumerate(f, 1):
            try:
                yield raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise FileProblem(
                    path, f"line {number}: not UTF-8 text (byte {exc.start} of the line)"
                ) from None


MAX_SHOWN_ROWS = 50
"""Bad rows an import prints; the rest are counted."""


def refuse_bad_rows(path: Path, errors: Sequence[object], total: int, undone: str) -> NoReturn:
    """Name the first bad rows (``<file>: line N, column C: ...``), count the rest, exit 1."""
    for error in errors[:MAX_SHOWN_ROWS]:
        click.echo(f"{path}: {error}", err=True)
    if total > MAX_SHOWN_ROWS:
        click.echo(f"{path}: ... and {total - MAX_SHOWN_ROWS} more bad row(s)", err=True)
    raise FileProblem(path, f"{total} bad row(s): nothing was {undone}")
