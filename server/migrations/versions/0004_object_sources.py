"""Source identity and import warnings (issue 19): ``objects.source_json`` (the object's
identity in the data it was imported from, JSON; NULL when unknown) and
``projects.import_warnings_json`` (what the project's import warned about, a JSON list;
``'[]'`` for the projects that were there before).

Revision ID: 0004
Revises: 0003
"""
from alembic import op
import sqlalchemy as sa

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("objects", sa.Column("source_json", sa.Text))
    op.add_column("projects", sa.Column("import_warnings_json", sa.Text, nullable=False,
                                        server_default=sa.text("'[]'")))


def downgrade() -> None:
    op.drop_column("projects", "import_warnings_json")
    op.drop_column("objects", "source_json")
