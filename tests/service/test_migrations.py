"""Schema migrations (Alembic): a new database, the data folders made before migrations existed,
``python -m server migrate``, and the PostgreSQL rendering of the same schema."""
from __future__ import annotations

import sqlite3
import threading

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from server import migrate
from server.cli import main
from server.db import Database
from server.jobs import JobStore
from server.schema import metadata

# The schema every data folder had before migrations existed (the server ran this script,
# CREATE TABLE IF NOT EXISTS, at each start), with the start-token index it added in place.
PRE_MIGRATION_SCHEMA = """
CREATE TABLE users (id INTEGER PRIMARY KEY, username TEXT NOT NULL UNIQUE, password_hash TEXT,
    created_at TEXT NOT NULL);
CREATE TABLE sessions (token_hash TEXT PRIMARY KEY, user_id INTEGER NOT NULL REFERENCES users(id),
    created_at REAL NOT NULL, expires_at REAL NOT NULL);
CREATE TABLE login_tokens (token_hash TEXT PRIMARY KEY, user_id INTEGER NOT NULL REFERENCES users(id),
    created_at REAL NOT NULL, used INTEGER NOT NULL DEFAULT 0);
CREATE TABLE projects (id INTEGER PRIMARY KEY, name TEXT NOT NULL, description TEXT NOT NULL DEFAULT '',
    categories_json TEXT NOT NULL, pixel_size_um REAL, synthetic INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL);
CREATE TABLE images (id INTEGER PRIMARY KEY, project_id INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    position INTEGER NOT NULL, file_name TEXT NOT NULL, width INTEGER NOT NULL, height INTEGER NOT NULL,
    rel_path TEXT NOT NULL);
CREATE INDEX images_by_project ON images(project_id, position);
CREATE TABLE objects (id INTEGER PRIMARY KEY, image_id INTEGER NOT NULL REFERENCES images(id) ON DELETE CASCADE,
    number INTEGER NOT NULL, category TEXT NOT NULL, polygons_json TEXT NOT NULL);
CREATE INDEX objects_by_image ON objects(image_id, number);
CREATE TABLE jobs (id TEXT PRIMARY KEY, user_id INTEGER NOT NULL REFERENCES users(id),
    project_id INTEGER NOT NULL REFERENCES projects(id), status TEXT NOT NULL, progress REAL NOT NULL DEFAULT 0,
    stage TEXT NOT NULL DEFAULT '', message TEXT NOT NULL DEFAULT '', seq INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL, finished_at TEXT, delivered INTEGER NOT NULL DEFAULT 0, size_bytes INTEGER,
    warnings_json TEXT NOT NULL DEFAULT '[]', options_json TEXT NOT NULL, archive_name TEXT,
    attempts INTEGER NOT NULL DEFAULT 0, start_token TEXT);
CREATE UNIQUE INDEX one_active_export ON jobs(user_id, project_id) WHERE status IN ('queued', 'running');
CREATE INDEX jobs_by_owner ON jobs(user_id, project_id, created_at);
CREATE UNIQUE INDEX one_job_per_start_token ON jobs(user_id, start_token) WHERE start_token IS NOT NULL;
INSERT INTO users(id, username, created_at) VALUES (1, 'local', '2026-01-01T00:00:00.000+00:00');
INSERT INTO projects(id, name, categories_json, synthetic, created_at)
    VALUES (1, 'Nuclei', '["nucleus"]', 1, '2026-01-01T00:00:00.000+00:00');
INSERT INTO jobs(id, user_id, project_id, status, seq, created_at, options_json, delivered, start_token)
    VALUES ('j1', 1, 1, 'completed', 4, '2026-01-01T00:00:01.000+00:00', '{}', 1, 'tok');
"""


def _differences(db: Database) -> list:
    with db.reading() as conn:
        return compare_metadata(MigrationContext.configure(conn), metadata)


def _partial_indexes(db: Database) -> dict[str, str]:
    rows = db.all("SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql LIKE '%WHERE%'")
    return {row["name"]: row["sql"] for row in rows}


def test_a_new_database_gets_exactly_the_schema_the_code_uses(tmp_path):
    db = Database(tmp_path / "new.sqlite3")
    assert migrate.current_revision(db) == migrate.head_revision()
    assert _differences(db) == []
    indexes = _partial_indexes(db)
    assert "status IN ('queued', 'running')" in indexes["one_active_export"]
    assert "start_token IS NOT NULL" in indexes["one_job_per_start_token"]
    assert db.one("PRAGMA journal_mode")["journal_mode"] == "wal"


def test_a_data_folder_from_before_migrations_is_upgraded_in_place_with_its_rows(tmp_path):
    path = tmp_path / "cellhub.sqlite3"
    with sqlite3.connect(path) as conn:
        conn.executescript(PRE_MIGRATION_SCHEMA)
    db = Database(path)
    assert migrate.current_revision(db) == migrate.head_revision()
    job = JobStore(db, tmp_path / "exports", lambda _user, _event: None).get("j1")
    assert (job.status, job.seq, job.delivered, job.start_token) == ("completed", 4, True, "tok")
    assert db.one("SELECT name, synthetic FROM projects") == {"name": "Nuclei", "synthetic": 1}
    assert set(_partial_indexes(db)) == {"one_active_export", "one_job_per_start_token"}
    tables = set(inspect(db.engine).get_table_names())
    assert tables == set(metadata.tables) | {"alembic_version"}


def test_the_partial_unique_indexes_still_hold_after_the_upgrade(tmp_path):
    path = tmp_path / "cellhub.sqlite3"
    with sqlite3.connect(path) as conn:
        conn.executescript(PRE_MIGRATION_SCHEMA)
    store = JobStore(Database(path), tmp_path / "exports", lambda _user, _event: None)
    from app.models import ExportOptions

    first, outcome = store.create(1, 1, ExportOptions())
    assert outcome == "created"
    assert store.create(1, 1, ExportOptions()) == (first, "active")
    assert store.create(1, 1, ExportOptions(), "tok")[1] == "repeated"


def test_two_processes_opening_a_new_data_folder_at_once_migrate_it_once(tmp_path):
    path = tmp_path / "cellhub.sqlite3"
    errors: list[BaseException] = []

    def open_it():
        try:
            Database(path).dispose()
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=open_it) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    db = Database(path, migrate=False)
    assert db.all("SELECT version_num FROM alembic_version") == [{"version_num": migrate.head_revision()}]


def test_a_new_database_file_waits_for_a_writer_before_it_turns_to_wal(tmp_path):
    """SQLite answers ``PRAGMA journal_mode=WAL`` "database is locked" at once, without its
    busy timeout, while another connection writes to a file not yet in WAL mode: what two
    processes opening a new data folder at once met now and then."""
    path = tmp_path / "cellhub.sqlite3"
    writer = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    writer.execute("CREATE TABLE other (x)")
    writer.execute("BEGIN IMMEDIATE")
    writer.execute("INSERT INTO other VALUES (1)")
    threading.Timer(0.5, writer.execute, ("COMMIT",)).start()
    db = Database(path)
    assert db.one("PRAGMA journal_mode")["journal_mode"] == "wal"
    assert migrate.current_revision(db) == migrate.head_revision()
    writer.close()


def test_the_migrate_command_creates_then_finds_the_schema_up_to_date(tmp_path, capsys):
    data = tmp_path / "data"
    assert main(["migrate", "--data-dir", str(data)]) == 0
    assert f"upgraded from revision none to {migrate.head_revision()}" in capsys.readouterr().out
    assert main(["migrate", "--data-dir", str(data)]) == 0
    assert "schema up to date" in capsys.readouterr().out
    url = f"sqlite+pysqlite:///{tmp_path / 'other.sqlite3'}"
    assert main(["migrate", "--database-url", url]) == 0
    assert "upgraded from revision none" in capsys.readouterr().out
    assert _differences(Database.from_url(url)) == []


def test_the_schema_renders_for_postgresql_with_both_partial_unique_indexes():
    sql = migrate.sql_script("postgresql")
    assert ("CREATE UNIQUE INDEX IF NOT EXISTS one_active_export ON jobs (user_id, project_id)"
            " WHERE status IN ('queued', 'running')") in sql
    assert ("CREATE UNIQUE INDEX IF NOT EXISTS one_job_per_start_token ON jobs (user_id, start_token)"
            " WHERE start_token IS NOT NULL") in sql
    assert "id BIGSERIAL NOT NULL" in sql and "delivered BOOLEAN DEFAULT false NOT NULL" in sql
    assert "rowid" not in sql.lower() and "PRAGMA" not in sql


def test_downgrading_to_base_removes_every_table_and_upgrading_brings_them_back(tmp_path):
    db = Database(tmp_path / "db.sqlite3")
    migrate.downgrade(db, "base")
    assert set(inspect(db.engine).get_table_names()) == {"alembic_version"}
    migrate.upgrade(db)
    assert _differences(db) == []


def _old_folder_with_data(path, users: bool = True) -> None:
    with sqlite3.connect(path) as conn:
        conn.executescript(PRE_MIGRATION_SCHEMA)
        if not users:
            conn.execute("DELETE FROM jobs")
            conn.execute("DELETE FROM users")
        conn.execute("INSERT INTO users(id, username, created_at) VALUES (7, 'zoe', '2026-02-01T00:00:00.000+00:00')"
                     if users else "SELECT 1")
        conn.execute("INSERT INTO projects(id, name, categories_json, synthetic, created_at)"
                     " VALUES (2, 'Imported', '[\"cell\"]', 0, '2026-01-02T00:00:00.000+00:00')")
        for image_id, project_id in ((10, 1), (11, 2), (12, 2)):
            conn.execute("INSERT INTO images(id, project_id, position, file_name, width, height, rel_path)"
                         f" VALUES ({image_id}, {project_id}, 0, 'a.png', 8, 8, 'p{project_id}/a.png')")
            conn.execute("INSERT INTO objects(image_id, number, category, polygons_json)"
                         f" VALUES ({image_id}, 1, 'cell', '[[[[0,0],[1,0],[1,1]]]]')")


def test_an_old_data_folder_gets_owners_its_demo_stays_public_and_keeps_every_row(tmp_path):
    """Revision 0002 (ownership) on a folder made before it: projects go to the first user,
    the synthetic demo is public, imported projects private; rebuilding the projects table
    (SQLite's way to add a foreign key) deletes no image, object or job through its cascades."""
    path = tmp_path / "cellhub.sqlite3"
    _old_folder_with_data(path)
    db = Database(path)
    rows = db.all("SELECT id, owner_id, public FROM projects ORDER BY id")
    assert [dict(r) for r in rows] == [{"id": 1, "owner_id": 1, "public": 1}, {"id": 2, "owner_id": 1, "public": 0}]
    assert db.scalar("SELECT COUNT(*) FROM images") == 3 and db.scalar("SELECT COUNT(*) FROM objects") == 3
    assert db.scalar("SELECT COUNT(*) FROM jobs") == 1
    assert db.all("PRAGMA foreign_key_check") == [] and db.one("PRAGMA foreign_keys")["foreign_keys"] == 1
    from server import project_store

    zoe = project_store.visible_projects(db, 7)
    assert [(p["id"], p["access"], p["owner"]) for p in zoe] == [(1, "public", "local")]


def test_an_old_data_folder_without_users_gets_the_default_user_as_owner(tmp_path):
    path = tmp_path / "cellhub.sqlite3"
    _old_folder_with_data(path, users=False)
    db = Database(path)
    local = db.one("SELECT id FROM users WHERE username = 'local'")
    assert local is not None
    assert {r["owner_id"] for r in db.all("SELECT owner_id FROM projects")} == {local["id"]}


def test_a_folder_made_at_the_baseline_revision_is_upgraded_to_ownership(tmp_path):
    db = Database(tmp_path / "db.sqlite3", migrate=False)
    migrate.upgrade(db, "0001")
    db.execute("INSERT INTO users(id, username, created_at) VALUES (3, 'ann', 'x')")
    db.execute("INSERT INTO projects(id, name, categories_json, created_at) VALUES (5, 'P', '[]', 'x')")
    migrate.upgrade(db)
    assert dict(db.one("SELECT owner_id, public FROM projects")) == {"owner_id": 3, "public": 0}
    assert _differences(db) == []


def test_a_folder_at_0003_gets_sources_and_keeps_owners_members_and_rows(tmp_path):
    """Revision 0004 (issue 19) on a folder at 0003: ``objects.source_json`` comes as NULL and
    ``projects.import_warnings_json`` as ``'[]'``; owners, members and every row stay, both up
    and back down to 0003."""
    from server.project_store import load_project, visible_projects

    path = tmp_path / "cellhub.sqlite3"
    _old_folder_with_data(path)
    old = Database(path, migrate=False)
    migrate.upgrade(old, "0003")
    old.execute("INSERT INTO project_members(project_id, user_id, role, added_at) VALUES (2, 7, 'viewer', 'x')")
    old.dispose()
    db = Database(path)  # opening it runs 0004
    assert migrate.current_revision(db) == migrate.head_revision()
    assert [dict(r) for r in db.all("SELECT id, owner_id, public, import_warnings_json FROM projects ORDER BY id")] == [
        {"id": 1, "owner_id": 1, "public": 1, "import_warnings_json": "[]"},
        {"id": 2, "owner_id": 1, "public": 0, "import_warnings_json": "[]"}]
    assert [r["source_json"] for r in db.all("SELECT source_json FROM objects")] == [None] * 3
    project = load_project(db, 2, tmp_path)
    assert project.import_warnings == [] and [o.source for im in project.images for o in im.objects] == [None, None]
    assert [(p["id"], p["access"]) for p in visible_projects(db, 7)] == [(1, "public"), (2, "viewer")]
    migrate.downgrade(db, "0003")
    assert "import_warnings_json" not in {c["name"] for c in inspect(db.engine).get_columns("projects")}
    assert db.scalar("SELECT COUNT(*) FROM objects") == 3 and db.scalar("SELECT COUNT(*) FROM project_members") == 1
    assert db.scalar("SELECT COUNT(*) FROM jobs") == 1
