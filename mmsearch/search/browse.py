"""The library without a query: its media newest first (the page's timeline) under a request's
filters, and the places its photos were taken."""

from __future__ import annotations

from sqlalchemy import func, select

from ..storage.store import Media, Store
from .engine import Hit
from .media_filters import media_conditions
from .query import SearchRequest


def timeline(store: Store, req: SearchRequest) -> tuple[list[Hit], int]:
    """A page (req.k from req.offset) of the media passing the request's filters, newest first
    by the clock where each was taken (undated last, then the latest indexed first), and how
    many pass. Files that could not be indexed are left out. Each hit's score is 0."""
    conditions = [Media.error.is_(None), *media_conditions(store, req)]
    with store.session() as s:
        total = s.scalar(select(func.count()).select_from(Media).where(*conditions)) or 0
        rows = s.scalars(
            select(Media)
            .where(*conditions)
            .order_by(Media.taken_at.is_(None), Media.taken_at.desc(), Media.id.desc())
            .offset(req.offset)
            .limit(req.k)
        ).all()
    return [Hit.of(m, 0.0, "timeline") for m in rows], total


def places(store: Store, limit: int = 200) -> list[tuple[str, int]]:
    """Place names with how many media were taken there, the most first (then by name)."""
    count = func.count().label("n")
    with store.session() as s:
        rows = s.execute(
            select(Media.place, count)
            .where(Media.place.is_not(None), Media.error.is_(None))
            .group_by(Media.place)
            .order_by(count.desc(), Media.place)
            .limit(limit)
        ).all()
    return [(place, n) for place, n in rows]
