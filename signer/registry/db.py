"""Engine, sessions and schema migrations for the registries."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.exc import DisconnectionError, OperationalError
from sqlalchemy.exc import TimeoutError as SATimeoutError
from sqlalchemy.orm import Session, sessionmaker

from signer.errors import Unavailable

MIGRATIONS = Path(__file__).parent / "migrations"


class Database:
    """One engine and its session factory; every use case borrows sessions from here."""

    def __init__(self, url: str, *, pool_size: int = 20) -> None:
        self.url = url
        kwargs: dict[str, Any] = {"pool_size": pool_size, "pool_timeout": 10}
        if url.startswith("postgresql"):
            # audit appends rely on re-reading the audit_head row they lock (READ COMMITTED)
            kwargs["isolation_level"] = "READ COMMITTED"
        if url.startswith("sqlite"):
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
            path = url.removeprefix("sqlite:///")
            if path and path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.engine: Engine = create_engine(url, **kwargs)
        if url.startswith("sqlite"):
            event.listen(self.engine, "connect", _sqlite_pragmas)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    def migrate(self) -> None:
        """Bring the schema to the newest revision (idempotent)."""
        cfg = AlembicConfig()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        cfg.attributes["connection"] = None
        with self.engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A transaction: committed on success, rolled back on any error."""
        try:
            with self._sessions.begin() as s:
                yield s
        except (OperationalError, SATimeoutError, DisconnectionError) as exc:
            raise Unavailable(f"database unavailable: {type(exc).__name__}") from exc

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A plain connection for hot-path reads that need no ORM identity map."""
        try:
            with self.engine.connect() as conn:
                yield conn
        except (OperationalError, SATimeoutError, DisconnectionError) as exc:
            raise Unavailable(f"database unavailable: {type(exc).__name__}") from exc

    def ping(self) -> None:
        """Raise Unavailable unless a connection can run a statement now (health checks)."""
        with self.read() as conn:
            conn.execute(text("SELECT 1"))

    def dispose(self) -> None:
        self.engine.dispose()


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA journal_mode=WAL")
    cur.close()


def open_database(url: str) -> Database:
    db = Database(url)
    db.migrate()
    return db
