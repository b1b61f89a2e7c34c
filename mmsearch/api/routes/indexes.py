"""The library's vector indexes over HTTP: what `mmsearch index-info` shows, with the live
state of the indexes this server has open."""

from __future__ import annotations

from fastapi import APIRouter

from ...services.index_report import overlay, saved_indexes
from ..state import AppState


def indexes_router(state: AppState) -> APIRouter:
    router = APIRouter()
    library = state.library

    @router.get("/indexes", dependencies=state.read)
    def indexes() -> list[dict]:
        """Per space and vector kind: factory, vectors, memory_bytes, params, and `tuning` (the
        recall@10 per query kind and p50 latency measured when it was last tuned; null for
        exact indexes and those not tuned yet); `compared`, each candidate type's measurement
        when the type was chosen among several; `upkeep` is "busy" while it is being tuned or
        rebuilt."""
        return overlay(saved_indexes(library.dir / "indexes"), library.indexes.info())

    return router
