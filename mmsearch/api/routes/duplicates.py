"""The library's groups of near-identical images (GET /duplicates): what `mmsearch duplicates`
lists. Nothing is deleted."""

from __future__ import annotations

from fastapi import APIRouter, Query

from ..schemas import DuplicatesOut
from ..state import AppState
from ..urls import duplicate_group_json


def duplicates_router(state: AppState) -> APIRouter:
    router = APIRouter()

    @router.get("/duplicates", response_model=DuplicatesOut, dependencies=state.read)
    def duplicates(
        min_similarity: float | None = Query(
            None, ge=-1, le=1, allow_inf_nan=False, description="Default: MMSEARCH_DUPLICATE_SIMILARITY."
        ),
        max_distance: int | None = Query(None, ge=0, le=64, description="Default: MMSEARCH_DUPLICATE_HASH_DISTANCE."),
        limit: int = Query(50, ge=1, le=1000),
        offset: int = Query(0, ge=0, le=10_000_000),
    ) -> dict:
        """Groups of copies of one picture (resized, re-encoded, slightly cropped), largest
        first, each with the suggested keeper first. Found from the library's embeddings and
        confirmed by perceptual hashes; the groups are kept until the library changes."""
        report = state.library.duplicates(min_similarity, max_distance)
        return {
            "groups": [duplicate_group_json(group) for group in report.groups[offset : offset + limit]],
            "total": len(report.groups),
            "images": report.images,
            "took_ms": report.took_ms,
            **report.settings,
        }

    return router
