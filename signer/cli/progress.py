"""Progress of long commands, for a person watching: a bar on stderr when stderr is a terminal.

When stderr is not a terminal (a script, a log, CI) nothing is drawn at all: the command's
result and its errors are all that is written there. Light at import, like every module of
`signer.cli`.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import click

Advance = Callable[[int], None]


def _ignore(_n: int) -> None:
    return None


@contextmanager
def progress(length: int, label: str) -> Iterator[Advance]:
    """A bar of ``length`` steps labelled ``label`` on a terminal's stderr (else nothing);
    yields the function that advances it by a number of steps."""
    if not _stderr_is_terminal():
        yield _ignore
        return
    with click.progressbar(
        length=max(length, 1), label=label, show_pos=True, file=sys.stderr
    ) as bar:
        shown: Any = bar  # click types the bar by its iterable, which is not used here
        yield shown.update


def _stderr_is_terminal() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):  # replaced or closed
        return False


class Stopwatch:
    """Elapsed wall time since it was made, for a command's summary line."""

    def __init__(self) -> None:
        self._start = time.perf_counter()

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self._start


def elapsed_text(seconds: float) -> str:
    """``0.42 s``, ``12.3 s``, ``2 min 5 s``: how a summary line gives the time taken."""
    if seconds < 10:
        return f"{seconds:.2f} s"
    if seconds < 120:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest} s"
