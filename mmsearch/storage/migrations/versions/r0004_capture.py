"""Photo metadata on media rows: when it was taken (wall-clock time, its UTC offset, and
where the time came from: exif | video | mtime), camera make and model, lens, the EXIF
description, GPS position and the place name found for it.

Existing rows keep NULLs here; the next index job of their folder reads the metadata of the
files that did not change (no re-embedding).

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

COLUMNS = (
    ("taken_at", sa.Float()),
    ("taken_offset", sa.Integer()),
    ("taken_source", sa.String(length=8)),
    ("camera_make", sa.String(length=256)),
    ("camera_model", sa.String(length=256)),
    ("lens", sa.String(length=256)),
    ("description", sa.Text()),
    ("gps_lat", sa.Float()),
    ("gps_lon", sa.Float()),
    ("place", sa.String(length=512)),
)


def upgrade() -> None:
    for name, type_ in COLUMNS:
        op.add_column("media", sa.Column(name, type_, nullable=True))
    op.create_index("ix_media_taken_at", "media", ["taken_at"])


def downgrade() -> None:
    op.drop_index("ix_media_taken_at", table_name="media")
    with op.batch_alter_table("media") as batch:
        for name, _ in reversed(COLUMNS):
            batch.drop_column(name)
