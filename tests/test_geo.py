"""Great-circle geometry of GPS positions."""

from __future__ import annotations

import pytest

from mmsearch.geo import distance_km, haversine, haversine_within
from mmsearch.indexer.places import PLACE_MAX_KM


def test_distance_is_great_circle():
    assert distance_km((38.7223, -9.1393), (41.1496, -8.6110)) == pytest.approx(274, abs=2)  # Lisbon - Porto
    assert distance_km((0, 179.9), (0, -179.9)) == pytest.approx(22.2, abs=0.1)  # across the antimeridian
    assert PLACE_MAX_KM < distance_km((0.5, -30.0), (-3.84, -32.41))


def test_positions_within_a_distance_have_a_haversine_at_most_its_limit():
    lisbon, porto = (38.7223, -9.1393), (41.1496, -8.6110)
    apart = distance_km(lisbon, porto)
    assert haversine_within(apart - 0.01) < haversine(lisbon, porto) <= haversine_within(apart + 0.01)
    assert haversine_within(30_000) == pytest.approx(1.0)  # past half the equator: every point
