"""One-time sign-in links work only on the server start that printed them (issue 16):
``login_tokens.boot_id``, the issuing start's boot id (``Services.boot_id``).

Tokens issued before this revision have none, so no start accepts them: a link printed
before the upgrade is dead after it, as after any restart. Each start checks links against
its own boot id instead of spending every unused link at start, which would kill the links
of other replicas sharing the database.

Revision ID: 0003
Revises: 0002
"""
from alembic import op
import sqlalchemy as sa

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("login_tokens", sa.Column("boot_id", sa.Text))


def downgrade() -> None:
    with op.batch_alter_table("login_tokens") as batch:
        batch.drop_column("boot_id")
