"""Frames by segment: an index on vectors.segment_id, so the miss rule can read the frames
of the segments nearest a query without scanning every vector.

Revision ID: 0003
Revises: 0002
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_vectors_segment_id", "vectors", ["segment_id"])


def downgrade() -> None:
    op.drop_index("ix_vectors_segment_id", table_name="vectors")
