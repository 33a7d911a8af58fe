"""The one clock: "now" is an input so tests can pin it (the published certificates expire)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

Clock = Callable[[], dt.datetime]


def system_clock() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def fixed_clock(at: dt.datetime) -> Clock:
    if at.tzinfo is None:
        raise ValueError("a pinned time must be timezone-aware")
    return lambda: at
