"""Search by text, media id, vector and weighted terms (POST /search), or by an uploaded image."""

from __future__ import annotations

import tempfile
import time

from fastapi import APIRouter, File, Form, HTTPException, Request, UploadFile
from fastapi.concurrency import run_in_threadpool

from ...imageio import UnreadableImageError
from ...search.query import Near, SearchRequest, Term, build_terms
from ...search.rerank import rerank_stage
from ...services.generate_on_miss import prompt_of
from ..schemas import GenerationIn, HitOut, SearchIn, SearchOut
from ..state import AppState
from ..uploads import decode_query_image, upload_body_limit
from ..urls import hit_json
from .generate import generate_options


def query_terms(body: SearchIn) -> list[Term]:
    terms = build_terms(text=body.text, media_id=body.image_media_id, vector=body.vector, weights=body.weights)
    return terms + [Term(text=t.text, media_id=t.media_id, vector=t.vector, weight=t.weight) for t in body.terms]


async def read_limited(upload: UploadFile, limit: int) -> bytes:
    """An upload's bytes, refused (413) past `limit`. The route's body limit has already
    refused a body over it while it streamed in (the upload was spooled up to it, no further)."""
    data = await upload.read(limit + 1)
    if len(data) > limit:
        raise HTTPException(413, f"upload is larger than the limit of {limit} bytes")
    return data


def search_router(state: AppState) -> APIRouter:
    router = APIRouter()
    settings = state.settings

    def run_search(
        req: SearchRequest, prompt: str | None = None, mode: str | None = None, generation: GenerationIn | None = None
    ) -> dict:
        t0 = time.perf_counter()
        options = generate_options(settings, mode or settings.generate_default, generation or GenerationIn())
        outcome = state.library.search_or_generate(req, prompt, options)
        if req.rerank is not None and outcome.via != "generated":  # drawn images are not reranked
            outcome.steps.append(rerank_stage(req, state.library.encoder))
        fresh = [st["media"] for st in outcome.steps if st.get("stage") == "generated" and "media" in st]
        state.metrics.count_generation("search", sum(map(len, fresh)))  # not images served again from an earlier miss
        return SearchOut(
            results=[HitOut(**hit_json(h)) for h in outcome.hits],
            miss=outcome.miss,
            via=outcome.via,
            stages=outcome.steps,
            took_ms=(time.perf_counter() - t0) * 1000,
        ).model_dump()

    @router.post("/search", response_model=SearchOut, dependencies=state.read)
    def search(body: SearchIn, request: Request) -> dict:
        if body.text and (body.generate or settings.generate_default) != "never":
            state.access.check_generation(request)  # a miss would generate and store images
        req = SearchRequest(
            terms=query_terms(body),
            k=body.k,
            offset=body.offset,
            kind=body.kind,
            path_prefix=body.path_prefix,
            generated=body.generated,
            min_score=body.min_score,
            rerank=body.rerank,
            rerank_top=body.rerank_top,
            near=Near(body.near.lat, body.near.lon, body.near.km) if body.near else None,
            sort=body.sort,
            mode=body.mode,
            **body.capture_filters(),
        )
        other_terms = body.image_media_id is not None or body.vector is not None or bool(body.terms)
        return run_search(req, prompt_of(body.text, other_terms), body.generate, body.generation)

    @router.post(
        "/search/image",
        response_model=SearchOut,
        dependencies=state.read,
        max_body_size=upload_body_limit(settings.max_upload_bytes),
    )
    async def search_image(
        file: UploadFile = File(..., description="The query image."),
        text: str | None = Form(None, max_length=1000),
        image_weight: float = Form(1.0, ge=-100, le=100, allow_inf_nan=False),
        kind: str = Form("any", pattern="^(image|video|any)$"),
        k: int = Form(10, ge=1, le=1000),
        offset: int = Form(0, ge=0, le=100_000),
    ) -> dict:
        data = await read_limited(file, settings.max_upload_bytes)

        def decode_and_search() -> dict:  # CPU work: off the event loop
            try:
                image = decode_query_image(data, settings.max_pixels)
            except UnreadableImageError as e:  # the table's 400, with a detail naming the upload
                raise HTTPException(400, f"the upload is not a readable image: {e}") from e
            terms = build_terms(text=text, image=image, weights={"image": image_weight})
            return run_search(SearchRequest(terms=terms, k=k, offset=offset, kind=kind))

        return await run_in_threadpool(decode_and_search)

    @router.post(
        "/search/video",
        response_model=SearchOut,
        dependencies=state.read,
        max_body_size=upload_body_limit(settings.max_query_video_bytes),
    )
    async def search_video(
        file: UploadFile = File(..., description="The query clip (at most MMSEARCH_MAX_QUERY_VIDEO_S long)."),
        kind: str = Form("any", pattern="^(image|video|any)$"),
        k: int = Form(10, ge=1, le=1000),
        offset: int = Form(0, ge=0, le=100_000),
    ) -> dict:
        """Images, videos and moments like an uploaded video clip."""

        def embed_and_search() -> dict:  # decoding and embedding: off the event loop
            t0 = time.perf_counter()
            with tempfile.NamedTemporaryFile(prefix="mmsearch-query-", suffix=".video") as clip:
                copy_limited(file.file, clip, settings.max_query_video_bytes)
                clip.flush()
                hits = state.library.search_video(clip.name, SearchRequest(terms=[], k=k, offset=offset, kind=kind))
            return SearchOut(
                results=[HitOut(**hit_json(h)) for h in hits],
                miss=False,
                via="video",
                stages=[],
                took_ms=(time.perf_counter() - t0) * 1000,
            ).model_dump()

        return await run_in_threadpool(embed_and_search)

    return router


def copy_limited(source, target, limit: int, chunk: int = 1 << 20) -> None:
    """Copy an upload to a file, refused (413) past `limit` bytes."""
    copied = 0
    while block := source.read(chunk):
        copied += len(block)
        if copied > limit:
            raise HTTPException(413, f"upload is larger than the limit of {limit} bytes")
        target.write(block)
