"""Place names from GPS positions, offline."""

from __future__ import annotations

from mmsearch.indexer.capture import Capture
from mmsearch.indexer.places import capture_columns, place_names


def test_positions_get_the_names_of_the_places_they_are_in():
    lisbon, porto, mid_atlantic = (38.7223, -9.1393), (41.15, -8.61), (0.5, -30.0)
    names = place_names([lisbon, porto, mid_atlantic])
    assert names[0].endswith("Lisbon, Portugal") and names[1] == "Porto, Portugal"
    assert names[2] is None  # over PLACE_MAX_KM from any town
    assert place_names([]) == []


def test_a_batch_gets_places_for_its_positions_and_mtimes_for_its_undated_files():
    dated = Capture(taken_at=1e9, taken_source="exif", gps_lat=41.15, gps_lon=-8.61)
    columns = capture_columns([dated, Capture()], [1.6e9, 1.6e9])
    assert (columns[0]["place"], columns[0]["taken_source"]) == ("Porto, Portugal", "exif")
    assert (columns[1]["place"], columns[1]["taken_source"]) == (None, "mtime")
