"""A request's filters on media rows, twice: as SQL conditions (resolved before the ANN
search, search/prefilter.py) and as a check of one row (what the engine applies to the rows
it reads). The two agree exactly; tests compare them.

Capture filters (revision 0004's columns): `taken_after` / `taken_before` compare the
wall-clock time where a photo was taken (inclusive); `camera` and `place` match part of the
make or model, or of the place name, ignoring case; `near` keeps positions within `km` of a
point by great-circle distance. A row without the field never passes its filter.
"""

from __future__ import annotations

import math

from sqlalchemy import func, or_

from ..geo import EARTH_RADIUS_KM, haversine, haversine_within
from ..storage.store import Media, Store
from .query import Near, SearchRequest

_RADIANS = math.pi / 180


def filtered(req: SearchRequest) -> bool:
    """Whether the request filters media by something other than their kind and score (its
    kind already picks which indexes are searched)."""
    return bool(req.path_prefix) or req.generated is not None or has_capture_filters(req)


def has_capture_filters(req: SearchRequest) -> bool:
    return any(v is not None for v in (req.taken_after, req.taken_before, req.camera, req.near, req.place))


def filter_key(req: SearchRequest) -> tuple:
    """What identifies a request's filters (resolved subsets are cached by it)."""
    return (
        req.kind,
        req.generated,
        req.path_prefix or "",
        req.taken_after,
        req.taken_before,
        req.camera,
        req.near,
        req.place,
    )


def media_conditions(store: Store, req: SearchRequest) -> list:
    """SQL conditions on Media for the request's filters."""
    conditions = []
    if req.kind != "any":
        conditions.append(Media.kind == req.kind)
    if req.generated is not None:
        conditions.append(Media.generated == req.generated)
    prefix = req.path_prefix
    if prefix:
        conditions.append(func.substr(Media.path, 1, len(prefix)) == prefix)
        if store.engine.dialect.name == "sqlite" and ord(prefix[-1]) < 0x10FFFF:
            # SQLite compares text by its UTF-8 bytes, in code point order: the strings
            # starting with the prefix are one range of the unique index on path.
            conditions += [Media.path >= prefix, Media.path < prefix[:-1] + chr(ord(prefix[-1]) + 1)]
    if req.taken_after is not None:
        conditions.append(Media.taken_at >= req.taken_after)
    if req.taken_before is not None:
        conditions.append(Media.taken_at <= req.taken_before)
    if req.camera is not None:
        conditions.append(
            or_(
                Media.camera_make.icontains(req.camera, autoescape=True),
                Media.camera_model.icontains(req.camera, autoescape=True),
            )
        )
    if req.place is not None:
        conditions.append(Media.place.icontains(req.place, autoescape=True))
    if req.near is not None:
        conditions += _near_conditions(req.near)
    return conditions


def passes_media_filters(m: Media, req: SearchRequest) -> bool:
    """The request's filters (but its kind) on one media row, as media_conditions has them."""
    if req.path_prefix and not m.path.startswith(req.path_prefix):
        return False
    if req.generated is not None and m.generated != req.generated:
        return False
    if (req.taken_after is not None or req.taken_before is not None) and m.taken_at is None:
        return False
    if req.taken_after is not None and m.taken_at < req.taken_after:
        return False
    if req.taken_before is not None and m.taken_at > req.taken_before:
        return False
    if req.camera is not None and not any(_contains(v, req.camera) for v in (m.camera_make, m.camera_model)):
        return False
    if req.place is not None and not _contains(m.place, req.place):
        return False
    if req.near is not None:
        if m.gps_lat is None or m.gps_lon is None or not _within(req.near, m.gps_lat, m.gps_lon):
            return False
    return True


def _contains(value: str | None, part: str) -> bool:
    return value is not None and part.lower() in value.lower()


def _within(near: Near, lat: float, lon: float) -> bool:
    return haversine((lat, lon), (near.lat, near.lon)) <= haversine_within(near.km)


def _near_conditions(near: Near) -> list:
    """geo.haversine in SQL (sin and cos: PostgreSQL's own, SQLite's math functions or
    the store's stand-ins), after a latitude band that rules out most rows cheaply."""
    band = near.km / EARTH_RADIUS_KM / _RADIANS
    lat, lon = Media.gps_lat * _RADIANS, Media.gps_lon * _RADIANS
    dlat = func.sin((lat - near.lat * _RADIANS) / 2)
    dlon = func.sin((lon - near.lon * _RADIANS) / 2)
    h = dlat * dlat + math.cos(near.lat * _RADIANS) * func.cos(lat) * dlon * dlon
    return [Media.gps_lat.between(near.lat - band, near.lat + band), h <= haversine_within(near.km)]
