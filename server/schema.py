"""The database schema, one for SQLite and PostgreSQL (SQLAlchemy Core).

This is the schema the code reads and writes: the newest migration under
``server/migrations/versions`` makes exactly this (a test compares them), and a change here
needs a migration there. Types are chosen to mean the same in both dialects:

- row ids are ``BIGINT`` (64-bit, as the API's ids) and, in SQLite, ``INTEGER PRIMARY KEY``
  (a ``BIGINT`` primary key would not be SQLite's auto-numbered rowid);
- times are ISO-8601 UTC text with milliseconds (``utc_now_iso``) where the API shows them,
  seconds since the epoch (double) for sessions and tokens;
- flags are ``BOOLEAN`` (SQLite stores 0/1, as the tables made before SQLAlchemy did);
- JSON is text (``*_json`` columns), written and read by the code.

Visibility (R9): a project is seen by its owner (``projects.owner_id``), its members
(``project_members``, role ``viewer`` or ``editor``) and, when ``projects.public``, by every
signed-in user (read-only, as a viewer who cannot be removed).

Personal API tokens (``api_tokens``) are kept like sessions: only the SHA-256 of the secret,
times in seconds since the epoch; a revoked token keeps its row (``revoked_at``) so that a
script using it is told so. ``jobs.archive_sha256`` is the finished archive's SHA-256, the
download's ``ETag``.

The two partial unique indexes carry rules of the contract and exist in both dialects:
``one_active_export`` (R1: one queued/running export per user and project) and
``one_job_per_start_token`` (a repeated start request gets the job its first copy made).
"""
from __future__ import annotations

from sqlalchemy import (BigInteger, Boolean, CheckConstraint, Column, Float, ForeignKey, Index, Integer, MetaData, Table,
                        Text, false, text)

metadata = MetaData()

RowId = BigInteger().with_variant(Integer(), "sqlite")
"""A 64-bit row id; SQLite's ``INTEGER PRIMARY KEY`` (its auto-numbered rowid) there."""

ACTIVE_STATUSES = ("queued", "running")
_ACTIVE = text("status IN ('queued', 'running')")
_WITH_TOKEN = text("start_token IS NOT NULL")


def _partial(where):
    """The dialect keywords of a partial index with the WHERE clause ``where`` (both dialects)."""
    return {"sqlite_where": where, "postgresql_where": where}


users = Table(
    "users", metadata,
    Column("id", RowId, primary_key=True),
    Column("username", Text, nullable=False, unique=True),
    Column("password_hash", Text),
    Column("created_at", Text, nullable=False),
)

sessions = Table(
    "sessions", metadata,
    Column("token_hash", Text, primary_key=True),
    Column("user_id", RowId, ForeignKey("users.id"), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
)

login_tokens = Table(
    "login_tokens", metadata,
    Column("token_hash", Text, primary_key=True),
    Column("user_id", RowId, ForeignKey("users.id"), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("used", Boolean, nullable=False, server_default=false()),
    Column("boot_id", Text),
)

projects = Table(
    "projects", metadata,
    Column("id", RowId, primary_key=True),
    Column("name", Text, nullable=False),
    Column("description", Text, nullable=False, server_default=text("''")),
    Column("categories_json", Text, nullable=False),
    Column("pixel_size_um", Float),
    Column("synthetic", Boolean, nullable=False, server_default=false()),
    Column("created_at", Text, nullable=False),
    # Every project has an owner; the column admits NULL only because SQLite cannot add a
    # NOT NULL column to a table that has rows (revision 0002 fills it for old projects).
    Column("owner_id", RowId, ForeignKey("users.id", name="project_owner")),
    Column("public", Boolean, nullable=False, server_default=false()),
    Column("import_warnings_json", Text, nullable=False, server_default=text("'[]'")),
    Index("projects_by_owner", "owner_id"),
)

ROLES = ("viewer", "editor")
"""R9: ``viewer`` sees, exports and downloads its own exports; ``editor`` also renames,
shares and deletes."""

project_members = Table(
    "project_members", metadata,
    Column("project_id", RowId, ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True),
    Column("user_id", RowId, ForeignKey("users.id"), primary_key=True),
    Column("role", Text, nullable=False),
    Column("added_at", Text, nullable=False),
    CheckConstraint("role IN ('viewer', 'editor')", name="member_role"),
    Index("members_by_user", "user_id"),
)

images = Table(
    "images", metadata,
    Column("id", RowId, primary_key=True),
    Column("project_id", RowId, ForeignKey("projects.id", ondelete="CASCADE"), nullable=False),
    Column("position", Integer, nullable=False),
    Column("file_name", Text, nullable=False),
    Column("width", Integer, nullable=False),
    Column("height", Integer, nullable=False),
    Column("rel_path", Text, nullable=False),
    Index("images_by_project", "project_id", "position"),
)

objects = Table(
    "objects", metadata,
    Column("id", RowId, primary_key=True),
    Column("image_id", RowId, ForeignKey("images.id", ondelete="CASCADE"), nullable=False),
    Column("number", Integer, nullable=False),
    Column("category", Text, nullable=False),
    Column("polygons_json", Text, nullable=False),
    Column("source_json", Text),
    Index("objects_by_image", "image_id", "number"),
)

jobs = Table(
    "jobs", metadata,
    Column("id", Text, primary_key=True),
    Column("user_id", RowId, ForeignKey("users.id"), nullable=False),
    Column("project_id", RowId, ForeignKey("projects.id"), nullable=False),
    Column("status", Text, nullable=False),
    Column("progress", Float, nullable=False, server_default=text("0")),
    Column("stage", Text, nullable=False, server_default=text("''")),
    Column("message", Text, nullable=False, server_default=text("''")),
    Column("seq", Integer, nullable=False, server_default=text("0")),
    Column("created_at", Text, nullable=False),
    Column("finished_at", Text),
    Column("delivered", Boolean, nullable=False, server_default=false()),
    Column("size_bytes", BigInteger),
    Column("warnings_json", Text, nullable=False, server_default=text("'[]'")),
    Column("options_json", Text, nullable=False),
    Column("archive_name", Text),
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column("start_token", Text),
    # The cluster (issue 20; SQLite leaves them empty but for streaming_until):
    Column("queue_job_id", BigInteger),  # the queue entry (ticket) made when it was queued
    Column("run_ticket", BigInteger),  # the ticket whose worker runs it (while running)
    Column("recoveries", Integer, nullable=False, server_default=text("0")),  # R7: times put back
    Column("claimed_at", Float),  # when a worker last took it (seconds): round-robin over users
    Column("streaming_until", Float),  # R5: no expiry before this (a download is streaming)
    Column("archive_sha256", Text),
    Index("one_active_export", "user_id", "project_id", unique=True, **_partial(_ACTIVE)),
    Index("jobs_by_user_claims", "user_id", "claimed_at"),
    Index("jobs_by_owner", "user_id", "project_id", "created_at"),
    Index("one_job_per_start_token", "user_id", "start_token", unique=True, **_partial(_WITH_TOKEN)),
)

api_tokens = Table(
    "api_tokens", metadata,
    Column("id", RowId, primary_key=True),
    Column("user_id", RowId, ForeignKey("users.id"), nullable=False),
    Column("name", Text, nullable=False),
    Column("token_hash", Text, nullable=False, unique=True),
    Column("prefix", Text, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float),
    Column("last_used_at", Float),
    Column("revoked_at", Float),
    Index("api_tokens_by_user", "user_id"),
)
