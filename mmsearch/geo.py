"""Great-circle geometry of GPS positions in degrees, shared by the place names found at index
time (indexer/places.py) and the near filter of searches (search/media_filters.py)."""

from __future__ import annotations

import math

EARTH_RADIUS_KM = 6371.0


def haversine(a: tuple[float, float], b: tuple[float, float]) -> float:
    """h = sin²(Δφ/2) + cos φ1 cos φ2 sin²(Δλ/2) of two (lat, lon): 0 for one point, 1 for
    antipodes, growing with the distance between."""
    lat1, lon1, lat2, lon2 = map(math.radians, (*a, *b))
    return math.sin((lat2 - lat1) / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2


def haversine_within(km: float) -> float:
    """The largest haversine h of two positions at most `km` apart."""
    return math.sin(min(math.pi / 2, km / (2 * EARTH_RADIUS_KM))) ** 2


def distance_km(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Great-circle distance."""
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(haversine(a, b))))
