"""/health for load balancers and /metrics for Prometheus."""

from __future__ import annotations

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from ..state import AppState


def health_router(state: AppState) -> APIRouter:
    router = APIRouter()

    @router.get("/health")
    def health() -> dict:
        return {"status": "ok"} | state.library.stats()

    @router.get("/metrics", dependencies=state.read, include_in_schema=False)
    def prometheus_metrics() -> Response:
        return Response(generate_latest(state.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return router
