"""Photo metadata on media rows: when it was taken (wall-clock time, its UTC offset, and
where the time came from: exif | video | mtime), camera make and model, lens, the EXIF
description, GPS position and the place name found for it. And the keyword index over a
media row's words (search/keywords.py reads it): on SQLite an FTS5 table kept by triggers,
so it changes in the transaction that changes the row. Its columns: the path (file and
folder names), caption, camera (make, model, lens), description, place, generation prompt.

Existing rows keep NULLs here; the next index job of their folder reads the metadata of the
files that did not change (no re-embedding). Their words are indexed now.

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

# A media row's words, as the keyword index holds them.
_WORDS = (
    "{row}.path, {row}.caption, "
    "trim(coalesce({row}.camera_make, '') || ' ' || coalesce({row}.camera_model, '') || ' ' || "
    "coalesce({row}.lens, '')), {row}.description, {row}.place, json_extract({row}.generation, '$.prompt')"
)
_INSERT = (
    "INSERT INTO media_words (rowid, path, caption, camera, description, place, prompt) SELECT {row}.id, " + _WORDS
)
KEYWORD_INDEX = (
    # unicode61 splits at anything but letters and digits ("IMG_2041.jpg": img, 2041, jpg) and
    # folds case and diacritics ("Lisboa" matches "lisboa", "Łódź" matches "lodz").
    "CREATE VIRTUAL TABLE media_words USING fts5("
    "path, caption, camera, description, place, prompt, tokenize = 'unicode61 remove_diacritics 2')",
    _INSERT.format(row="media") + " FROM media WHERE media.error IS NULL",
    "CREATE TRIGGER media_words_insert AFTER INSERT ON media WHEN new.error IS NULL BEGIN "
    + _INSERT.format(row="new").replace(" SELECT ", " VALUES (")
    + "); END",
    "CREATE TRIGGER media_words_delete AFTER DELETE ON media BEGIN DELETE FROM media_words WHERE rowid = old.id; END",
    "CREATE TRIGGER media_words_update AFTER UPDATE ON media BEGIN "
    "DELETE FROM media_words WHERE rowid = old.id; " + _INSERT.format(row="new") + " WHERE new.error IS NULL; END",
)


def upgrade() -> None:
    for name, type_ in COLUMNS:
        op.add_column("media", sa.Column(name, type_, nullable=True))
    op.create_index("ix_media_taken_at", "media", ["taken_at"])
    if op.get_bind().dialect.name == "sqlite":
        for statement in KEYWORD_INDEX:
            op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for name in ("media_words_insert", "media_words_update", "media_words_delete"):
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
        op.execute("DROP TABLE IF EXISTS media_words")
    op.drop_index("ix_media_taken_at", table_name="media")
    with op.batch_alter_table("media") as batch:
        for name, _ in reversed(COLUMNS):
            batch.drop_column(name)
