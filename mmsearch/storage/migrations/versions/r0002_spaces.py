"""A library owns its model: the `spaces` table (one row per embedding space the library
holds vectors in, the active one marked; a space's pooled video vectors are in spaces named
after it, "<space>|pool=...") and the task of a job (index, or add-model).

Existing vectors become spaces: the space of the latest job (else the one with the most
vectors) is active. Their model specs were never recorded: they stay NULL until a process
opens the library with the model of that space (Library checks the space matches, then
records the spec). schema_info's version becomes 2, so the releases before migrations
refuse this database instead of misreading it.

Revision ID: 0002
Revises: 0001
"""

import time

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    spaces = op.create_table(
        "spaces",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("spec", sa.String(length=1024), nullable=True),
        sa.Column("space", sa.String(length=256), nullable=False),
        sa.Column("dim", sa.Integer(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("space"),
    )
    # A plain ADD COLUMN: SQLite's table rebuild (batch mode) would drop `jobs`, and with
    # foreign keys on, that deletes every job's error rows.
    op.add_column("jobs", sa.Column("task", sa.String(length=16), nullable=False, server_default="index"))

    bind = op.get_bind()
    counts = bind.execute(
        sa.text(
            "SELECT space, MAX(dim), COUNT(*) FROM vectors WHERE kind IN ('image', 'frame', 'segment') "
            "GROUP BY space ORDER BY COUNT(*) DESC, space"
        )
    ).all()
    latest_job = bind.execute(sa.text("SELECT space FROM jobs ORDER BY id DESC LIMIT 1")).scalar()
    known = [space for space, _, _ in counts]
    active = latest_job if latest_job in known else (known[0] if known else None)
    rows = []
    for space, dim, _ in counts:
        rows.append(
            {
                "spec": None,
                "space": space,
                "dim": int(dim),
                "active": space == active,
                "created_at": time.time(),
            }
        )
    if rows:
        op.bulk_insert(spaces, rows)
    bind.execute(sa.text("UPDATE schema_info SET value = '2' WHERE key = 'schema_version'"))


def downgrade() -> None:
    op.drop_column("jobs", "task")
    op.drop_table("spaces")
    op.get_bind().execute(sa.text("UPDATE schema_info SET value = '1' WHERE key = 'schema_version'"))
