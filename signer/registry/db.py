"""Engine, sessions and schema migrations for the registries."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

from sqlalchemy import URL, Connection, Engine, create_engine, event, make_url, text
from sqlalchemy.exc import ArgumentError, DisconnectionError, NoSuchModuleError, OperationalError
from sqlalchemy.exc import TimeoutError as SATimeoutError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import QueuePool

from signer.errors import ConfigurationError, Unavailable

MIGRATIONS = Path(__file__).parent / "migrations"
#: pg_advisory_xact_lock key held while migrating ("signer" in ASCII)
MIGRATION_LOCK = 0x7369676E6572
_MAX_OVERFLOW = 10  # connections beyond pool_size, opened when needed and closed after


def _reason(exc: Exception) -> str:
    """The driver's first line (e.g. "connection refused"), without the SQL or parameters."""
    orig = getattr(exc, "orig", None)
    text_ = str(orig if orig is not None else exc).strip().splitlines()
    return f"{type(exc).__name__}: {text_[0][:200]}" if text_ else type(exc).__name__


class Database:
    """One engine and its session factory; every use case borrows sessions from here.

    Alembic is imported where it is used: about 0.2 s of every command's start-up, and a
    misconfigured `signer serve` refuses before needing it.
    """

    def __init__(self, url: str, *, pool_size: int = 20) -> None:
        self.url = url
        kwargs: dict[str, Any] = {
            "pool_size": pool_size,
            "max_overflow": _MAX_OVERFLOW,
            "pool_timeout": 10,
        }
        self._connections = pool_size + _MAX_OVERFLOW
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
        self._postgres = url.startswith("postgresql")

    def migrate(self) -> str | None:
        """Bring the schema to the newest revision (idempotent); returns the revision before.

        Replicas starting at once take turns: on PostgreSQL a transaction-scoped advisory
        lock, on SQLite an exclusive lock on a file beside the database. The first applies
        the migrations; the others wait for it, then find nothing to do.
        """
        from alembic import command
        from alembic.config import Config as AlembicConfig
        from alembic.runtime.migration import MigrationContext
        from alembic.util.exc import CommandError

        cfg = AlembicConfig()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        try:
            with self._migration_lock(), self.engine.begin() as conn:
                if conn.dialect.name == "postgresql":
                    conn.execute(
                        text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK}
                    )
                before = MigrationContext.configure(conn).get_current_revision()
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, "head")
        except (OperationalError, SATimeoutError, DisconnectionError) as exc:
            raise Unavailable(f"database unavailable: {_reason(exc)}") from exc
        except CommandError as exc:
            # typically a revision this build does not know: a newer signer migrated it
            raise ConfigurationError(
                f"database schema: {exc} (is this signer older than "
                "the one that last migrated the database?)"
            ) from None
        return before

    def revision(self) -> str | None:
        """The schema revision the database is at (None: never migrated)."""
        from alembic.runtime.migration import MigrationContext

        with self.read() as conn:
            return MigrationContext.configure(conn).get_current_revision()

    @staticmethod
    def head_revision() -> str | None:
        from alembic.config import Config as AlembicConfig
        from alembic.script import ScriptDirectory

        cfg = AlembicConfig()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        return ScriptDirectory.from_config(cfg).get_current_head()

    @contextmanager
    def _migration_lock(self) -> Iterator[None]:
        path = self.url.removeprefix("sqlite:///")
        if not self.url.startswith("sqlite") or not path or path == ":memory:":
            yield
            return
        with open(f"{path}.migrate.lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

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

    @property
    def driver_error(self) -> type[Exception]:
        """The driver's base exception (sqlite3.Error, psycopg.Error)."""
        error: type[Exception] = self.engine.dialect.loaded_dbapi.Error
        return error

    @contextmanager
    def cursor(self) -> Iterator[RawCursor]:
        """A driver cursor for the hot path's few fixed statements, where SQLAlchemy's
        statement machinery costs more than the query (measured: 127 against 27 us for a
        one-row read). Its transaction is rolled back at the end unless ``commit``ed."""
        try:
            conn = self.engine.raw_connection()
        except (OperationalError, SATimeoutError, DisconnectionError) as exc:
            raise Unavailable(f"database unavailable: {type(exc).__name__}") from exc
        error = self.driver_error
        cur = None
        try:
            cur = conn.cursor()
            try:
                yield RawCursor(cur, conn, self._postgres)
            finally:
                cur.close()
        except error as exc:
            if self.engine.dialect.is_disconnect(cast(Any, exc), conn.dbapi_connection, cur):
                # as SQLAlchemy does on its own paths: this connection is dead and so,
                # likely, are its pooled siblings (a failover): new ones from now on
                conn.invalidate(exc)
                self.engine.dispose(close=False)
            raise Unavailable(f"database unavailable: {_reason(exc)}") from exc
        finally:
            conn.close()  # back to the pool, which rolls back what was not committed

    def has_spare_connection(self) -> bool:
        """Whether a connection can be had now without waiting for one: a hint (another
        thread may take it first), for work that only helps, such as ``batches``' helper."""
        pool = self.engine.pool
        return not isinstance(pool, QueuePool) or pool.checkedout() < self._connections

    def ping(self) -> None:
        """Raise Unavailable unless a connection can run a statement now (health checks)."""
        with self.read() as conn:
            conn.execute(text("SELECT 1"))

    def dispose(self) -> None:
        self.engine.dispose()


class RawCursor:
    """SQL written once with ``?`` markers, run on either driver (psycopg wants ``%s``)."""

    def __init__(self, cur: Any, conn: Any, postgres: bool) -> None:
        self._cur, self._conn, self._postgres = cur, conn, postgres

    @classmethod
    def of(cls, s: Session) -> RawCursor:
        """A cursor inside a session's transaction, on its connection."""
        conn = s.connection()
        dbapi = conn.connection.dbapi_connection
        if dbapi is None:
            raise Unavailable("database unavailable: the session's connection is closed")
        return cls(dbapi.cursor(), dbapi, conn.dialect.name == "postgresql")

    def _sql(self, sql: str) -> str:
        return sql.replace("?", "%s") if self._postgres else sql

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        self._cur.execute(self._sql(sql), params)
        return self._cur

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        self._cur.executemany(self._sql(sql), rows)

    def commit(self) -> None:
        self._conn.commit()


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA journal_mode=WAL")
    cur.close()


SQLITE_MAGIC = b"SQLite format 3\x00"


def check_database(url: str) -> None:
    """Refuse, before anything is created, a ``database.url`` this service cannot use: not a
    URL, an unknown dialect or missing driver, or an SQLite path that is a directory, not an
    SQLite file, or in a directory that does not exist or cannot be written."""
    parsed = check_database_url(url)
    if parsed.get_backend_name() == "sqlite":
        _check_sqlite_path(parsed.database or "")


def check_database_url(url: str) -> URL:
    """The URL parsed, its dialect and driver known and installed; nothing is opened."""
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):  # ValueError: a port that is not a number
        raise ConfigurationError(
            f"database.url {_scheme(url)}: not a database URL "
            "(sqlite:///PATH or postgresql+psycopg://USER@HOST/DB)"
        ) from None
    try:
        parsed.get_dialect().import_dbapi()
    except (NoSuchModuleError, ImportError):
        raise ConfigurationError(
            f"database.url: unknown dialect or missing driver {parsed.drivername!r} "
            "(sqlite or postgresql+psycopg)"
        ) from None
    return parsed


def _scheme(url: str) -> str:
    """What a URL that does not parse may show of itself: its scheme only, since anything
    after it may hold a user and password (``postgresql:/u:secret@h/db``)."""
    scheme = url.split(":", 1)[0] if ":" in url else ""
    if not scheme.replace("+", "").replace("-", "").replace(".", "").isalnum():
        return "(not a URL)"
    return repr(scheme[:24] + ":…")


def _check_sqlite_path(name: str) -> None:
    if not name or name == ":memory:" or name.startswith("file:"):
        raise ConfigurationError(
            "database.url: an in-memory SQLite database forgets its counters and audit "
            "trail at exit; name a file (sqlite:///var/signer.db)"
        )
    path = Path(name)
    if path.is_dir():
        raise ConfigurationError(f"database.url {path}: is a directory, not a database file")
    if path.exists():
        try:
            with path.open("rb") as f:
                head = f.read(len(SQLITE_MAGIC))
        except OSError as exc:
            raise ConfigurationError(f"database.url {path}: {exc.strerror}") from None
        if head and head != SQLITE_MAGIC:
            raise ConfigurationError(f"database.url {path}: not an SQLite database")
        if not os.access(path, os.W_OK):
            raise ConfigurationError(f"database.url {path}: not writable by this user")
        return
    parent = path.parent
    if not parent.exists():
        raise ConfigurationError(
            f"database.url {path}: directory {parent} does not exist (create it first)"
        )
    if not parent.is_dir():
        raise ConfigurationError(f"database.url {path}: {parent} is not a directory")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ConfigurationError(
            f"database.url {path}: cannot create it, directory {parent} is not writable"
        )


def open_database(url: str) -> Database:
    """The database at ``url``, migrated, its trust triggers checked."""
    from signer.registry.trust import check_triggers  # it imports this module

    db = Database(url)
    db.migrate()
    check_triggers(db)
    return db
