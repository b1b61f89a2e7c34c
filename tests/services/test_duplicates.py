"""Duplicate groups of a library: planted copies found and grouped with the suggested keeper,
generated images left out, an upgraded library's unhashed images hashed from their files, and
the groups kept until the library changes."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image
from sqlalchemy import update

from mmsearch.services.duplicates import DuplicatesBusy, keeper_order
from mmsearch.storage.generated import GenerationParams
from mmsearch.storage.store import Media
from tests.helpers import open_library
from tests.photos import make_duplicate_library


def groups(report) -> list[list[str]]:
    return [[Path(m.hit.path).name for m in g.members] for g in report.groups]


@pytest.fixture
def library(tmp_path, mini_encoder):
    expected = make_duplicate_library(tmp_path / "photos")
    lib = open_library(tmp_path / "lib", encoder=mini_encoder)
    lib.index([tmp_path / "photos"])
    yield lib, expected, tmp_path / "photos"
    lib.close()


def test_planted_copies_form_groups_with_the_largest_first(library):
    lib, expected, _ = library
    report = lib.duplicates()
    assert groups(report) == expected
    assert report.images == 13
    keeper, *copies = report.groups[0].members
    assert (keeper.hit.score, keeper.hash_distance) == (1.0, 0)
    assert all(c.hit.score >= lib.settings.duplicate_similarity for c in copies)
    assert all(0 < c.hash_distance <= lib.settings.duplicate_hash_distance for c in copies)
    assert keeper.width * keeper.height > max(c.width * c.height for c in copies)
    # Stricter thresholds than the copies meet: no groups
    assert lib.duplicates(max_distance=0).groups == []
    assert lib.duplicates(min_similarity=1.0).groups == []


def test_the_groups_are_kept_until_the_library_changes(library):
    lib, expected, photos = library
    first = lib.duplicates()
    assert lib.duplicates() is first
    assert lib.duplicates(max_distance=5) is not first  # other thresholds, other groups
    Image.open(photos / "scenes" / "scene-000007.jpg").save(photos / "copies" / "copy-7.png")
    lib.index([photos])
    assert groups(lib.duplicates()) == [*expected, ["copy-7.png", "scene-000007.jpg"]]  # same pixels: more bytes


def test_generated_images_are_left_out(library):
    lib, expected, photos = library
    drawn = Image.open(photos / "scenes" / "scene-000002.jpg").convert("RGB")
    lib.store_generated(
        [drawn], GenerationParams(prompt="a scene", backend="test", seed=1, steps=1, guidance=None, sampler="ddim")
    )
    assert groups(lib.duplicates()) == expected


def test_images_stored_before_hashes_are_hashed_from_their_files_then_by_the_next_job(library):
    lib, expected, photos = library
    hashes = {m.path: m.phash for m in lib.media_many(list(range(1, 14))).values()}
    with lib.store.session() as s:  # as an upgraded library holds them
        s.execute(update(Media).values(phash=None))
    assert groups(lib.duplicates()) == expected
    job = lib.index([photos])
    assert (job["unchanged"], job["done"]) == (13, 0)  # nothing re-embedded
    assert {m.path: m.phash for m in lib.media_many(list(range(1, 14))).values()} == hashes


def test_a_second_search_waits_for_the_first_within_a_bound(library):
    lib, _, _ = library
    finder = lib._duplicates
    with finder._lock:  # a search in progress
        with pytest.raises(DuplicatesBusy, match="try again"):
            finder.find(lib.encoder.space, 0.95, 14, wait_s=0.05)


def test_the_keeper_is_the_largest_then_the_heaviest_then_the_oldest():
    def media(id_, w, h, size, taken=None):
        return Media(id=id_, width=w, height=h, size=size, taken_at=taken)

    rows = [
        media(1, 100, 100, 500, taken=20.0),
        media(2, 200, 100, 100),
        media(3, 100, 100, 900),
        media(4, 100, 100, 500, taken=10.0),
        media(5, 100, 100, 500),
    ]
    assert [m.id for m in sorted(rows, key=keeper_order)] == [2, 3, 4, 1, 5]
