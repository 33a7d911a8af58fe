"""The PKCS#11 modules of the process: each loaded once, with its lock and its generation.

Why one lock per module and why generations: see docs/hsm.md ("Locking" and "Handles after a
re-initialisation").
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

import pkcs11

from signer.errors import HsmUnavailable

if TYPE_CHECKING:  # the loaded library's class; pkcs11.lib is the function that loads it
    from pkcs11._pkcs11 import lib as Library


class Module:
    """One PKCS#11 module of the process: the library, its lock and its generation.

    The generation counts re-initialisations: sessions and handles of an older one are dead,
    and their numbers may already name other sessions and objects.
    """

    def __init__(self, path: str, loader: Callable[[str], Library] = pkcs11.lib) -> None:
        self.path = path
        self.lock = threading.RLock()
        self.lib: Library | None = None
        self.generation = 0
        self.reinit_at = -math.inf  # monotonic time of the last re-initialisation
        self._loader = loader

    def load(self) -> Library:
        """Load once per process (the caller holds the lock): a second load raises."""
        if self.lib is None:
            try:
                self.lib = self._loader(self.path)
            except RuntimeError as exc:
                raise HsmUnavailable(f"cannot load PKCS#11 module {self.path}: {exc}") from None
        return self.lib

    def reinitialize(self, now: float) -> None:
        """C_Finalize and C_Initialize (the caller holds the lock): every session dies."""
        self.reinit_at = now
        self.generation += 1
        if self.lib is not None:
            self.lib.reinitialize()


_modules: dict[str, Module] = {}
_modules_lock = threading.Lock()


def module(path: str) -> Module:
    """The process's one ``Module`` for ``path``: tokens of one module share its lock."""
    with _modules_lock:
        if path not in _modules:
            _modules[path] = Module(path)
        return _modules[path]
