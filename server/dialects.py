"""What differs between SQLite and PostgreSQL, in one place: the engine and its connections.

Everything else (schema, statements, migrations) is written once with SQLAlchemy Core.

SQLite (the embedded deployment, one file per data directory):
- WAL journal (readers never wait for the writer), ``synchronous=NORMAL``, foreign keys on,
  a 30 s busy timeout (which SQLite does not apply to the switch of a new file to WAL while
  another connection writes to it: ``_use_wal`` waits for that itself);
- the driver's own transaction handling is off (``isolation_level = None``) and each
  transaction begins with the statement its connection asks for (``begin`` execution
  option): ``BEGIN IMMEDIATE`` for writes (the write lock is taken at the start, so two
  writers queue instead of failing with "database is locked" half-way), ``BEGIN`` for reads,
  nothing for single statements that need no transaction;
- a pool of connections that grows with the threads that ask (workers, the server's thread
  pool); opening a SQLite connection is cheap and each keeps its pragmas.

PostgreSQL: the driver's default (``READ COMMITTED``): a single ``UPDATE ... WHERE status``
is atomic there too (the row lock makes a second writer re-check the WHERE clause), so the
compare-and-set rules hold without a stronger level.
"""
from __future__ import annotations

import sqlite3
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from sqlalchemy import ColumnElement, Connection, Engine, Table, create_engine, event, literal_column
from sqlalchemy.engine import URL, make_url
from sqlalchemy.pool import QueuePool

BEGIN_OPTION = "cellhub_begin"
"""Execution option naming how a transaction starts in SQLite: ``IMMEDIATE``, ``DEFERRED``
or ``NONE`` (no transaction: each statement commits on its own)."""

SQLITE_BUSY_TIMEOUT_S = 30


def sqlite_url(path: Path) -> URL:
    """The SQLAlchemy URL of the SQLite file ``path``."""
    return URL.create("sqlite+pysqlite", database=str(Path(path)))


def make_engine(url: str | URL) -> Engine:
    """An engine for ``url`` (``sqlite+pysqlite:///...`` or ``postgresql+psycopg://...``)."""
    url = make_url(url)
    if url.get_backend_name() == "sqlite":
        return _sqlite_engine(url)
    return create_engine(url, pool_pre_ping=True)


def _sqlite_engine(url: URL) -> Engine:
    engine = create_engine(
        url,
        poolclass=QueuePool,
        pool_size=8,
        max_overflow=-1,  # never make a thread wait for a connection
        connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S, "check_same_thread": False},
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record) -> None:
        dbapi_connection.isolation_level = None  # SQLAlchemy's "begin" below starts transactions
        cursor = dbapi_connection.cursor()
        _use_wal(cursor)
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection) -> None:
        mode = connection.get_execution_options().get(BEGIN_OPTION, "DEFERRED")
        if mode != "NONE":
            connection.exec_driver_sql(f"BEGIN {mode}")

    return engine


def _use_wal(cursor, timeout_s: float = SQLITE_BUSY_TIMEOUT_S) -> None:
    """Switch the connection's file to the WAL journal. A file not yet in WAL mode needs an
    exclusive lock for it, and SQLite answers "database is locked" at once, without the busy
    timeout, while another connection writes; so that answer is retried here, for at most
    ``timeout_s`` like any other wait for the lock."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
            time.sleep(0.01)


def insertion_order(table: Table, dialect: str) -> ColumnElement:
    """A column that orders ``table``'s rows as they were inserted, to break ties of equal
    times: SQLite's ``rowid``; elsewhere the primary key (a tie there is ordered by id)."""
    if dialect == "sqlite":
        return literal_column("rowid")
    return table.primary_key.columns.values()[0]


def keeps_a_connection_per_thread(engine: Engine) -> bool:
    """Whether ``Database`` keeps one connection per thread instead of checking one out of the
    pool per transaction: SQLite yes (a local file: its connections cost nothing to keep,
    and the check-out is most of a short transaction's cost); PostgreSQL no (server
    connections are few, the pool shares them)."""
    return engine.dialect.name == "sqlite"


@contextmanager
def migration_transaction(engine: Engine) -> Iterator[Connection]:
    """A connection inside the one transaction a migration runs in.

    SQLite: foreign keys are off for its duration and checked before it commits, as SQLite
    prescribes for schema changes: a table that Alembic's batch mode rebuilds (copy, drop,
    rename) must not cascade its drop to the tables that refer to it; ``BEGIN IMMEDIATE``.
    PostgreSQL: a plain transaction (its DDL is transactional and ALTERs in place)."""
    with engine.connect() as conn:
        if engine.dialect.name != "sqlite":
            with conn.begin():
                yield conn
            return
        _outside_transaction(conn, "PRAGMA foreign_keys=OFF")  # a no-op inside a transaction
        try:
            conn.execution_options(**{BEGIN_OPTION: "IMMEDIATE"})
            with conn.begin():
                yield conn
                broken = conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                if broken:
                    raise RuntimeError(f"the migration left rows whose foreign keys point nowhere: {broken[:5]}")
        finally:
            _outside_transaction(conn, "PRAGMA foreign_keys=ON")


def _outside_transaction(conn: Connection, sql: str) -> None:
    conn.execution_options(**{BEGIN_OPTION: "NONE"})
    conn.exec_driver_sql(sql)
    conn.commit()
