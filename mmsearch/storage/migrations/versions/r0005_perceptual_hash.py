"""A perceptual hash per image (mmsearch/perceptual_hash.py): duplicate groups confirm that two
images with near-identical embeddings are copies of one picture by it.

Existing rows keep NULL; the next index job of their folder hashes the images that did not
change (decoded again, not re-embedded).

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("media", sa.Column("phash", sa.String(length=16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("media") as batch:
        batch.drop_column("phash")
