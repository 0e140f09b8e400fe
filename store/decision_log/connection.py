"""The decision log's database: its engines, a connection with the schema brought up to date (the
migrations applied once, under a lock, when it is first reached), and what counts as unreachable.

SQLite runs with a rollback journal, not WAL: WAL's shared-memory index is a memory map, and a map over a
file that cannot be written or grown ends the process with SIGBUS instead of answering an error.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from core.errors import RetainError
from core.urls import described, redact, sqlalchemy_url
from store import log_migrations
from store.decision_log.tables import dumps

log = logging.getLogger("retain.decision_log")

#: entries per transaction: one executemany per table
BATCH = 500
#: how long SQLite waits for the other writer's lock (the writer thread or a feedback request)
SQLITE_BUSY_SECONDS = 5.0
PG_CONNECT_TIMEOUT = 5
#: PostgreSQL advisory lock key held while creating the schema (arbitrary, fixed)
SCHEMA_LOCK_KEY = 0x5E7A1D


class DecisionLogUnavailable(RetainError):
    """A synchronous read or write could not reach the decision log's database."""


def unreachable(error: Exception) -> bool:
    """Errors a retry may cure: the database is down, locked or full, or dropped the connection."""
    transient = (sa.exc.OperationalError, sa.exc.InterfaceError, sa.exc.TimeoutError)
    return isinstance(error, transient) or (
        isinstance(error, sa.exc.DBAPIError) and error.connection_invalidated
    )


def _engine(url: str, *, pooled: bool = True) -> sa.Engine:
    """The log's engine; not `pooled`, each connection is opened when asked for and closed after."""
    target = sa.make_url(sqlalchemy_url(url))
    # hide_parameters: SQLAlchemy's error messages would otherwise carry whole rows into the logs
    options: dict[str, Any] = {"json_serializer": dumps, "hide_parameters": True}
    if not pooled:
        options["poolclass"] = sa.pool.NullPool
    backend = target.get_backend_name()
    if backend == "postgresql":
        return sa.create_engine(
            target, pool_pre_ping=True, connect_args={"connect_timeout": PG_CONNECT_TIMEOUT}, **options
        )
    if backend != "sqlite":
        raise RetainError(f"decision log URL must be sqlite:///path or postgresql://..., got {redact(url)}")
    engine = sa.create_engine(
        target, connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_SECONDS}, **options
    )

    @sa.event.listens_for(engine, "connect")
    def _rollback_journal(connection: Any, _record: Any) -> None:
        # a file an earlier version left in WAL mode is switched back; that needs the only connection, so
        # one opened beside another tries again until the busy timeout
        deadline = time.monotonic() + SQLITE_BUSY_SECONDS
        while True:
            try:
                # asked first: setting it needs a write, which a file that is only readable refuses
                if connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal":
                    connection.execute("PRAGMA journal_mode=DELETE")
                return
            except sqlite3.OperationalError as e:
                if "locked" not in str(e) or time.monotonic() > deadline:
                    raise
                time.sleep(0.01)

    return engine


def _sqlite_file(url: str) -> Path | None:
    """The SQLite file of a decision log URL; None for a server database or an in-memory one."""
    target = sa.make_url(sqlalchemy_url(url))
    database = target.database
    if target.get_backend_name() != "sqlite" or not database or database == ":memory:":
        return None
    return Path(database)


def _identity(path: Path) -> tuple[int, int] | None:
    """Which file is at `path` now (device and inode); None when there is none."""
    try:
        found = path.stat()
    except FileNotFoundError:
        return None
    return found.st_dev, found.st_ino


class LogDatabase:
    """The database a decision log reads and writes: a pooled engine, an unpooled one for the readiness
    probe, and the schema checked before each use; what a retry may cure is `DecisionLogUnavailable`."""

    def __init__(self, url: str):
        self._url = url
        self._engine = _engine(url)
        #: the readiness probe's: a pooled connection can keep writing a file that no longer takes writes
        #: (on a tmpfs, one opened before `chattr +i`), while every connection opened since only reads it
        self._unpooled = _engine(url, pooled=False)
        #: the SQLite file, and which file (device, inode) the connections opened: one deleted or replaced
        #: under a running server is noticed before the next read or write, not written into the void
        self._file = _sqlite_file(url)
        self._opened: tuple[int, int] | None = None
        self._schema_lock = threading.Lock()
        self._schema_ready = False

    @property
    def url(self) -> str:
        return redact(self._url)

    def exists(self) -> bool:
        """False for a SQLite log whose file was never created: a store that never served."""
        return self._file is None or self._file.exists()

    def _one(self, query: sa.Select[Any], values: dict[str, Any] | None = None) -> sa.RowMapping | None:
        with self.connect() as conn:
            return conn.execute(query, values).mappings().one_or_none()

    @contextlib.contextmanager
    def connect(self, *, write: bool = False, opened_now: bool = False) -> Iterator[sa.Connection]:
        """A connection to the log's database with its schema up to date (one transaction with `write`;
        with `opened_now`, not one from the pool); for the log's own reads and writes and the API keys
        kept beside them. What a retry may cure raises `DecisionLogUnavailable`, and the pool is opened
        anew."""
        engine = self._unpooled if opened_now else self._engine
        try:
            self._ensure_schema()
            with engine.begin() if write else engine.connect() as conn:
                yield conn
        except Exception as e:
            if not unreachable(e):
                raise
            self._reopen()
            raise DecisionLogUnavailable(
                f"decision log {self.url} is unavailable: {self._describe(e)}"
            ) from e

    def _reopen(self) -> None:
        """Drop every pooled connection and check the schema again on the next use: a connection SQLite
        opened read-only, or one to a file since deleted, would otherwise fail (or vanish) for good."""
        with self._schema_lock:
            self._schema_ready = False
            self._opened = None
        self._engine.dispose()

    def _ensure_schema(self) -> None:
        # `_opened` first, unlocked: a `_reopen` on another thread clears it, and a cleared one is no news
        opened = self._opened
        if self._file is not None and opened is not None and _identity(self._file) != opened:
            log.warning("decision log %s: the file was deleted or replaced; opening it anew", self.url)
            self._reopen()
        with self._schema_lock:
            if self._schema_ready:
                return
            with self._engine.begin() as conn:
                # several API workers may start at once: take the write lock, so one creates and the rest
                # find the tables (SQLAlchemy emits no BEGIN for pysqlite, so this one opens the transaction)
                if conn.dialect.name == "sqlite":
                    conn.exec_driver_sql("BEGIN IMMEDIATE")
                else:
                    conn.execute(sa.select(sa.func.pg_advisory_xact_lock(SCHEMA_LOCK_KEY)))
                log_migrations.upgrade(conn)
            self._opened = _identity(self._file) if self._file is not None else None
            self._schema_ready = True

    def _describe(self, error: Exception) -> str:
        return described(error, self._url)
