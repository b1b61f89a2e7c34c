"""A perceptual hash per image (mmsearch/perceptual_hash.py): duplicate groups confirm that two
images with near-identical embeddings are copies of one picture by it. Existing rows keep
NULL; the next index job of their folder hashes the images that did not change (decoded
again, not re-embedded).

And the keyword index on PostgreSQL (SQLite's is revision 0004's FTS5 table): a tsvector of
a media row's words (path, caption, camera make, model and lens, description, place,
generation prompt), a column PostgreSQL computes as the row changes, with a GIN index.
Anything but letters and digits separates words ("IMG_2041.jpg": img, 2041, jpg), as
SQLite's unicode61 tokenizer does; the 'simple' configuration folds case and stems nothing.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


_PG_WORDS = (
    "regexp_replace("
    "coalesce(path, '') || ' ' || coalesce(caption, '') || ' ' || coalesce(camera_make, '') || ' ' || "
    "coalesce(camera_model, '') || ' ' || coalesce(lens, '') || ' ' || coalesce(description, '') || ' ' || "
    "coalesce(place, '') || ' ' || coalesce(generation ->> 'prompt', ''), '[^[:alnum:]]+', ' ', 'g')"
)
PG_KEYWORD_INDEX = (
    f"ALTER TABLE media ADD COLUMN words tsvector GENERATED ALWAYS AS (to_tsvector('simple', {_PG_WORDS})) STORED",
    "CREATE INDEX ix_media_words ON media USING gin (words)",
)


def upgrade() -> None:
    op.add_column("media", sa.Column("phash", sa.String(length=16), nullable=True))
    if op.get_bind().dialect.name == "postgresql":
        for statement in PG_KEYWORD_INDEX:
            op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP INDEX IF EXISTS ix_media_words")
        op.execute("ALTER TABLE media DROP COLUMN IF EXISTS words")
    with op.batch_alter_table("media") as batch:
        batch.drop_column("phash")
