"""The database: a SQLAlchemy engine over SQLite (embedded) or PostgreSQL, and its transactions.

``Database(path)`` opens the SQLite file of a data directory and brings its schema up to date
(Alembic, ``server.migrate``): the embedded server migrates itself. ``Database.from_url(url)``
opens any database without migrating it (``python -m server migrate`` does that).

Transactions: ``writing()`` (SQLite: ``BEGIN IMMEDIATE``) for anything that changes rows,
``reading()`` for several reads that must agree. With SQLite each thread keeps one connection
(as the server's threads are few and long-lived, this saves the pool's check-out and check-in
on every statement: most of a transition's cost). Every state change of a job is a single
``UPDATE ... WHERE status ...`` inside ``writing()``, so the compare-and-set rules of R1-R3
hold under real concurrency: whichever statement runs first wins, the other changes no row.

``one``/``all``/``execute`` run one statement: a SQLAlchemy statement, or a string of the
driver's own SQL with its parameters (tests and diagnostics only: shared code uses
statements, which both dialects understand). Rows are mappings (``row["name"]``).
"""
from __future__ import annotations

import threading
from contextlib import AbstractContextManager, contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator, Optional

from sqlalchemy import Connection, Engine
from sqlalchemy.engine import RowMapping

from server.dialects import BEGIN_OPTION, keeps_a_connection_per_thread, make_engine, sqlite_url

Params = tuple | dict


def utc_now_iso() -> str:
    """The current time as an ISO-8601 UTC string with milliseconds."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


class Database:
    """Thread-safe access to one database; every method may be called from any thread."""

    def __init__(self, path: Path | str, *, migrate: bool = True) -> None:
        """The SQLite file ``path`` (created if missing), upgraded to the newest schema unless
        ``migrate`` is False."""
        self._open(make_engine(sqlite_url(Path(path))))
        if migrate:
            from server.migrate import upgrade

            upgrade(self)

    @classmethod
    def from_url(cls, url: str, *, migrate: bool = False) -> "Database":
        """The database at the SQLAlchemy ``url`` (``sqlite+pysqlite:///FILE``,
        ``postgresql+psycopg://...``)."""
        db = cls.__new__(cls)
        db._open(make_engine(url))
        if migrate:
            from server.migrate import upgrade

            upgrade(db)
        return db

    def _open(self, engine: Engine) -> None:
        self.engine = engine
        self.path = Path(engine.url.database) if self.dialect == "sqlite" and engine.url.database else None
        self._per_thread = keeps_a_connection_per_thread(engine)
        self._local = threading.local()
        self._held: list[Connection] = []
        self._held_lock = threading.Lock()

    @property
    def dialect(self) -> str:
        """``"sqlite"`` or ``"postgresql"``."""
        return self.engine.dialect.name

    def dispose(self) -> None:
        """Close every connection (the database file can then be removed)."""
        with self._held_lock:
            held, self._held = self._held, []
        for conn in held:
            conn.close()
        self._local = threading.local()
        self.engine.dispose()

    # --- transactions -------------------------------------------------------------
    def _thread_connection(self) -> Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None or conn.closed:
            conn = self.engine.connect()
            self._local.conn = conn
            with self._held_lock:
                self._held.append(conn)
        return conn

    @contextmanager
    def _transaction(self, begin: str) -> Iterator[Connection]:
        if not self._per_thread:
            with self.engine.connect() as conn:
                conn.execution_options(**{BEGIN_OPTION: begin})
                with conn.begin():
                    yield conn
            return
        conn = self._thread_connection()
        if conn.in_transaction():  # called inside this thread's open transaction: part of it
            yield conn
            return
        conn.execution_options(**{BEGIN_OPTION: begin})
        with conn.begin():
            yield conn

    def writing(self) -> AbstractContextManager[Connection]:
        """A connection in a write transaction (SQLite: ``BEGIN IMMEDIATE``); committed when
        the block ends, rolled back if it raises. Inside another transaction of the same
        thread, that transaction."""
        return self._transaction("IMMEDIATE")

    def reading(self) -> AbstractContextManager[Connection]:
        """A connection in a read transaction: its reads see one state of the database."""
        return self._transaction("DEFERRED")

    @contextmanager
    def exclusive(self, name: str) -> Iterator[None]:
        """Run the block while no other process holds ``name`` (PostgreSQL: a session advisory
        lock on a connection of its own, so replicas starting at once seed the demo or add the
        default user once; SQLite: the block runs as it is)."""
        if self.dialect != "postgresql":
            yield
            return
        from sqlalchemy import func, select

        with self.engine.connect() as conn:
            conn.execute(select(func.pg_advisory_lock(func.hashtext(name))))
            conn.commit()
            try:
                yield
            finally:
                conn.execute(select(func.pg_advisory_unlock(func.hashtext(name))))
                conn.commit()

    # --- one statement --------------------------------------------------------------
    @staticmethod
    def _run(conn: Connection, statement: Any, params: Params):
        if isinstance(statement, str):
            return conn.exec_driver_sql(statement, params if params else ())
        return conn.execute(statement, params) if params else conn.execute(statement)

    def one(self, statement: Any, params: Params = ()) -> Optional[RowMapping]:
        """The first row of a query, or None."""
        with self._transaction("NONE") as conn:
            return self._run(conn, statement, params).mappings().first()

    def all(self, statement: Any, params: Params = ()) -> list[RowMapping]:
        """Every row of a query."""
        with self._transaction("NONE") as conn:
            return list(self._run(conn, statement, params).mappings())

    def scalar(self, statement: Any, params: Params = ()) -> Any:
        """The first column of the first row of a query, or None."""
        with self._transaction("NONE") as conn:
            return self._run(conn, statement, params).scalar()

    def execute(self, statement: Any, params: Params = ()) -> int:
        """Run one changing statement in its own write transaction; the number of rows it changed."""
        with self.writing() as conn:
            return self._run(conn, statement, params).rowcount
