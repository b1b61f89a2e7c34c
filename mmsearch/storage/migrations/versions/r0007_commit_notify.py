"""Commit notifications on PostgreSQL: a statement trigger on the tables searches follow
(media, segments, vectors, spaces) sends NOTIFY on channel mmsearch_commits, delivered when
the writing transaction commits (one per transaction: PostgreSQL folds repeats). A server
listening (storage/commit_watch.py) then reads a kind's vector counts only after a commit, as
SQLite's data_version lets it, instead of every second a search comes. Nothing changes on
SQLite.

Revision ID: 0007
Revises: 0006
"""

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

CHANNEL = "mmsearch_commits"  # commit_watch.py listens on it
TABLES = ("media", "segments", "vectors", "spaces")


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(
        "CREATE FUNCTION mmsearch_notify_commit() RETURNS trigger LANGUAGE plpgsql AS "
        f"$$ BEGIN PERFORM pg_notify('{CHANNEL}', ''); RETURN NULL; END $$"
    )
    for table in TABLES:
        op.execute(
            f"CREATE TRIGGER {table}_notify_commit AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION mmsearch_notify_commit()"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in TABLES:
        op.execute(f"DROP TRIGGER {table}_notify_commit ON {table}")
    op.execute("DROP FUNCTION mmsearch_notify_commit()")
