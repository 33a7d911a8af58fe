"""DUIS 5.4 schema validation of every request before it is signed.

Loading reads files, the one I/O exception in this package: the schema directory is
configuration, read once at start-up and cached. Imports resolve only to files inside that
directory; anything else (a URL, a path outside it) is refused rather than fetched.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any, ClassVar

from lxml import etree

from signer.errors import ConfigurationError, InvalidInput

DUIS_SCHEMA_FILE = "DUIS_Schema_V5.4.xsd"
_MAX_MESSAGE = 400


class _LocalOnly(etree.Resolver):
    """Lets schema imports read files in the schema directory and nothing else."""

    def __init__(self, directory: Path) -> None:
        super().__init__()
        self._directory = directory

    def resolve(self, system_url: str | None, public_id: str | None, context: Any) -> Any:
        path = Path((system_url or "").removeprefix("file://"))
        if path.is_absolute() and path.resolve().parent == self._directory:
            return None  # the default loader reads it (no_network still applies)
        return self.resolve_string("", context)


class DuisSchema:
    """A compiled DUIS schema; one instance serves every thread (validation is serialised)."""

    _cache: ClassVar[dict[Path, DuisSchema]] = {}
    _cache_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, schema: etree.XMLSchema, source: Path) -> None:
        self._schema = schema
        self.source = source
        # An lxml validator keeps its error log on the instance: not safe to share unlocked.
        self._lock = threading.Lock()

    @classmethod
    def load(cls, directory: str | os.PathLike[str]) -> DuisSchema:
        """Compile ``DUIS_Schema_V5.4.xsd`` (and its MMC / xmldsig imports) once per directory."""
        d = Path(directory).resolve()
        with cls._cache_lock:
            cached = cls._cache.get(d)
            if cached is not None:
                return cached
            schema = cls._compile(d)
            cls._cache[d] = schema
            return schema

    @classmethod
    def _compile(cls, directory: Path) -> DuisSchema:
        path = directory / DUIS_SCHEMA_FILE
        if not path.is_file():
            raise ConfigurationError(f"DUIS schema not found: {path}")
        parser = etree.XMLParser(
            no_network=True, resolve_entities=False, load_dtd=False, huge_tree=False
        )
        parser.resolvers.add(_LocalOnly(directory))
        try:
            doc = etree.parse(str(path), parser)
            compiled = etree.XMLSchema(doc)
        except (etree.XMLSyntaxError, etree.XMLSchemaParseError) as exc:
            raise ConfigurationError(f"DUIS schema {path} does not compile: {exc}") from exc
        return cls(compiled, path)

    def _errors(self, root: etree._Element) -> list[Any] | None:
        """None if ``root`` is valid, else its schema errors: read under the lock, before
        another thread's validation replaces the validator's error log."""
        with self._lock:
            if self._schema.validate(root.getroottree()):
                return None
            return list(self._schema.error_log)

    @staticmethod
    def _located(first: Any) -> str:
        message = first.message
        if len(message) > _MAX_MESSAGE:
            message = message[:_MAX_MESSAGE] + "…"
        # A tree built in memory has no line numbers; the element path locates the fault then.
        where = f"line {first.line}" if first.line > 0 else (first.path or "document")
        return f"{where}: {message}"

    def first_error(self, root: etree._Element) -> str | None:
        """None if ``root`` is valid, else its first schema error located (one line); safe to
        call from any thread (the pre-flight's ``SchemaCheck``)."""
        errors = self._errors(root)
        if errors is None:
            return None
        return self._located(errors[0]) if errors else "does not match the DUIS schema"

    def validate(self, root: etree._Element) -> None:
        """Raise with the first schema error, so the caller sees which element is wrong."""
        errors = self._errors(root)
        if errors is None:
            return
        if not errors:
            raise InvalidInput("request does not match the DUIS schema", field="duis_request")
        raise InvalidInput(
            f"{self._located(errors[0])} ({len(errors)} schema error(s))", field="duis_request"
        )
