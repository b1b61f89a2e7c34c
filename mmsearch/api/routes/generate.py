"""Generating images into the library, and deleting generated ones."""

from __future__ import annotations

import time

from fastapi import APIRouter, Request

from ...config import Settings
from ...services.drawing import GenerateOptions
from ..schemas import GenerateIn, GenerateOut, GenerationIn, HitOut
from ..state import AppState
from ..urls import hit_json
from .media import find_media


def generate_options(settings: Settings, mode: str, generation: GenerationIn) -> GenerateOptions:
    """A request's generation settings, with the server's number of steps when it names none."""
    return GenerateOptions(
        mode=mode,
        n=generation.n,
        seed=generation.seed,
        steps=generation.steps or settings.generate_steps,
        guidance=generation.guidance,
        sampler=generation.sampler,
    )


def generate_router(state: AppState) -> APIRouter:
    router = APIRouter()
    library = state.library

    @router.post("/generate", response_model=GenerateOut)
    def generate(body: GenerateIn, request: Request) -> dict:
        """Generate images (from a prompt, or from an indexed image: variations, edits,
        interpolations); they are stored in the library as generated media and indexed."""
        state.access.check_generation(request)
        t0 = time.perf_counter()
        options = generate_options(state.settings, "always", body)
        if body.from_media_id is not None:
            interpolate = (body.interpolate.media_id, body.interpolate.alpha) if body.interpolate else None
            hits = library.generate_from_media(
                body.from_media_id, options, edit=tuple(body.edit) if body.edit else None, interpolate=interpolate
            )
        else:
            hits = library.generate(body.prompt, options)  # drawn on the library's drawing queue
        state.metrics.count_generation("generate", len(hits))
        return GenerateOut(
            results=[HitOut(**hit_json(h)) for h in hits], took_ms=(time.perf_counter() - t0) * 1000
        ).model_dump()

    @router.delete("/media/{media_id}", dependencies=state.write)
    def delete_media(media_id: int) -> dict:
        """Delete a generated image (row, vector, file), e.g. a poor drawing that a repeated
        query would otherwise keep returning. Media from the library's folders answer 409."""
        find_media(library, media_id)
        deleted = library.delete_generated([media_id])
        state.thumbnails.forget(media_id)
        return {"deleted": deleted}

    return router
