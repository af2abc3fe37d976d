"""Personal API tokens (issue 21) and the archive's SHA-256 on its job (the download's ETag).

Revision ID: 0006
Revises: 0005
"""
from alembic import op
import sqlalchemy as sa

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

RowId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "api_tokens",
        sa.Column("id", RowId, primary_key=True),
        sa.Column("user_id", RowId, sa.ForeignKey("users.id"), nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("token_hash", sa.Text, nullable=False, unique=True),
        sa.Column("prefix", sa.Text, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("expires_at", sa.Float),
        sa.Column("last_used_at", sa.Float),
        sa.Column("revoked_at", sa.Float),
    )
    op.create_index("api_tokens_by_user", "api_tokens", ["user_id"])
    # Archives finished before this revision get their digest on their first download.
    op.add_column("jobs", sa.Column("archive_sha256", sa.Text))


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("archive_sha256")
    op.drop_index("api_tokens_by_user", table_name="api_tokens")
    op.drop_table("api_tokens")
