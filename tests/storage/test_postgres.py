"""A library's database on a real PostgreSQL server: migrations build the mapped schema, a
library written at revision 0003 (the committed fixture, restored onto PostgreSQL) upgrades
in place, and its words are searchable there (the tsvector index of revision 0005).

Needs MMSEARCH_TEST_POSTGRES_URL: a role that may create databases (.ci/run starts Debian's
PostgreSQL and sets it). Each test gets a database of its own, dropped when the session ends."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from PIL import Image
from sqlalchemy import MetaData, create_engine, select, text

from mmsearch.indexer.decode import decode_image
from mmsearch.search.query import SearchRequest, parse_text
from mmsearch.storage import schema
from mmsearch.storage.store import Base, Media, Store
from tests.helpers import POSTGRES_URL, new_postgres_database, open_library

pytestmark = pytest.mark.skipif(
    not POSTGRES_URL,
    reason="set MMSEARCH_TEST_POSTGRES_URL to a PostgreSQL role that may create databases (.ci/run does)",
)
R0003 = Path(__file__).parents[1] / "fixtures" / "libraries" / "r0003"
# Tables of the r0003 fixture, parents before children.
FIXTURE_TABLES = ("schema_info", "spaces", "media", "segments", "vectors", "jobs", "job_errors")


@pytest.fixture
def database() -> str:
    """The URL of a new, empty database (dropped when the session ends)."""
    return new_postgres_database()


def test_migrations_build_exactly_the_schema_the_code_maps(database):
    Store(database).close()
    engine = create_engine(database)
    with engine.connect() as connection:
        # the keyword index (a computed tsvector column and its GIN index) is the migrations' own
        def mapped(name, type_, *_):
            return not (type_ == "column" and name == "words" or type_ == "index" and name == "ix_media_words")

        context = MigrationContext.configure(connection, opts={"include_name": mapped})
        assert compare_metadata(context, Base.metadata) == []
        assert schema.revision(connection) == schema.head()
        assert connection.execute(text("SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_media_words'")).scalar()
    engine.dispose()


def restore_r0003(database: str, root: str) -> None:
    """The fixture's rows in a PostgreSQL database migrated to revision 0003, its paths moved to `root`."""
    target = create_engine(database)
    with target.begin() as connection:
        command.upgrade(schema._config(connection), "0003")
    source = create_engine(f"sqlite:///{R0003 / 'lib' / 'mmsearch.db'}")
    expected_root = json.loads((R0003 / "expected.json").read_text())["root"]
    tables = MetaData()
    tables.reflect(target, only=FIXTURE_TABLES)
    with source.connect() as read, target.begin() as write:
        write.execute(text("DELETE FROM schema_info"))
        for name in FIXTURE_TABLES:
            rows = [dict(r._mapping) for r in read.execute(text(f"SELECT * FROM {name}"))]
            for row in rows:
                for key in ("path", "root"):
                    if isinstance(row.get(key), str):
                        row[key] = row[key].replace(expected_root, root)
                for key, column in tables.tables[name].columns.items():
                    if row.get(key) is not None and column.type.python_type is bool:
                        row[key] = bool(row[key])
            if rows:
                write.execute(tables.tables[name].insert(), rows)
            if "id" in tables.tables[name].columns:  # serial columns continue after the copied ids
                write.execute(
                    text(f"SELECT setval(pg_get_serial_sequence('{name}', 'id'), (SELECT max(id) FROM {name}))")
                )
    source.dispose()
    target.dispose()


def test_an_r0003_library_upgrades_in_place_on_postgresql(database, tmp_path, mini_encoder):
    shutil.copytree(R0003, tmp_path / "r0003")
    restore_r0003(database, str(tmp_path / "r0003"))
    expected = json.loads((R0003 / "expected.json").read_text())
    lib = open_library(tmp_path / "r0003" / "lib", encoder=mini_encoder, database_url=database)
    for query, hits in expected["searches"].items():
        got = lib.search(SearchRequest(terms=parse_text(query), k=5, mode="vector"))
        assert [(h.id, h.kind) for h in got] == [(i, kind) for i, _, kind, _ in hits], query
    # The upgrade computed every stored row's words
    words = SearchRequest(terms=parse_text("canon"), k=5, mode="keyword")
    assert [Path(h.path).name for h in lib.search(words)] == ["canon.jpg"]
    job = lib.index([tmp_path / "r0003" / "media"])
    assert (job["new"], job["changed"], job["unchanged"], job["done"]) == (0, 0, 8, 0)  # nothing re-embedded
    with lib.store.session() as s:
        rows = {Path(m.path).name: m for m in s.scalars(select(Media))}
    assert rows["canon.jpg"].camera_model == "Canon EOS 5D" and "Berlin" in rows["nikon.jpg"].place
    assert {n: m.phash for n, m in rows.items()} == {n: decode_image(m.path).phash for n, m in rows.items()}
    # Words the job read (camera, place) are searchable, and a file name is the top hybrid hit
    words = SearchRequest(terms=parse_text("D750 Berlin"), k=5, mode="keyword")
    assert [Path(h.path).name for h in lib.search(words)] == ["nikon.jpg"]
    (top, *_) = lib.search(SearchRequest(terms=parse_text("train-000004"), k=3))
    assert (Path(top.path).name, top.found_by) == ("train-000004.png", "keyword")
    phrase = SearchRequest(terms=parse_text('"EOS 5D"'), k=5)
    assert [Path(h.path).name for h in lib.search(phrase)] == ["canon.jpg"]
    lib.close()


def test_a_file_over_4_gib_indexes_with_its_size_recorded_exactly(database, tmp_path, mini_encoder):
    """Sizes are 64-bit on PostgreSQL (revision 0006): a 32-bit column refuses any file of 2 GiB
    or more, a normal video."""
    media = tmp_path / "media"
    media.mkdir()
    big = media / "big.jpg"
    Image.new("RGB", (64, 48), (200, 40, 40)).save(big)
    size = 4 * 2**30 + 12345
    with open(big, "r+b") as f:
        f.truncate(size)  # sparse: the JPEG, then zeros its decoder never reads
    lib = open_library(tmp_path / "lib", encoder=mini_encoder, database_url=database)
    job = lib.index([media])
    assert (job["new"], job["errors"]) == (1, 0)
    with lib.store.session() as s:
        assert s.scalar(select(Media.size).where(Media.path == str(big.resolve()))) == size
    assert lib.index([media])["unchanged"] == 1  # the size compares equal, so it is not indexed again
    lib.close()


def test_processes_opening_a_new_database_at_once_all_open_it_with_one_schema(database):
    opener = "import sys\nfrom mmsearch.storage.store import Store\nStore(sys.argv[1]).close()\n"
    for _ in range(2):  # a fresh database each round
        url = new_postgres_database()
        children = [
            subprocess.Popen([sys.executable, "-c", opener, url], stderr=subprocess.PIPE, text=True) for _ in range(4)
        ]
        errors = [child.communicate(timeout=120)[1] for child in children]
        assert [child.returncode for child in children] == [0] * 4, errors
        with create_engine(url).connect() as connection:
            assert schema.revision(connection) == schema.head()
            assert connection.execute(text("SELECT count(*) FROM alembic_version")).scalar() == 1
