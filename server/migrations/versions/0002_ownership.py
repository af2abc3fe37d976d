"""Ownership and sharing (issue 15): ``projects.owner_id``, ``projects.public``,
``project_members``.

Existing projects go to the first user (the lowest id); a data folder with projects but no
user yet gets the default user ``local`` (the one the run command's sign-in link signs in),
which then owns them. Synthetic projects (the seeded demo) become public, as a new demo is;
imported projects stay private.

Revision ID: 0002
Revises: 0001
"""
from alembic import context, op
import sqlalchemy as sa

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

RowId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
DEFAULT_USER = "local"


def upgrade() -> None:
    # SQLite cannot add a foreign key to a table in place: batch mode rebuilds it there
    # (``migrate`` runs this with foreign keys off, so the rebuild cascades nothing).
    with op.batch_alter_table("projects") as batch:
        batch.add_column(sa.Column("owner_id", RowId))
        batch.add_column(sa.Column("public", sa.Boolean, nullable=False, server_default=sa.false()))
        batch.create_foreign_key("project_owner", "users", ["owner_id"], ["id"])
        batch.create_index("projects_by_owner", ["owner_id"])
    op.create_table(
        "project_members",
        sa.Column("project_id", RowId, sa.ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("user_id", RowId, sa.ForeignKey("users.id"), primary_key=True),
        sa.Column("role", sa.Text, nullable=False),
        sa.Column("added_at", sa.Text, nullable=False),
        sa.CheckConstraint("role IN ('viewer', 'editor')", name="member_role"),
    )
    op.create_index("members_by_user", "project_members", ["user_id"])
    if not context.is_offline_mode():
        _adopt_existing_projects(op.get_bind())


def _adopt_existing_projects(conn) -> None:
    projects = sa.table("projects", sa.column("owner_id"), sa.column("public"), sa.column("synthetic"))
    users = sa.table("users", sa.column("id"), sa.column("username"), sa.column("created_at"))
    if conn.execute(sa.select(sa.func.count()).select_from(projects)).scalar() == 0:
        return
    first = conn.execute(sa.select(sa.func.min(users.c.id))).scalar()
    if first is None:
        from datetime import datetime, timezone

        created = datetime.now(timezone.utc).isoformat(timespec="milliseconds")
        first = conn.execute(sa.insert(users).values(username=DEFAULT_USER, created_at=created)
                             .returning(users.c.id)).scalar()
    conn.execute(sa.update(projects).where(projects.c.owner_id.is_(None)).values(owner_id=first))
    conn.execute(sa.update(projects).where(projects.c.synthetic.is_(True)).values(public=True))


def downgrade() -> None:
    op.drop_index("members_by_user", table_name="project_members")
    op.drop_table("project_members")
    with op.batch_alter_table("projects") as batch:
        batch.drop_index("projects_by_owner")
        batch.drop_constraint("project_owner", type_="foreignkey")
        batch.drop_column("public")
        batch.drop_column("owner_id")
