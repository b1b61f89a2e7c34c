"""Place names from GPS positions, offline."""

from __future__ import annotations

import pytest

from mmsearch.indexer.capture import Capture
from mmsearch.indexer.places import PLACE_MAX_KM, capture_columns, distance_km, place_names


def test_positions_get_the_names_of_the_places_they_are_in():
    lisbon, porto, mid_atlantic = (38.7223, -9.1393), (41.15, -8.61), (0.5, -30.0)
    names = place_names([lisbon, porto, mid_atlantic])
    assert names[0].endswith("Lisbon, Portugal") and names[1] == "Porto, Portugal"
    assert names[2] is None  # over PLACE_MAX_KM from any town
    assert place_names([]) == []


def test_distance_is_great_circle():
    assert distance_km((38.7223, -9.1393), (41.1496, -8.6110)) == pytest.approx(274, abs=2)  # Lisbon - Porto
    assert distance_km((0, 179.9), (0, -179.9)) == pytest.approx(22.2, abs=0.1)  # across the antimeridian
    assert PLACE_MAX_KM < distance_km((0.5, -30.0), (-3.84, -32.41))


def test_a_batch_gets_places_for_its_positions_and_mtimes_for_its_undated_files():
    dated = Capture(taken_at=1e9, taken_source="exif", gps_lat=41.15, gps_lon=-8.61)
    columns = capture_columns([dated, Capture()], [1.6e9, 1.6e9])
    assert (columns[0]["place"], columns[0]["taken_source"]) == ("Porto, Portugal", "exif")
    assert (columns[1]["place"], columns[1]["taken_source"]) == (None, "mtime")
