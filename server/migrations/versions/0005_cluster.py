"""The cluster (issue 20): the job columns of the cluster's rules and, in PostgreSQL, the job
queue's own tables.

- ``jobs.queue_job_id``: the queue entry (a procrastinate job, a "ticket") made when the job
  was queued; ``jobs.run_ticket``: the ticket whose worker runs it (while it runs);
- ``jobs.recoveries``: how often the reconciler put the job back after its worker stopped
  heart-beating (R7: once, then failed);
- ``jobs.claimed_at``: when a worker last took it (round-robin over users across workers);
- ``jobs.streaming_until``: a download is streaming the archive until then (R5: no expiry).

PostgreSQL only: the schema of procrastinate (the queue: its tables, types, functions and
triggers), as the installed version ships it (``procrastinate.schema.SchemaManager``). The
version is pinned in requirements.lock; a newer one needs a revision that runs its migration
files, and ``tests/cluster/test_cluster_store.py`` fails until the pin and this revision
agree.

Revision ID: 0005
Revises: 0004
"""
from alembic import context, op
import sqlalchemy as sa

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

QUEUE_VERSION = "3.10.0"
"""The procrastinate whose schema this revision installs."""

_DROP_QUEUE = r"""
DO $$
DECLARE r record;
BEGIN
  FOR r IN SELECT tablename FROM pg_tables
           WHERE schemaname = current_schema() AND tablename LIKE 'procrastinate\_%' LOOP
    EXECUTE 'DROP TABLE IF EXISTS ' || quote_ident(r.tablename) || ' CASCADE';
  END LOOP;
  FOR r IN SELECT p.oid::regprocedure AS signature FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
           WHERE n.nspname = current_schema() AND p.proname LIKE 'procrastinate\_%' LOOP
    EXECUTE 'DROP FUNCTION IF EXISTS ' || r.signature || ' CASCADE';
  END LOOP;
  FOR r IN SELECT t.typname FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
           WHERE n.nspname = current_schema() AND t.typname LIKE 'procrastinate\_%' AND t.typtype IN ('e', 'c') LOOP
    EXECUTE 'DROP TYPE IF EXISTS ' || quote_ident(r.typname) || ' CASCADE';
  END LOOP;
END;
$$;
"""


def _is_postgresql() -> bool:
    return context.get_context().dialect.name == "postgresql"


def _run_sql(sql: str) -> None:
    """Run a script of several statements as it is (no bind parameters in it)."""
    if context.is_offline_mode():
        op.execute(sa.text(sql.replace(":", r"\:")))
    else:
        op.get_bind().connection.driver_connection.execute(sql)


def upgrade() -> None:
    op.add_column("jobs", sa.Column("queue_job_id", sa.BigInteger))
    op.add_column("jobs", sa.Column("run_ticket", sa.BigInteger))
    op.add_column("jobs", sa.Column("recoveries", sa.Integer, nullable=False, server_default=sa.text("0")))
    op.add_column("jobs", sa.Column("claimed_at", sa.Float))
    op.add_column("jobs", sa.Column("streaming_until", sa.Float))
    op.create_index("jobs_by_user_claims", "jobs", ["user_id", "claimed_at"])
    if _is_postgresql():
        from procrastinate.schema import SchemaManager

        _run_sql(SchemaManager.get_schema())


def downgrade() -> None:
    if _is_postgresql():
        _run_sql(_DROP_QUEUE)
    op.drop_index("jobs_by_user_claims", table_name="jobs")
    with op.batch_alter_table("jobs") as batch:
        for name in ("streaming_until", "claimed_at", "recoveries", "run_ticket", "queue_job_id"):
            batch.drop_column(name)
