"""Schema migrations with Alembic: create a database or bring it up to date, in place.

``upgrade(db)`` runs every migration under ``server/migrations/versions`` that the database
has not had yet, inside one write transaction (``dialects.migration_transaction``; SQLite:
foreign keys off while tables are rebuilt, ``BEGIN IMMEDIATE``, so two processes
opening one data folder at once migrate it once; DDL is transactional in both dialects, so a
failed migration leaves the database as it was). It is idempotent: a database at the newest
revision is left alone. A data folder made before migrations existed has no
``alembic_version`` table; the baseline revision adopts its tables as they are.

A new revision: a file ``server/migrations/versions/NNNN_what.py`` with ``revision = "NNNN"``
and ``down_revision`` the previous one (``script.py.mako`` is the template), and the same
change in ``server/schema.py``; ``tests/service/test_migrations.py`` checks that they agree.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from server.db import Database
from server.dialects import migration_transaction

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def alembic_config() -> Config:
    """Alembic's configuration for this project's migrations (no ini file needed)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def head_revision() -> str:
    """The newest revision there is."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def current_revision(db: Database) -> Optional[str]:
    """The revision the database is at (None: never migrated)."""
    with db.reading() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(db: Database, revision: str = "head") -> None:
    """Bring ``db`` to ``revision`` (default: the newest), creating the tables if needed."""
    if revision == "head" and current_revision(db) == head_revision():
        return  # the common case at every start, without a write lock
    config = alembic_config()
    with migration_transaction(db.engine) as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, revision)


def downgrade(db: Database, revision: str) -> None:
    """Take ``db`` back to ``revision`` (``"base"``: no tables at all). Used by tests."""
    config = alembic_config()
    with migration_transaction(db.engine) as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, revision)


def sql_script(dialect: str) -> str:
    """The SQL the migrations run on an empty database of ``dialect`` (``"postgresql"``,
    ``"sqlite"``), without a database: Alembic's offline mode. Shows that every revision
    renders for that dialect."""
    import io

    config = alembic_config()
    output = io.StringIO()
    config.attributes.update(dialect=dialect, output=output)
    command.upgrade(config, "head", sql=True)
    return output.getvalue()
