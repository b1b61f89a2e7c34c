"""create_app(library) -> FastAPI: search, media, files, thumbnails, index jobs, health."""

from __future__ import annotations

import io
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from fastapi import FastAPI, File, Form, HTTPException, Request, UploadFile
from fastapi.responses import FileResponse, JSONResponse, Response
from PIL import Image, UnidentifiedImageError

from ..encoders.base import EncoderError
from ..library import Library
from ..search.query import QueryError, SearchRequest, Term, parse_text
from .files import OutsideRootsError, safe_path, thumbnail_jpeg
from .schemas import HitOut, JobIn, MediaOut, SearchIn, SearchOut

log = logging.getLogger(__name__)


def _terms(body: SearchIn) -> list[Term]:
    w = body.weights
    terms: list[Term] = []
    if body.text:
        for t in parse_text(body.text):
            t.weight *= w.get("text", 1.0)
            terms.append(t)
    if body.image_media_id is not None:
        terms.append(Term(media_id=body.image_media_id, weight=w.get("image", 1.0)))
    if body.vector is not None:
        terms.append(Term(vector=body.vector, weight=w.get("vector", 1.0)))
    terms.extend(Term(text=t.text, media_id=t.media_id, vector=t.vector, weight=t.weight) for t in body.terms)
    return terms


def _media_out(m) -> dict:
    return MediaOut(id=m.id, path=m.path, kind=m.kind, size=m.size, width=m.width, height=m.height, duration=m.duration,
                    content_hash=m.content_hash, generated=m.generated, generation=m.generation, error=m.error,
                    indexed_at=m.indexed_at, file_url=f"/media/{m.id}/file", thumbnail_url=f"/media/{m.id}/thumbnail").model_dump()


async def _read_limited(upload: UploadFile, limit: int) -> bytes:
    data = await upload.read(limit + 1)
    if len(data) > limit:
        raise HTTPException(413, f"upload is larger than the limit of {limit} bytes")
    return data


def create_app(library: Library) -> FastAPI:
    app = FastAPI(title="mmsearch", version="0.1.0", description="Multimodal search over a media library.")
    settings = library.settings
    jobs = ThreadPoolExecutor(max_workers=1, thread_name_prefix="index-job")  # one job at a time, in order
    search_lock = threading.Lock()

    @app.exception_handler(QueryError)
    async def _query_error(_request: Request, exc: QueryError):
        return JSONResponse({"detail": str(exc)}, status_code=400)

    def _run_search(req: SearchRequest) -> dict:
        t0 = time.perf_counter()
        with search_lock:
            hits = library.search(req)
        threshold = settings.miss_threshold
        miss = not hits or (threshold is not None and hits[0].score < threshold)
        return SearchOut(results=[HitOut(**h.to_dict()) for h in hits], miss=miss, took_ms=(time.perf_counter() - t0) * 1000).model_dump()

    @app.get("/health")
    def health() -> dict:
        from ..search.store import Media, Vector

        return {"status": "ok", "model": library.encoder.name, "space": library.encoder.space,
                "media": library.store.count(Media), "vectors": library.store.count(Vector)}

    @app.post("/search", response_model=SearchOut)
    def search(body: SearchIn) -> dict:
        req = SearchRequest(terms=_terms(body), k=body.k, offset=body.offset, kind=body.kind,
                            path_prefix=body.path_prefix, generated=body.generated, min_score=body.min_score)
        return _run_search(req)

    @app.post("/search/image", response_model=SearchOut)
    async def search_image(
        file: UploadFile = File(..., description="The query image."),
        text: str | None = Form(None, max_length=1000),
        image_weight: float = Form(1.0, ge=-100, le=100),
        kind: str = Form("any", pattern="^(image|video|any)$"),
        k: int = Form(10, ge=1, le=1000),
        offset: int = Form(0, ge=0, le=100_000),
    ) -> dict:
        data = await _read_limited(file, settings.max_upload_bytes)
        try:
            image = Image.open(io.BytesIO(data))
            image.load()
        except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as e:
            raise HTTPException(400, f"the upload is not a readable image: {e}") from e
        terms = parse_text(text) if text else []
        terms.append(Term(image=image, weight=image_weight))
        return _run_search(SearchRequest(terms=terms, k=k, offset=offset, kind=kind))

    def _media_or_404(media_id: int):
        m = library.media(media_id)
        if m is None:
            raise HTTPException(404, f"no media with id {media_id}")
        return m

    @app.get("/media/{media_id}", response_model=MediaOut)
    def media(media_id: int) -> dict:
        return _media_out(_media_or_404(media_id))

    def _served_path(m):
        try:
            return safe_path(m.path, library.roots())
        except OutsideRootsError as e:
            raise HTTPException(403, str(e)) from e
        except (FileNotFoundError, OSError) as e:
            raise HTTPException(404, f"file of media {m.id} is gone: {m.path}") from e

    @app.get("/media/{media_id}/file")
    def media_file(media_id: int):
        return FileResponse(_served_path(_media_or_404(media_id)))

    @app.get("/media/{media_id}/thumbnail")
    def media_thumbnail(media_id: int):
        m = _media_or_404(media_id)
        path = _served_path(m)
        if m.kind != "image" or m.error:
            raise HTTPException(404, f"media {media_id} has no thumbnail")
        cache = library.dir / "thumbnails" / f"{m.id}-{(m.content_hash or 'x')[:16]}.jpg"
        if not cache.is_file():
            cache.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache.with_suffix(".tmp")
            tmp.write_bytes(thumbnail_jpeg(path))
            tmp.replace(cache)
        return Response(cache.read_bytes(), media_type="image/jpeg")

    @app.post("/jobs", status_code=202)
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

    @app.get("/jobs/{job_id}")
    def job(job_id: int) -> dict:
        summary = library.job(job_id)
        if summary is None:
            raise HTTPException(404, f"no job with id {job_id}")
        return summary

    @app.exception_handler(EncoderError)
    async def _encoder_error(_request: Request, exc: EncoderError):
        return JSONResponse({"detail": str(exc)}, status_code=400)

    app.state.library = library
    return app
