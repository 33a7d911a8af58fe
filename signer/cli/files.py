"""Files a client command reads and writes: device lists in, names the server cannot steer."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import click

existing_file = click.Path(exists=True, dir_okay=False, path_type=Path)


def safe_name(label: str) -> str:
    """A key label as a file name: nothing the server sends may escape --out-dir."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", label).lstrip(".") or "key"


def read_or_empty(path: Path | None) -> bytes:
    return path.read_bytes() if path is not None else b""


def device_list(device: tuple[str, ...], devices_file: Path | None) -> list[str]:
    """--device (repeated or comma-separated) and --devices-file, for a call that takes all."""
    out = [d for arg in device for d in arg.split(",") if d.strip()]
    if devices_file is not None:
        out += [ln.strip() for ln in devices_file.read_text().splitlines() if ln.strip()]
    if not out:
        raise click.UsageError("name devices with --device or --devices-file")
    return out


def device_stream(ids: list[str], devices_file: Path | None) -> Iterator[str]:
    """The same devices, read as they are streamed: a campaign's file may be any length."""
    for arg in ids:
        yield from (d.strip() for d in arg.split(",") if d.strip())
    if devices_file is not None:
        with devices_file.open() as f:
            yield from (ln.strip() for ln in f if ln.strip())
