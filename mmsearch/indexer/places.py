"""Place names for GPS positions, offline: the nearest of GeoNames' places of 1,000 people or
more, as the reverse_geocode package ships them (no network at run time).

The table (155k places, about 110 MB in memory) loads on the first lookup, in the process
that indexes geotagged files, and stays for its life.
"""

from __future__ import annotations

from ..geo import distance_km
from .capture import Capture, mtime_capture

PLACE_MAX_KM = 50.0  # farther than this from any known place (at sea, in a desert): no name


def place_names(positions: list[tuple[float, float]]) -> list[str | None]:
    """'Intendente, Lisbon, Portugal' for each (lat, lon): the place, its county and region
    (each once), and its country."""
    if not positions:
        return []
    import reverse_geocode  # its table takes a second to load: only when a file has a position

    return [
        _name(found) if distance_km(pos, (found["latitude"], found["longitude"])) <= PLACE_MAX_KM else None
        for pos, found in zip(positions, reverse_geocode.search(positions))
    ]


def _name(found: dict) -> str:
    parts: list[str] = []
    for key in ("city", "county", "state", "country"):
        part = (found.get(key) or "").strip()
        if part and part not in parts:
            parts.append(part)
    return ", ".join(parts)


def capture_columns(captures: list[Capture], mtimes: list[float]) -> list[dict]:
    """Media row columns of a batch's captures: the mtime as the time where a file gave none,
    and the place names of those with a position (looked up together)."""
    columns = [{**mtime_capture(c, m).columns(), "place": None} for c, m in zip(captures, mtimes)]
    placed = [c for c in columns if c["gps_lat"] is not None]
    for c, name in zip(placed, place_names([(c["gps_lat"], c["gps_lon"]) for c in placed])):
        c["place"] = name
    return columns
