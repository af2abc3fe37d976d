"""SQLite storage of users, sessions, projects, images, objects and export jobs.

One database file per data directory (``<data-dir>/cellhub.sqlite3``), WAL mode, one
connection per thread. Every state change of a job is a single ``UPDATE ... WHERE status ...``
statement, so the compare-and-set rules of R1-R3 hold under real concurrency: SQLite
serialises writers, and whichever statement runs first wins.
"""
from __future__ import annotations

import json
import sqlite3
import threading
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator, Optional

from server.domain import ImageRecord, ProjectRecord, SegObject

SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    id INTEGER PRIMARY KEY,
    username TEXT NOT NULL UNIQUE,
    password_hash TEXT,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS sessions (
    token_hash TEXT PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users(id),
    created_at REAL NOT NULL,
    expires_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS login_tokens (
    token_hash TEXT PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users(id),
    created_at REAL NOT NULL,
    used INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS projects (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    categories_json TEXT NOT NULL,
    pixel_size_um REAL,
    synthetic INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS images (
    id INTEGER PRIMARY KEY,
    project_id INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    file_name TEXT NOT NULL,
    width INTEGER NOT NULL,
    height INTEGER NOT NULL,
    rel_path TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS images_by_project ON images(project_id, position);
CREATE TABLE IF NOT EXISTS objects (
    id INTEGER PRIMARY KEY,
    image_id INTEGER NOT NULL REFERENCES images(id) ON DELETE CASCADE,
    number INTEGER NOT NULL,
    category TEXT NOT NULL,
    polygons_json TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS objects_by_image ON objects(image_id, number);
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users(id),
    project_id INTEGER NOT NULL REFERENCES projects(id),
    status TEXT NOT NULL,
    progress REAL NOT NULL DEFAULT 0,
    stage TEXT NOT NULL DEFAULT '',
    message TEXT NOT NULL DEFAULT '',
    seq INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL,
    finished_at TEXT,
    delivered INTEGER NOT NULL DEFAULT 0,
    size_bytes INTEGER,
    warnings_json TEXT NOT NULL DEFAULT '[]',
    options_json TEXT NOT NULL,
    archive_name TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    start_token TEXT
);
-- R1: at most one active export per user and project, enforced by the database itself.
CREATE UNIQUE INDEX IF NOT EXISTS one_active_export
    ON jobs(user_id, project_id) WHERE status IN ('queued', 'running');
CREATE INDEX IF NOT EXISTS jobs_by_owner ON jobs(user_id, project_id, created_at);
"""


def utc_now_iso() -> str:
    """The current time as an ISO-8601 UTC string with milliseconds."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


class Database:
    """Thread-safe access to the SQLite file ``path`` (one connection per thread)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._local = threading.local()
        with self.connect() as conn:
            conn.executescript(SCHEMA)
            columns = {row[1] for row in conn.execute("PRAGMA table_info(jobs)")}
            if "start_token" not in columns:  # a data folder made before start tokens existed
                conn.execute("ALTER TABLE jobs ADD COLUMN start_token TEXT")
            _add_missing_columns(conn)
            # R1: a start request repeated with its token gets the job it made, never a new one.
            conn.execute("CREATE UNIQUE INDEX IF NOT EXISTS one_job_per_start_token"
                         " ON jobs(user_id, start_token) WHERE start_token IS NOT NULL")

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute("PRAGMA synchronous=NORMAL")
            self._local.conn = conn
        return conn

    @contextmanager
    def connect(self) -> Iterator[sqlite3.Connection]:
        """The calling thread's connection (autocommit; use ``transaction`` to group)."""
        yield self._conn()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE`` ... ``COMMIT``; rolls back if the block raises."""
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        else:
            conn.execute("COMMIT")

    def execute(self, sql: str, params: tuple | dict = ()) -> sqlite3.Cursor:
        return self._conn().execute(sql, params)

    def one(self, sql: str, params: tuple | dict = ()) -> Optional[sqlite3.Row]:
        return self._conn().execute(sql, params).fetchone()

    def all(self, sql: str, params: tuple | dict = ()) -> list[sqlite3.Row]:
        return self._conn().execute(sql, params).fetchall()

    # --- users -----------------------------------------------------------------
    def ensure_user(self, username: str, password_hash: Optional[str] = None) -> int:
        """Id of user ``username``, created (without password unless given) if missing."""
        row = self.one("SELECT id FROM users WHERE username = ?", (username,))
        if row:
            return int(row["id"])
        cur = self.execute(
            "INSERT INTO users(username, password_hash, created_at) VALUES (?, ?, ?)",
            (username, password_hash, utc_now_iso()),
        )
        return int(cur.lastrowid)

    # --- projects --------------------------------------------------------------
    def insert_project(self, conn: sqlite3.Connection, project: ProjectRecord) -> int:
        """Insert the project row (inside the caller's transaction); returns its id."""
        cur = conn.execute(
            "INSERT INTO projects(name, description, categories_json, pixel_size_um, synthetic, created_at,"
            " import_warnings_json) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                project.name,
                project.description,
                json.dumps(project.categories),
                project.pixel_size_um,
                int(project.synthetic),
                utc_now_iso(),
                json.dumps(project.import_warnings),
            ),
        )
        return int(cur.lastrowid)

    def insert_image(
        self, conn: sqlite3.Connection, project_id: int, position: int, image: ImageRecord, rel_path: str
    ) -> int:
        """Insert one image and its objects (inside the caller's transaction); returns its id."""
        cur = conn.execute(
            "INSERT INTO images(project_id, position, file_name, width, height, rel_path) VALUES (?, ?, ?, ?, ?, ?)",
            (project_id, position, image.file_name, image.width, image.height, rel_path),
        )
        image_id = int(cur.lastrowid)
        conn.executemany(
            "INSERT INTO objects(image_id, number, category, polygons_json, source_json) VALUES (?, ?, ?, ?, ?)",
            [
                (image_id, number, obj.category, json.dumps(obj.polygons, separators=(",", ":")),
                 None if obj.source is None else json.dumps(obj.source))
                for number, obj in enumerate(image.objects, start=1)
            ],
        )
        return image_id

    def list_projects(self) -> list[dict[str, Any]]:
        rows = self.all(
            "SELECT p.id, p.name, p.description, p.synthetic, p.pixel_size_um,"
            " (SELECT COUNT(*) FROM images i WHERE i.project_id = p.id) AS image_count"
            " FROM projects p ORDER BY p.id"
        )
        return [
            {
                "id": r["id"],
                "name": r["name"],
                "description": r["description"],
                "synthetic": bool(r["synthetic"]),
                "pixel_size_um": r["pixel_size_um"],
                "image_count": r["image_count"],
            }
            for r in rows
        ]

    def project_row(self, project_id: int) -> Optional[sqlite3.Row]:
        return self.one("SELECT * FROM projects WHERE id = ?", (project_id,))

    def image_rows(self, project_id: int) -> list[sqlite3.Row]:
        return self.all(
            "SELECT i.*, (SELECT COUNT(*) FROM objects o WHERE o.image_id = i.id) AS object_count"
            " FROM images i WHERE i.project_id = ? ORDER BY i.position",
            (project_id,),
        )

    def load_project(self, project_id: int, files_root: Path, image_ids: Optional[list[int]] = None) -> ProjectRecord:
        """The project with the selected images (all if ``image_ids`` is None) and their objects.

        Raises ``KeyError`` if the project does not exist."""
        row = self.project_row(project_id)
        if row is None:
            raise KeyError(project_id)
        project = ProjectRecord(
            id=row["id"],
            name=row["name"],
            categories=json.loads(row["categories_json"]),
            pixel_size_um=row["pixel_size_um"],
            synthetic=bool(row["synthetic"]),
            description=row["description"],
            import_warnings=json.loads(row["import_warnings_json"]),
        )
        wanted = set(image_ids) if image_ids is not None else None
        for img in self.image_rows(project_id):
            if wanted is not None and img["id"] not in wanted:
                continue
            project.images.append(self.load_image(img, files_root))
        return project

    def load_image(self, img: sqlite3.Row, files_root: Path) -> ImageRecord:
        objects = [
            SegObject(
                id=o["number"],
                category=o["category"],
                polygons=[[[tuple(p) for p in ring] for ring in poly] for poly in json.loads(o["polygons_json"])],
                source=None if o["source_json"] is None else json.loads(o["source_json"]),
            )
            for o in self.all("SELECT * FROM objects WHERE image_id = ? ORDER BY number", (img["id"],))
        ]
        return ImageRecord(
            id=img["id"],
            file_name=img["file_name"],
            width=img["width"],
            height=img["height"],
            path=str(files_root / img["rel_path"]),
            objects=objects,
        )


# Columns added after the first data folders were made: (table, column, SQL type). Issue 19:
# the object's identity in its import, and what the project's import warned about.
_ADDED_COLUMNS = (
    ("objects", "source_json", "TEXT"),
    ("projects", "import_warnings_json", "TEXT NOT NULL DEFAULT '[]'"),
)


def _add_missing_columns(conn: sqlite3.Connection) -> None:
    """Add each of ``_ADDED_COLUMNS`` a data folder does not have yet (in place, idempotent)."""
    for table, column, sql_type in _ADDED_COLUMNS:
        if column not in {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}:
            conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {sql_type}")


def now_ts() -> float:
    """Seconds since the Unix epoch."""
    return time.time()
