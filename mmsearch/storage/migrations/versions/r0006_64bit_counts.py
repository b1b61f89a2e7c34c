"""64-bit file sizes and job counters on PostgreSQL: its INTEGER is 32-bit, so a file of 2 GiB
or more (a normal video) could not be recorded. SQLite's INTEGER holds 64 bits already, so
nothing changes there (tables.py maps these columns as BIGINT with an INTEGER variant for
SQLite).

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

COLUMNS = {
    "media": ("size",),
    "jobs": ("total", "done", "new", "changed", "deleted", "unchanged", "errors"),
}


def _retype(to: sa.types.TypeEngine, was: sa.types.TypeEngine) -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table, columns in COLUMNS.items():
        for column in columns:
            op.alter_column(table, column, type_=to, existing_type=was)


def upgrade() -> None:
    _retype(sa.BigInteger(), sa.Integer())


def downgrade() -> None:
    _retype(sa.Integer(), sa.BigInteger())
