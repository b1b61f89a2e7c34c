"""The library database is created and upgraded by Alembic migrations; a database written
before migrations existed (the committed v1 fixture) is stamped and upgraded in place."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, select

from mmsearch.storage import schema
from mmsearch.storage.store import Base, Job, Media, Space, Store, Vector

V1 = Path(__file__).parents[1] / "fixtures" / "libraries" / "v1"


@pytest.fixture
def v1_db(tmp_path) -> Path:
    shutil.copytree(V1 / "lib", tmp_path / "lib")
    return tmp_path / "lib" / "mmsearch.db"


def rows(db: Path, sql: str) -> list[tuple]:
    with sqlite3.connect(db) as c:
        return c.execute(sql).fetchall()


def test_migrations_build_exactly_the_schema_the_code_maps(tmp_path):
    url = f"sqlite:///{tmp_path}/new.db"
    Store(url).close()
    with create_engine(url).connect() as connection:
        # the keyword index (an FTS5 table and its shadow tables) is the migrations' own, not a mapped table
        not_mapped = {"include_name": lambda name, type_, _: not (type_ == "table" and name.startswith("media_words"))}
        assert compare_metadata(MigrationContext.configure(connection, opts=not_mapped), Base.metadata) == []
        assert schema.revision(connection) == schema.head() == "0007"


def test_a_v1_database_is_stamped_and_upgraded_keeping_every_row(v1_db):
    before = {
        table: rows(v1_db, f"SELECT * FROM {table} ORDER BY id")
        for table in ("media", "segments", "vectors", "jobs", "job_errors")
    }
    assert rows(v1_db, "SELECT value FROM schema_info") == [("1",)]
    store = Store(f"sqlite:///{v1_db}")
    store.close()
    for table in ("segments", "vectors", "job_errors"):
        assert rows(v1_db, f"SELECT * FROM {table} ORDER BY id") == before[table], table
    # media gained the capture columns (revision 0004) and the perceptual hash (0005), empty
    # until the files are indexed again
    media = rows(v1_db, "SELECT * FROM media ORDER BY id")
    assert [row[: len(before["media"][0])] for row in media] == before["media"]
    assert {row[len(before["media"][0]) :] for row in media} == {(None,) * 11}
    # jobs gained their task: every earlier job was an index job
    assert [row[:-1] for row in rows(v1_db, "SELECT * FROM jobs ORDER BY id")] == before["jobs"]
    assert {row[-1] for row in rows(v1_db, "SELECT * FROM jobs")} == {"index"}
    assert rows(v1_db, "SELECT value FROM schema_info") == [("2",)]
    assert rows(v1_db, "SELECT version_num FROM alembic_version") == [("0007",)]
    assert ("ix_vectors_segment_id",) in rows(v1_db, "SELECT name FROM sqlite_master WHERE type = 'index'")
    with Store(f"sqlite:///{v1_db}").session() as s:
        # the space of the vectors became the library's active space; its spec was never recorded
        spaces = [(r.spec, r.space, r.dim, r.active) for r in s.scalars(select(Space))]
        assert spaces == [(None, "open_clip:mini@6d2d0dbba8|squash96pad1.6", 256, True)]
        assert s.scalar(select(Vector.dim).limit(1)) == 256
        assert s.query(Media).count() == 8 and s.query(Job).count() == 1


def test_a_database_of_a_later_mmsearch_is_refused_not_misread(v1_db, tmp_path):
    Store(f"sqlite:///{v1_db}").close()
    with sqlite3.connect(v1_db) as c:
        c.execute("UPDATE alembic_version SET version_num = '0099'")
    with pytest.raises(schema.NewerSchemaError, match="revision 0099 was written by a later mmsearch"):
        Store(f"sqlite:///{v1_db}")
    # and one from before migrations whose schema_info says it is newer than version 1
    later = tmp_path / "later.db"
    with sqlite3.connect(later) as c:
        c.execute("CREATE TABLE schema_info (key VARCHAR(64) PRIMARY KEY, value VARCHAR(256))")
        c.execute("INSERT INTO schema_info VALUES ('schema_version', '7')")
    with pytest.raises(schema.NewerSchemaError, match="schema v7 is newer"):
        Store(f"sqlite:///{later}")


def test_a_library_with_vectors_of_two_models_keeps_both_and_the_latest_jobs_is_active(v1_db):
    with sqlite3.connect(v1_db) as c:
        c.execute(
            "INSERT INTO vectors (media_id, segment_id, kind, space, t, dim, embedding) "
            "SELECT media_id, segment_id, kind, 'blip:old|384', t, 8, x'00' FROM vectors WHERE kind = 'image'"
        )
    with Store(f"sqlite:///{v1_db}").session() as s:
        spaces = sorted((r.space, r.dim, r.active) for r in s.scalars(select(Space)))
    assert spaces == [("blip:old|384", 8, False), ("open_clip:mini@6d2d0dbba8|squash96pad1.6", 256, True)]


def _open_store(url: str) -> None:
    Store(url).close()


def test_processes_creating_one_new_database_at_once_leave_one_version_at_head(tmp_path):
    # An index job and the server started together on a new library both migrate it: Alembic
    # steps of the two interleaved and left two version rows, which no later open could read.
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    for attempt in range(6):
        url = f"sqlite:///{tmp_path / f'race{attempt}.db'}"
        with context.Pool(4) as pool:
            pool.map(_open_store, [url] * 4)
        with sqlite3.connect(tmp_path / f"race{attempt}.db") as db:
            assert db.execute("SELECT version_num FROM alembic_version").fetchall() == [(schema.head(),)]
        _open_store(url)
