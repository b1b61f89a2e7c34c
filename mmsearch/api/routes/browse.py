"""The library without a query (GET /timeline: newest first, filtered, paged) and the places
its photos were taken (GET /places): what the page shows before anything is searched."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from ...search.query import SearchRequest
from ..schemas import HitOut, PlaceOut, TimelineIn, TimelineOut
from ..state import AppState
from ..urls import hit_json


def browse_router(state: AppState) -> APIRouter:
    router = APIRouter()
    library = state.library

    @router.get("/timeline", response_model=TimelineOut, dependencies=state.read)
    def timeline(query: Annotated[TimelineIn, Query()]) -> dict:
        """Media passing the filters, newest first by the clock where each was taken (undated
        last); generated images only when asked for. An unknown parameter answers 422."""
        request = SearchRequest(
            terms=[],
            k=query.limit,
            offset=query.offset,
            kind=query.kind,
            generated=None if query.generated else False,
            **query.capture_filters(),
        )
        hits, total = library.timeline(request)
        return {"results": [HitOut(**hit_json(h)) for h in hits], "total": total}

    @router.get("/places", response_model=list[PlaceOut], dependencies=state.read)
    def places(limit: int = Query(200, ge=1, le=5000)) -> list[dict]:
        """Where the library's photos were taken: place names, the most photographed first."""
        return [{"place": place, "count": n} for place, n in library.places(limit)]

    return router
