"""Where the token PIN comes from: a file or an environment variable, never argv or logs."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from signer.errors import ConfigurationError


class Pin:
    """A PIN that refuses to be printed."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        if not value:
            raise ConfigurationError("the token PIN is empty")
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Pin(***)"

    __str__ = __repr__


@dataclass(frozen=True)
class PinSource:
    """Exactly one of ``file`` or ``env`` names where to read the PIN."""

    file: Path | None = None
    env: str | None = None

    def __post_init__(self) -> None:
        if (self.file is None) == (self.env is None):
            raise ConfigurationError("set exactly one PIN source: pin_file or pin_env")

    def describe(self) -> str:
        return f"file {self.file}" if self.file is not None else f"environment variable {self.env}"

    def read(self) -> Pin:
        if self.file is not None:
            try:
                text = self.file.read_text(encoding="utf-8")
            except OSError as exc:
                raise ConfigurationError(
                    f"cannot read PIN file {self.file}: {exc.strerror}"
                ) from None
            return Pin(text.strip())
        assert self.env is not None
        value = os.environ.get(self.env)
        if value is None:
            raise ConfigurationError(f"PIN environment variable {self.env} is not set")
        return Pin(value.strip())
