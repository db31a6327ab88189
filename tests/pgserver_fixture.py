"""A throwaway PostgreSQL server for the run-store tests, from the binaries the `pgserver` wheel carries (in the dev extra).

It listens on a unix socket only, inside its own temp dir (no port to collide on), and is stopped and deleted afterwards.
PostgreSQL refuses to run as root; pgserver handles that itself: as root it creates a system user `pgserver` (useradd)
once, hands it the data dir and runs initdb, pg_ctl and postgres as that user.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


@contextmanager
def pgserver_url() -> Iterator[str]:
    """Start a server and yield a SQLAlchemy URL (psycopg 3) for its `postgres` database as the `postgres` superuser;
    skips the calling test with the reason when pgserver is not installed or the server cannot start."""
    try:
        import pgserver
    except ImportError as exc:
        pytest.skip(
            f"No PostgreSQL to test against: set MAMABEAR_TEST_POSTGRES_URL, or install pgserver (the dev extra brings it: run `make install`) ({exc})."
        )
    pgdata = Path(tempfile.mkdtemp(prefix="mamabear-pg."))
    try:
        server = pgserver.get_server(pgdata, cleanup_mode="delete")
    except Exception as exc:  # any failure to start is the reason for skipping
        log = pgdata / "log"
        tail = log.read_text(errors="replace")[-1500:] if log.exists() else ""
        shutil.rmtree(pgdata, ignore_errors=True)
        pytest.skip(f"PostgreSQL from pgserver did not start in {pgdata} ({type(exc).__name__}: {exc}); its log ends:\n{tail}")
    try:
        # postgresql://postgres:@/postgres?host=/tmp/mamabear-pg.XXXX (the socket's folder)
        yield server.get_uri().replace("postgresql://", "postgresql+psycopg://", 1)
    finally:
        server.cleanup()
        shutil.rmtree(pgdata, ignore_errors=True)


class PgHandle:
    """A pgserver server that a fault test can stop and start again (the data stays; the socket is the same)."""

    def __init__(self, server: object) -> None:
        self.server = server

    def stop(self) -> None:
        from pgserver._commands import pg_ctl

        pg_ctl(["-w", "-m", "fast", "stop"], pgdata=self.server.pgdata, user=self.server.system_user)

    def start(self) -> None:
        self.server.ensure_postgres_running()


@contextmanager
def pgserver_handle() -> Iterator[tuple[str, PgHandle]]:
    """As pgserver_url, with a handle to stop and start the server mid-test."""
    try:
        import pgserver
    except ImportError as exc:
        pytest.skip(f"No PostgreSQL to test against: install pgserver (the dev extra brings it: run `make install`) ({exc}).")
    pgdata = Path(tempfile.mkdtemp(prefix="mamabear-pg."))
    server = pgserver.get_server(pgdata, cleanup_mode="delete")
    try:
        yield server.get_uri().replace("postgresql://", "postgresql+psycopg://", 1), PgHandle(server)
    finally:
        server.cleanup()
        shutil.rmtree(pgdata, ignore_errors=True)
