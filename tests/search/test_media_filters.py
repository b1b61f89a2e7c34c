"""Capture filters and date sorting on a photo library the tests make: each filter returns
exactly the expected files, and the SQL conditions agree with the row check."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from sqlalchemy import select

from mmsearch.capture_time import wall_clock
from mmsearch.search.media_filters import media_conditions, passes_media_filters
from mmsearch.search.query import Near, QueryError, SearchRequest, parse_text
from mmsearch.storage.store import Media
from tests.helpers import open_library
from tests.photos import MTIME, make_photo_library

LISBON, PORTO = (38.7223, -9.1393), (41.1496, -8.611)
CANONS = {"canon_lisbon_2019.jpg", "canon_lisbon_2021.jpg"}
IN_PORTO = {"nikon_porto_2018.jpg", "iphone.heic"}
UNDATED = {"IMG_2041.jpg", "plain.png", "malformed.jpg"}  # dated by their mtime, 2016-03-04


@pytest.fixture(scope="module")
def library(tmp_path_factory, mini_encoder):
    base = tmp_path_factory.mktemp("photo-filters")
    expected = make_photo_library(base / "photos")
    lib = open_library(base / "lib", encoder=mini_encoder)
    lib.index([base / "photos"])
    yield lib, expected
    lib.close()


def names(lib, k: int = 100, **filters) -> list[str]:
    hits = lib.search(SearchRequest(terms=parse_text("a photo"), k=k, **filters))
    return [Path(h.path).name for h in hits]


def found(lib, **filters) -> set[str]:
    return set(names(lib, **filters))


def test_camera_and_place_filters_match_part_of_the_name_in_any_case(library):
    lib, expected = library
    assert found(lib, camera="canon") == CANONS
    assert found(lib, camera="NIKON") == {"nikon_porto_2018.jpg"}
    assert found(lib, camera="eos 5d") == CANONS  # the model
    assert found(lib, camera="iphone") == {"iphone.heic"}
    assert found(lib, camera="Hasselblad") == set()
    assert found(lib, place="lisbon") == CANONS
    assert found(lib, place="Porto") == IN_PORTO
    assert found(lib, place="portugal") == CANONS | IN_PORTO
    assert found(lib, camera="canon", place="porto") == set()


def test_near_keeps_positions_within_the_distance(library):
    lib, _ = library
    assert found(lib, near=Near(*LISBON, 25)) == CANONS
    assert found(lib, near=Near(*PORTO, 5)) == IN_PORTO
    assert found(lib, near=Near(*LISBON, 270)) == CANONS  # Porto is 274 km away
    assert found(lib, near=Near(*LISBON, 280)) == CANONS | IN_PORTO
    assert found(lib, near=Near(0.0, 0.0, 20_038)) == CANONS | IN_PORTO  # the whole earth: every placed photo
    with pytest.raises(QueryError, match="near"):
        Near(95.0, 0.0, 1.0)


def test_date_filters_are_inclusive_and_compare_the_clock_where_it_was_taken(library):
    lib, expected = library
    after_2020 = {"canon_lisbon_2021.jpg", "sony_2020.jpg", "iphone.heic", "pixel.avif"}
    assert found(lib, taken_after=wall_clock("2020-01-01")) == after_2020
    # the whole day of taken_before counts: the Nikon's 20:15 on the 24th (at -02:00) is in
    before = found(lib, taken_before=wall_clock("2018-12-24", end_of_day=True))
    assert before == {"nikon_porto_2018.jpg", "leica.dng"} | UNDATED
    assert found(lib, taken_before=wall_clock("2018-12-24T20:14:59")) == {"leica.dng"} | UNDATED
    assert found(
        lib, taken_after=wall_clock("2019-06-01T14:30:00"), taken_before=wall_clock("2019-06-01T14:30:00")
    ) == {"canon_lisbon_2019.jpg"}
    local_day = dt.datetime.fromtimestamp(MTIME).date().isoformat()
    assert found(lib, taken_after=wall_clock(local_day), taken_before=wall_clock(local_day, True)) == UNDATED
    assert found(lib, camera="canon", taken_after=wall_clock("2020-01-01")) == {"canon_lisbon_2021.jpg"}


def test_sort_by_date_orders_the_same_hits_newest_first(library):
    lib, expected = library
    by_score = names(lib, k=5)
    by_date = names(lib, k=5, sort="date")
    assert set(by_date) == set(by_score)
    with lib.store.session() as s:
        taken = {Path(m.path).name: m.taken_at for m in s.scalars(select(Media))}
    assert [taken[n] for n in by_date] == sorted((taken[n] for n in by_date), reverse=True)
    ordered = names(lib, k=100, sort="date")
    assert ordered[:4] == ["pixel.avif", "iphone.heic", "canon_lisbon_2021.jpg", "sony_2020.jpg"]
    hits = lib.search(SearchRequest(terms=parse_text("a photo"), k=100, camera="canon", sort="date"))
    assert [(h.taken_at, h.camera, h.place is not None, h.gps is not None) for h in hits] == [
        ("2021-08-15T09:00:00", "Canon EOS 5D", True, True),
        ("2019-06-01T14:30:00+01:00", "Canon EOS 5D", True, True),
    ]


@pytest.mark.parametrize(
    "filters",
    [
        {"camera": "canon"},
        {"camera": "%"},  # LIKE's wildcard is a character to match, not a wildcard
        {"place": "_"},
        {"place": "lisbon, portugal"},
        {"near": Near(*PORTO, 300)},
        {"near": Near(*LISBON, 0.001)},
        {"taken_after": wall_clock("2019-01-01"), "taken_before": wall_clock("2021-12-31", True)},
    ],
)
def test_the_sql_conditions_and_the_row_check_agree(library, filters):
    lib, _ = library
    req = SearchRequest(terms=[], **filters)
    with lib.store.session() as s:
        rows = list(s.scalars(select(Media)))
        in_sql = {m.id for m in s.scalars(select(Media).where(*media_conditions(lib.store, req)))}
    assert in_sql == {m.id for m in rows if passes_media_filters(m, req)}
