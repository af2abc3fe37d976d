"""Baseline: users, sessions, login tokens, projects, images, objects, jobs.

Also upgrades, in place, the data folders made before migrations existed (their tables were
made by ``CREATE TABLE IF NOT EXISTS`` at start-up): a table or index that is already there
is kept with its rows, and the ``jobs.start_token`` column is added where it is missing (data
folders from before start tokens). The tables are spelled out here as they were at this
revision, not imported from ``server.schema``, which moves on with later revisions.

Revision ID: 0001
Revises:
"""
from alembic import context, op
import sqlalchemy as sa

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

RowId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
ACTIVE = sa.text("status IN ('queued', 'running')")
WITH_TOKEN = sa.text("start_token IS NOT NULL")


def _tables() -> list[tuple[str, list]]:
    return [
        ("users", [
            sa.Column("id", RowId, primary_key=True),
            sa.Column("username", sa.Text, nullable=False, unique=True),
            sa.Column("password_hash", sa.Text),
            sa.Column("created_at", sa.Text, nullable=False),
        ]),
        ("sessions", [
            sa.Column("token_hash", sa.Text, primary_key=True),
            sa.Column("user_id", RowId, sa.ForeignKey("users.id"), nullable=False),
            sa.Column("created_at", sa.Float, nullable=False),
            sa.Column("expires_at", sa.Float, nullable=False),
        ]),
        ("login_tokens", [
            sa.Column("token_hash", sa.Text, primary_key=True),
            sa.Column("user_id", RowId, sa.ForeignKey("users.id"), nullable=False),
            sa.Column("created_at", sa.Float, nullable=False),
            sa.Column("used", sa.Boolean, nullable=False, server_default=sa.false()),
        ]),
        ("projects", [
            sa.Column("id", RowId, primary_key=True),
            sa.Column("name", sa.Text, nullable=False),
            sa.Column("description", sa.Text, nullable=False, server_default=sa.text("''")),
            sa.Column("categories_json", sa.Text, nullable=False),
            sa.Column("pixel_size_um", sa.Float),
            sa.Column("synthetic", sa.Boolean, nullable=False, server_default=sa.false()),
            sa.Column("created_at", sa.Text, nullable=False),
        ]),
        ("images", [
            sa.Column("id", RowId, primary_key=True),
            sa.Column("project_id", RowId, sa.ForeignKey("projects.id", ondelete="CASCADE"), nullable=False),
            sa.Column("position", sa.Integer, nullable=False),
            sa.Column("file_name", sa.Text, nullable=False),
            sa.Column("width", sa.Integer, nullable=False),
            sa.Column("height", sa.Integer, nullable=False),
            sa.Column("rel_path", sa.Text, nullable=False),
        ]),
        ("objects", [
            sa.Column("id", RowId, primary_key=True),
            sa.Column("image_id", RowId, sa.ForeignKey("images.id", ondelete="CASCADE"), nullable=False),
            sa.Column("number", sa.Integer, nullable=False),
            sa.Column("category", sa.Text, nullable=False),
            sa.Column("polygons_json", sa.Text, nullable=False),
        ]),
        ("jobs", [
            sa.Column("id", sa.Text, primary_key=True),
            sa.Column("user_id", RowId, sa.ForeignKey("users.id"), nullable=False),
            sa.Column("project_id", RowId, sa.ForeignKey("projects.id"), nullable=False),
            sa.Column("status", sa.Text, nullable=False),
            sa.Column("progress", sa.Float, nullable=False, server_default=sa.text("0")),
            sa.Column("stage", sa.Text, nullable=False, server_default=sa.text("''")),
            sa.Column("message", sa.Text, nullable=False, server_default=sa.text("''")),
            sa.Column("seq", sa.Integer, nullable=False, server_default=sa.text("0")),
            sa.Column("created_at", sa.Text, nullable=False),
            sa.Column("finished_at", sa.Text),
            sa.Column("delivered", sa.Boolean, nullable=False, server_default=sa.false()),
            sa.Column("size_bytes", sa.BigInteger),
            sa.Column("warnings_json", sa.Text, nullable=False, server_default=sa.text("'[]'")),
            sa.Column("options_json", sa.Text, nullable=False),
            sa.Column("archive_name", sa.Text),
            sa.Column("attempts", sa.Integer, nullable=False, server_default=sa.text("0")),
            sa.Column("start_token", sa.Text),
        ]),
    ]


INDEXES = [
    ("images_by_project", "images", ["project_id", "position"], {}),
    ("objects_by_image", "objects", ["image_id", "number"], {}),
    ("one_active_export", "jobs", ["user_id", "project_id"],
     {"unique": True, "sqlite_where": ACTIVE, "postgresql_where": ACTIVE}),
    ("jobs_by_owner", "jobs", ["user_id", "project_id", "created_at"], {}),
    ("one_job_per_start_token", "jobs", ["user_id", "start_token"],
     {"unique": True, "sqlite_where": WITH_TOKEN, "postgresql_where": WITH_TOKEN}),
]


def upgrade() -> None:
    inspector = None if context.is_offline_mode() else sa.inspect(op.get_bind())
    existing = set(inspector.get_table_names()) if inspector is not None else set()
    for name, columns in _tables():
        if name not in existing:
            op.create_table(name, *columns)
    if "jobs" in existing and "start_token" not in {c["name"] for c in inspector.get_columns("jobs")}:
        op.add_column("jobs", sa.Column("start_token", sa.Text))
    for name, table, columns, options in INDEXES:
        op.create_index(name, table, columns, if_not_exists=True, **options)


def downgrade() -> None:
    for name, _ in reversed(_tables()):
        op.drop_table(name)
