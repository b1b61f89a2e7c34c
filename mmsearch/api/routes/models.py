"""The library's models over HTTP: list them; add one (a job, run beside searches), switch to
it once complete, drop one. Changing models needs API keys configured and sent."""

from __future__ import annotations

from fastapi import APIRouter

from ..schemas import ModelIn
from ..state import AppState


def models_router(state: AppState) -> APIRouter:
    router = APIRouter()
    library = state.library

    @router.get("/models", dependencies=state.read)
    def list_models() -> list[dict]:
        """Each model the library holds vectors of: active or not, coverage, vectors, index bytes."""
        return library.models()

    @router.post("/models", status_code=202, dependencies=state.manage)
    def add_model(body: ModelIn) -> dict:
        """Embed every media item with another model, beside the active one (which keeps
        serving); follow the job at /jobs/{id}. Resumes where an earlier add stopped."""
        job_id = library.create_model_job(body.spec)
        state.start_job(job_id)
        return library.job(job_id)

    @router.post("/models/use", dependencies=state.manage)
    def use_model(body: ModelIn) -> list[dict]:
        """Search with this model from now on: 409 until it covers every media item."""
        library.use_model(body.spec)
        return library.models()

    @router.post("/models/drop", dependencies=state.manage)
    def drop_model(body: ModelIn) -> dict:
        """Remove a model's vectors and index files; 409 for the active model."""
        return library.drop_model(body.spec)

    return router
