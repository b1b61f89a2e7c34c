"""Index jobs store each photo's capture metadata, read HEIC and DNG, and fill in the
metadata and perceptual hashes of files stored before mmsearch read them (a library
upgraded from revision 0003)."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import sqlite3
from pathlib import Path

from sqlalchemy import select

from mmsearch.capture_time import taken_iso
from mmsearch.indexer.decode import decode_image
from mmsearch.search.query import SearchRequest, parse_text
from mmsearch.storage.store import Media
from tests.helpers import open_library
from tests.photos import MTIME, make_photo_library

R0003 = Path(__file__).parents[1] / "fixtures" / "libraries" / "r0003"


def stored(lib) -> dict[str, Media]:
    with lib.store.session() as s:
        return {Path(m.path).name: m for m in s.scalars(select(Media))}


def test_each_photo_keeps_when_with_what_and_where_it_was_taken(tmp_path, mini_encoder):
    expected = make_photo_library(tmp_path / "photos")
    lib = open_library(tmp_path / "lib", encoder=mini_encoder)
    job = lib.index([tmp_path / "photos"])
    assert (job["errors"], job["done"]) == (0, len(expected))
    rows = stored(lib)
    local_mtime = dt.datetime.fromtimestamp(MTIME).astimezone()
    for name, (iso, source, make, model, place) in expected.items():
        m = rows[name]
        assert m.error is None, name
        if source == "mtime":
            iso = local_mtime.isoformat()
        assert (taken_iso(m.taken_at, m.taken_offset), m.taken_source) == (iso, source), name
        assert (m.camera_make, m.camera_model) == (make, model), name
        assert (m.place is not None and place in m.place) if place else m.place is None, name
        assert (m.width, m.height) == (160, 128), name
    assert rows["canon_lisbon_2019.jpg"].lens == "EF 50mm f/1.8"
    assert rows["sony_2020.jpg"].description == "Birthday at the beach"
    # HEIC and DNG are searchable by what they show: the only blue square and green triangle
    for text, name in (("a blue square", "iphone.heic"), ("a green triangle", "leica.dng")):
        (top,) = lib.search(SearchRequest(terms=parse_text(text), k=1))
        assert Path(top.path).name == name, text
    lib.close()


def test_an_r0003_library_upgrades_and_its_next_job_reads_the_metadata_of_unchanged_files(tmp_path, mini_encoder):
    shutil.copytree(R0003, tmp_path / "r0003")
    expected = json.loads((R0003 / "expected.json").read_text())
    with sqlite3.connect(tmp_path / "r0003" / "lib" / "mmsearch.db") as c:  # the media moved with the library
        c.execute(
            "UPDATE media SET path = replace(path, ?, ?), root = replace(root, ?, ?)",
            (expected["root"], str(tmp_path / "r0003"), expected["root"], str(tmp_path / "r0003")),
        )
    fixture_db = f"sqlite:///{tmp_path / 'r0003' / 'lib' / 'mmsearch.db'}"  # (on PostgreSQL: test_postgres)
    lib = open_library(tmp_path / "r0003" / "lib", encoder=mini_encoder, database_url=fixture_db)
    for text, hits in expected["searches"].items():
        got = lib.search(SearchRequest(terms=parse_text(text), k=5))
        assert [(h.id, h.kind) for h in got] == [(i, kind) for i, _, kind, _ in hits], text
    assert {(m.taken_source, m.phash) for m in stored(lib).values()} == {(None, None)}
    words = SearchRequest(terms=parse_text("canon"), k=5, mode="keyword")
    assert [Path(h.path).name for h in lib.search(words)] == ["canon.jpg"]  # its path's words, indexed by the upgrade
    job = lib.index([tmp_path / "r0003" / "media"])
    assert (job["new"], job["changed"], job["unchanged"], job["done"]) == (0, 0, 8, 0)  # nothing re-embedded
    rows = stored(lib)
    assert (rows["canon.jpg"].camera_model, taken_iso(rows["canon.jpg"].taken_at, None)) == (
        "Canon EOS 5D",
        "2018-07-14T10:00:00",
    )
    assert "Lisbon" in rows["canon.jpg"].place and "Berlin" in rows["nikon.jpg"].place
    assert {m.taken_source for n, m in rows.items() if n not in ("canon.jpg", "nikon.jpg")} == {"mtime"}
    # and the images' perceptual hashes (revision 0005), as an index job of the file stores them
    assert {n: m.phash for n, m in rows.items() if m.kind == "image"} == {
        n: decode_image(m.path).phash for n, m in rows.items() if m.kind == "image"
    }
    assert all(len(m.phash) == 16 for m in rows.values())
    words = SearchRequest(terms=parse_text("D750 Berlin"), k=5, mode="keyword")
    assert [Path(h.path).name for h in lib.search(words)] == ["nikon.jpg"]  # camera and place words, read by the job
    lib.close()
