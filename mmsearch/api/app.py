"""create_app(library) -> FastAPI: search, media, files, thumbnails, index jobs, health."""

from __future__ import annotations

import logging
import os
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import Depends, FastAPI, File, Form, HTTPException, Query, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from ..encoders.base import EncoderError
from ..encoders.video import UnreadableVideoError
from ..imageio import UnreadableImageError, decode_rgb
from ..library import GenerationRequestError, GenerationUnavailable, Library, NotGeneratedError
from ..search.query import MediaNotFoundError, QueryError, SearchRequest, Term, build_terms
from ..services.generate_on_miss import GenerateOptions, prompt_of
from .clip_retrieval import clip_retrieval_router
from .files import OutsideRootsError, safe_path, thumbnail_jpeg, video_thumbnail_jpeg
from .observability import Metrics, add_request_tracking
from .schemas import MAX_ID, GenerateIn, GenerateOut, GenerationIn, HitOut, JobIn, MediaOut, SearchIn, SearchOut
from .security import Access, add_cors
from .urls import hit_json

log = logging.getLogger(__name__)
STATIC_DIR = Path(__file__).resolve().parent / "static"


def _terms(body: SearchIn) -> list[Term]:
    terms = build_terms(text=body.text, media_id=body.image_media_id, vector=body.vector, weights=body.weights)
    return terms + [Term(text=t.text, media_id=t.media_id, vector=t.vector, weight=t.weight) for t in body.terms]


def _media_out(m) -> dict:
    return MediaOut(
        id=m.id,
        path=m.path,
        kind=m.kind,
        size=m.size,
        width=m.width,
        height=m.height,
        duration=m.duration,
        content_hash=m.content_hash,
        generated=m.generated,
        generation=m.generation,
        error=m.error,
        indexed_at=m.indexed_at,
        file_url=f"/media/{m.id}/file",
        thumbnail_url=f"/media/{m.id}/thumbnail",
    ).model_dump()


async def _read_limited(request: Request, upload: UploadFile, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit + 64 * 1024:  # form overhead
        raise HTTPException(413, f"upload is larger than the limit of {limit} bytes")
    data = await upload.read(limit + 1)
    if len(data) > limit:
        raise HTTPException(413, f"upload is larger than the limit of {limit} bytes")
    return data


def create_app(library: Library) -> FastAPI:
    jobs = ThreadPoolExecutor(max_workers=1, thread_name_prefix="index-job")  # one job at a time, in order

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        yield
        library.stop_jobs()  # a running job stops after its batch, as 'interrupted'; the next job resumes it
        jobs.shutdown(wait=True, cancel_futures=True)

    app = FastAPI(
        title="mmsearch", version="0.1.0", description="Multimodal search over a media library.", lifespan=lifespan
    )
    settings = library.settings
    search_lock = threading.Lock()
    thumbnails = library.dir / "thumbnails"  # cached JPEGs, named <media id>-<content hash>[-t<tenths>].jpg
    access, metrics = Access(settings), Metrics(library)
    read, write = [Depends(access.read)], [Depends(access.write)]
    add_request_tracking(app, metrics)
    add_cors(app, settings)

    @app.exception_handler(QueryError)
    async def _query_error(_request: Request, exc: QueryError):
        return JSONResponse({"detail": str(exc)}, status_code=404 if isinstance(exc, MediaNotFoundError) else 400)

    def _options(mode: str, g: GenerationIn) -> GenerateOptions:
        return GenerateOptions(
            mode=mode,
            n=g.n,
            seed=g.seed,
            steps=g.steps or settings.generate_steps,
            guidance=g.guidance,
            sampler=g.sampler,
        )

    def _run_search(
        req: SearchRequest, prompt: str | None = None, mode: str | None = None, generation: GenerationIn | None = None
    ) -> dict:
        t0 = time.perf_counter()
        options = _options(mode or settings.generate_default, generation or GenerationIn())
        # One search at a time: FAISS and the encoder are shared, and a generation is
        # stored and indexed before the next query runs (so a repeat finds it).
        with search_lock:
            outcome = library.search_or_generate(req, prompt, options)
        fresh = [st["media"] for st in outcome.steps if st.get("stage") == "generated" and "media" in st]
        metrics.count_generation("search", sum(map(len, fresh)))  # not images served again from an earlier miss
        return SearchOut(
            results=[HitOut(**hit_json(h)) for h in outcome.hits],
            miss=outcome.miss,
            via=outcome.via,
            stages=outcome.steps,
            took_ms=(time.perf_counter() - t0) * 1000,
        ).model_dump()

    @app.get("/health")
    def health() -> dict:
        return {"status": "ok"} | library.stats()

    @app.post("/search", response_model=SearchOut, dependencies=read)
    def search(body: SearchIn, request: Request) -> dict:
        if body.text and (body.generate or settings.generate_default) != "never":
            access.check_generation(request)  # a miss would generate and store images
        req = SearchRequest(
            terms=_terms(body),
            k=body.k,
            offset=body.offset,
            kind=body.kind,
            path_prefix=body.path_prefix,
            generated=body.generated,
            min_score=body.min_score,
        )
        other_terms = body.image_media_id is not None or body.vector is not None or bool(body.terms)
        return _run_search(req, prompt_of(body.text, other_terms), body.generate, body.generation)

    @app.post("/generate", response_model=GenerateOut)
    def generate(body: GenerateIn, request: Request) -> dict:
        """Generate images (from a prompt, or from an indexed image: variations, edits,
        interpolations); they are stored in the library as generated media and indexed."""
        access.check_generation(request)
        t0 = time.perf_counter()
        options = _options("always", body)
        with search_lock:
            if body.from_media_id is not None:
                interpolate = (body.interpolate.media_id, body.interpolate.alpha) if body.interpolate else None
                hits = library.generate_from_media(
                    body.from_media_id, options, edit=tuple(body.edit) if body.edit else None, interpolate=interpolate
                )
            else:
                hits = library.generate(body.prompt, options)
        metrics.count_generation("generate", len(hits))
        return GenerateOut(
            results=[HitOut(**hit_json(h)) for h in hits], took_ms=(time.perf_counter() - t0) * 1000
        ).model_dump()

    @app.post("/search/image", response_model=SearchOut, dependencies=read)
    async def search_image(
        request: Request,
        file: UploadFile = File(..., description="The query image."),
        text: str | None = Form(None, max_length=1000),
        image_weight: float = Form(1.0, ge=-100, le=100, allow_inf_nan=False),
        kind: str = Form("any", pattern="^(image|video|any)$"),
        k: int = Form(10, ge=1, le=1000),
        offset: int = Form(0, ge=0, le=100_000),
    ) -> dict:
        data = await _read_limited(request, file, settings.max_upload_bytes)

        def decode_and_search() -> dict:  # CPU work: off the event loop
            try:
                image = decode_rgb(data, max_pixels=settings.max_pixels)
            except UnreadableImageError as e:
                raise HTTPException(400, f"the upload is not a readable image: {e}") from e
            terms = build_terms(text=text, image=image, weights={"image": image_weight})
            return _run_search(SearchRequest(terms=terms, k=k, offset=offset, kind=kind))

        return await run_in_threadpool(decode_and_search)

    def _media_or_404(media_id: int):
        if not 1 <= media_id <= MAX_ID:
            raise HTTPException(404, f"no media with id {media_id}")
        m = library.media(media_id)
        if m is None:
            raise HTTPException(404, f"no media with id {media_id}")
        return m

    @app.get("/media/{media_id}", response_model=MediaOut, dependencies=read)
    def media(media_id: int) -> dict:
        return _media_out(_media_or_404(media_id))

    @app.delete("/media/{media_id}", dependencies=write)
    def delete_media(media_id: int) -> dict:
        """Delete a generated image (row, vector, file), e.g. a poor drawing that a repeated
        query would otherwise keep returning. Media from the library's folders answer 409."""
        _media_or_404(media_id)
        try:
            with search_lock:
                deleted = library.delete_generated([media_id])
        except NotGeneratedError as e:
            raise HTTPException(409, str(e)) from e
        for thumbnail in thumbnails.glob(f"{media_id}-*.jpg"):
            thumbnail.unlink(missing_ok=True)
        return {"deleted": deleted}

    def _served_path(m):
        try:
            return safe_path(m.path, library.serving_roots(m))
        except OutsideRootsError as e:
            raise HTTPException(403, str(e)) from e
        except (FileNotFoundError, OSError) as e:
            raise HTTPException(404, f"file of media {m.id} is gone: {m.path}") from e

    @app.get("/media/{media_id}/file", dependencies=read)
    def media_file(media_id: int):
        return FileResponse(_served_path(_media_or_404(media_id)))

    @app.get("/media/{media_id}/thumbnail", dependencies=read)
    def media_thumbnail(media_id: int, t: float | None = Query(None, ge=0, description="Seconds into a video.")):
        m = _media_or_404(media_id)
        path = _served_path(m)
        if m.error or m.kind not in ("image", "video"):
            raise HTTPException(404, f"media {media_id} has no thumbnail")
        if m.kind == "image" and t is not None:
            raise HTTPException(422, "t applies to videos only")
        if m.kind == "video":
            t = (m.duration or 0) / 2 if t is None else t
            if m.duration is not None and t > m.duration:
                raise HTTPException(422, f"t={t} is past the end of the video ({m.duration:.3f} s)")
        suffix = f"-t{round(t * 10)}" if m.kind == "video" else ""  # cached per tenth of a second
        cache = thumbnails / f"{m.id}-{(m.content_hash or 'x')[:16]}{suffix}.jpg"
        if not cache.is_file():
            try:
                jpeg = thumbnail_jpeg(path) if m.kind == "image" else video_thumbnail_jpeg(path, t)
            except (UnreadableImageError, UnreadableVideoError) as e:
                raise HTTPException(404, f"media {media_id} no longer decodes: {e}") from e
            cache.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=cache.parent, suffix=".tmp", delete=False) as tmp:
                tmp.write(jpeg)  # a private temp name: concurrent requests never clash
            os.replace(tmp.name, cache)
        return Response(cache.read_bytes(), media_type="image/jpeg")

    @app.post("/jobs", status_code=202, dependencies=write)
    def start_job(body: JobIn) -> dict:
        try:
            job_id = library.create_job(body.roots)
        except FileNotFoundError as e:
            raise HTTPException(400, str(e)) from e

        def run() -> None:
            try:
                library.run_job(job_id)
            except Exception:  # the job row records the failure; keep the worker alive
                log.exception("index job %d failed", job_id)

        jobs.submit(run)
        return library.job(job_id)

    @app.get("/jobs", dependencies=read)
    def recent_jobs(limit: int = Query(20, ge=1, le=1000)) -> list[dict]:
        """The latest index jobs, newest first (a page reloaded mid-job finds it here)."""
        return library.recent_jobs(limit)

    @app.get("/jobs/{job_id}", dependencies=read)
    def job(job_id: int) -> dict:
        summary = library.job(job_id) if 1 <= job_id <= MAX_ID else None
        if summary is None:
            raise HTTPException(404, f"no job with id {job_id}")
        return summary

    @app.exception_handler(GenerationUnavailable)
    async def _generation_unavailable(_request: Request, exc: GenerationUnavailable):
        return JSONResponse({"detail": str(exc)}, status_code=503)

    @app.exception_handler(GenerationRequestError)
    async def _generation_request_error(_request: Request, exc: GenerationRequestError):
        return JSONResponse({"detail": str(exc)}, status_code=422)

    @app.exception_handler(EncoderError)
    async def _encoder_error(_request: Request, exc: EncoderError):
        return JSONResponse({"detail": str(exc)}, status_code=400)

    app.include_router(clip_retrieval_router(library, search_lock, read))

    @app.get("/metrics", dependencies=read, include_in_schema=False)
    def prometheus_metrics() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html")

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    app.state.library = library
    return app
