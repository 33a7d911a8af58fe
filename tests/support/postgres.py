"""A throwaway PostgreSQL cluster from Debian's binaries, for tests that need the real thing.

It listens on a Unix socket in its own directory only (no TCP port at all), so parallel
sessions never collide. initdb refuses to run as root: under root the server runs as the
``postgres`` user that Debian's package creates.
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

INSTALL_HINT = "apt-get install postgresql (Debian's postgresql-15 server binaries)"


def find_bin_dir() -> Path | None:
    """The newest /usr/lib/postgresql/N/bin holding initdb and pg_ctl, if any."""
    override = os.environ.get("SIGNER_TEST_PG_BIN")
    candidates = (
        [Path(override)]
        if override
        else sorted(
            Path("/usr/lib/postgresql").glob("*/bin"),
            key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
            reverse=True,
        )
    )
    for d in candidates:
        if (d / "initdb").exists() and (d / "pg_ctl").exists():
            return d
    return None


@dataclass
class Cluster:
    bin_dir: Path
    root: Path
    user: str | None  # the OS user the server runs as when we are root
    _names: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def socket_dir(self) -> Path:
        return self.root / "socket"

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        """A server-side tool, as the server's own user."""
        cmd = [*(["runuser", "-u", self.user, "--"] if self.user else []), *args]
        return subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=self.root)

    def _client(self, tool: str, *args: str) -> None:
        """A client tool, as whoever runs the tests (it writes the test's own files)."""
        subprocess.run(
            [str(self.bin_dir / tool), "-h", str(self.socket_dir), "-U", "postgres", *args],
            check=True,
            capture_output=True,
            text=True,
        )

    def start(self) -> None:
        self._run(
            str(self.bin_dir / "initdb"),
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C.UTF-8",
            "--no-sync",
        )
        options = " ".join(
            [
                "-c listen_addresses=''",
                f"-c unix_socket_directories={self.socket_dir}",
                "-c max_connections=400",
                "-c fsync=off",
                "-c full_page_writes=off",
                "-c shared_buffers=64MB",
            ]
        )
        self._run(
            str(self.bin_dir / "pg_ctl"),
            "-D",
            str(self.data),
            "-l",
            str(self.root / "server.log"),
            "-o",
            options,
            "-w",
            "-t",
            "60",
            "start",
        )

    def stop(self) -> None:
        try:
            self._run(
                str(self.bin_dir / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop"
            )
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def libpq(self, dbname: str = "postgres") -> str:
        """A libpq connection string (psycopg.connect) for one database."""
        return f"host={self.socket_dir} user=postgres dbname={dbname}"

    def url(self, dbname: str) -> str:
        """The SQLAlchemy URL the service is configured with."""
        return f"postgresql+psycopg://postgres@/{dbname}?host={self.socket_dir}"

    def create_database(self, prefix: str = "t") -> str:
        """A new, empty database; its SQLAlchemy URL."""
        import psycopg

        name = f"{prefix}_{next(self._names)}"
        with psycopg.connect(self.libpq(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')  # our own counter-made name
        return self.url(name)

    def dump(self, url: str, out: Path) -> None:
        """pg_dump of the database behind ``url`` (custom format), as a backup would be."""
        self._client("pg_dump", "-Fc", "-f", str(out), dbname_of(url))

    def restore(self, url: str, backup: Path) -> None:
        """Replace the database behind ``url`` with ``backup`` (drop, create, pg_restore)."""
        import psycopg

        name = dbname_of(url)
        with psycopg.connect(self.libpq(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{name}"')
        self._client("pg_restore", "-d", name, str(backup))


def dbname_of(url: str) -> str:
    return url.split("@/", 1)[1].split("?", 1)[0]


def start_cluster() -> Cluster:
    """Start a cluster in a fresh directory; raises LookupError without the binaries."""
    bin_dir = find_bin_dir()
    if bin_dir is None:
        raise LookupError(f"PostgreSQL server binaries not found: {INSTALL_HINT}")
    user = "postgres" if os.geteuid() == 0 else None
    # not under pytest's tmp directory: that is private to root, and the server runs as postgres
    root = Path(tempfile.mkdtemp(prefix="signer-pg-"))
    (root / "socket").mkdir()
    if user is not None:
        for p in (root, root / "socket"):
            shutil.chown(p, user=user, group=user)
    cluster = Cluster(bin_dir, root, user)
    try:
        cluster.start()
    except subprocess.CalledProcessError as exc:
        log = root / "server.log"
        detail = log.read_text()[-2000:] if log.exists() else ""
        shutil.rmtree(root, ignore_errors=True)
        raise RuntimeError(f"PostgreSQL did not start: {exc.stderr}\n{detail}") from None
    return cluster


def libpq_of(url: str) -> str:
    """The libpq form of one of our SQLAlchemy URLs (for independent reads with psycopg)."""
    name = dbname_of(url)
    host = url.split("host=", 1)[1]
    return f"host={host} user=postgres dbname={name}"
