"""A library written by the mmsearch before 64-bit sizes and commit notifications (revision
0005, the committed r0005 fixture: images, a video, a generated image) opens with this one, in
SQLite and in PostgreSQL: upgraded on open, every row kept, the same answers."""

import json
import shutil
import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, select, text, update

from mmsearch.storage import schema
from mmsearch.storage.store import Job, Media, Segment, Vector

from .helpers import POSTGRES_URL, new_postgres_database, open_library

R0005 = Path(__file__).parent / "fixtures" / "libraries" / "r0005"
EXPECTED = json.loads((R0005 / "expected.json").read_text())
MEDIA_ROOT = EXPECTED["root"]  # where the fixture was built: its rows' paths start so


def _moved(connection, to: Path) -> None:
    """The rows' paths rewritten for the copy in `to` (the media and library moved with it)."""
    connection.execute(
        update(Media).values(
            path=func.replace(Media.path, MEDIA_ROOT, str(to)), root=func.replace(Media.root, MEDIA_ROOT, str(to))
        )
    )
    connection.execute(update(Segment).values(keyframe=func.replace(Segment.keyframe, MEDIA_ROOT, str(to))))


def _counts(lib) -> dict[str, int]:
    with lib.store.session() as s:
        return {t.__tablename__: s.scalar(select(func.count()).select_from(t)) for t in (Media, Segment, Vector, Job)}


def _searches(lib) -> dict[str, list]:
    from mmsearch.search.query import SearchRequest, parse_text

    return {
        q: [[h.id, round(float(h.score), 4), h.kind] for h in lib.search(SearchRequest(terms=parse_text(q), k=5))]
        for q in EXPECTED["sqlite"]["searches"]
    }


def test_an_r0005_sqlite_library_upgrades_on_open_and_answers_as_before(tmp_path, mini_encoder):
    shutil.copytree(R0005, tmp_path / "r0005", ignore=shutil.ignore_patterns("postgres.sql"))
    db = tmp_path / "r0005" / "lib" / "mmsearch.db"
    with sqlite3.connect(db) as c:
        assert c.execute("SELECT version_num FROM alembic_version").fetchall() == [("0005",)]
        before = {t: c.execute(f"SELECT * FROM {t} ORDER BY id").fetchall() for t in ("vectors", "jobs")}
    engine = create_engine(f"sqlite:///{db}")
    with engine.begin() as connection:
        _moved(connection, tmp_path / "r0005")
    engine.dispose()
    with open_library(tmp_path / "r0005" / "lib", encoder=mini_encoder, database_url=f"sqlite:///{db}") as lib:
        assert _counts(lib) == EXPECTED["sqlite"]["counts"]
        assert _searches(lib) == EXPECTED["sqlite"]["searches"]
        with lib.store.session() as s:
            generated = s.scalars(select(Media.path).where(Media.generated.is_(True))).one()
        assert Path(generated).is_file()  # the generated image's file moved with the library
    with sqlite3.connect(db) as c:
        assert c.execute("SELECT version_num FROM alembic_version").fetchall() == [(schema.head(),)]
        assert {t: c.execute(f"SELECT * FROM {t} ORDER BY id").fetchall() for t in ("vectors", "jobs")} == before


@pytest.mark.skipif(not POSTGRES_URL, reason="set MMSEARCH_TEST_POSTGRES_URL (.ci/run does)")
def test_an_r0005_postgresql_library_upgrades_on_open_to_64_bit_sizes_and_answers_as_before(tmp_path, mini_encoder):
    url = new_postgres_database()
    engine = create_engine(url)
    with engine.connect() as connection:
        # The dump (pg_dump --inserts) as plain statements; it empties search_path for its session.
        connection.exec_driver_sql((R0005 / "postgres.sql").read_text())
        connection.commit()
    with engine.begin() as connection:
        connection.execute(text("SET search_path TO public"))
        assert schema.revision(connection) == "0005"
        _moved(connection, tmp_path)
        before = connection.execute(text("SELECT * FROM vectors ORDER BY id")).all()

    with open_library(tmp_path / "lib", encoder=mini_encoder, database_url=url) as lib:
        assert _counts(lib) == EXPECTED["postgres"]["counts"]
        assert _searches(lib) == EXPECTED["postgres"]["searches"]  # indexes rebuilt from SQL in a new folder
    with engine.begin() as connection:
        assert schema.revision(connection) == schema.head()
        assert connection.execute(text("SELECT * FROM vectors ORDER BY id")).all() == before
        types = dict(
            connection.execute(
                text(
                    "SELECT column_name, data_type FROM information_schema.columns "
                    "WHERE table_name IN ('media', 'jobs') AND column_name IN ('size', 'total', 'done', 'errors')"
                )
            ).all()
        )
        assert types == {"size": "bigint", "total": "bigint", "done": "bigint", "errors": "bigint"}
        notifying = text("SELECT tgrelid::regclass::text FROM pg_trigger WHERE tgname LIKE '%notify_commit'")
        assert sorted(connection.execute(notifying).scalars()) == ["media", "segments", "spaces", "vectors"]
        connection.execute(update(Media).where(Media.id == 1).values(size=5 * 2**30))  # past 32 bits
    engine.dispose()
