"""clip-retrieval compatibility: /knn-service, /metadata and /indices-list in the shapes of
clip-retrieval's "clip back", so its ClipClient and its web front end can use an mmsearch
server.

Indices are the library's media kinds: "image" (the default, as clip back's first index),
"video" and "any". Ids are media ids. Only the image modality exists: mmsearch embeds
media, not their captions, so a request for the text index is refused (400) rather than
answered from another index. Where clip back answers 500, these endpoints answer 4xx with
a reason. The safety, violence, aesthetic and mclip options are accepted and ignored.
"""

from __future__ import annotations

import base64
import binascii
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

import numpy as np
from fastapi import APIRouter, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field, ValidationError

from ..imageio import UnreadableImageError
from ..search.dedup import keep_distinct
from ..search.query import SearchRequest, Term
from .schemas import MAX_ID
from .state import AppState
from .uploads import decode_query_image
from .urls import file_url, thumbnail_url

INDICES = ["image", "video", "any"]
DEDUP_SIMILARITY = 0.94  # clip back's threshold: results closer than this to a better one are dropped


class KnnIn(BaseModel):
    text: str | None = Field(None, max_length=1000)
    image: str | None = Field(None, description="A base64-encoded image.")
    image_url: str | None = Field(None, max_length=2048)
    embedding_input: list[float] | None = Field(None, min_length=1, max_length=8192)
    modality: str = Field(..., description='"image": the media index; "text" (a caption index) does not exist here.')
    num_images: int = Field(..., ge=1, le=1000)
    num_result_ids: int | None = Field(None, ge=1, le=10_000)
    indice_name: str | None = None
    deduplicate: bool = False
    use_mclip: bool = False
    use_safety_model: bool = False
    use_violence_detector: bool = False
    aesthetic_score: int | str | None = None
    aesthetic_weight: float | str | None = None


class MetadataIn(BaseModel):
    ids: list[int] = Field(..., max_length=10_000)
    indice_name: str | None = None


async def _json_body(request: Request, model: type[BaseModel]) -> BaseModel:
    """clip back reads the body as JSON whatever its Content-Type (ClipClient sends none,
    the front end text/plain), so FastAPI's content-type check is bypassed here."""
    raw = await request.body()
    try:
        return model.model_validate_json(raw or b"{}")
    except ValidationError as e:
        # Without the input: a malformed body echoed back may hold bytes that JSON cannot carry.
        raise HTTPException(422, e.errors(include_url=False, include_context=False, include_input=False)) from e


def _kind(indice_name: str | None) -> str:
    if indice_name is None:
        return INDICES[0]
    if indice_name not in INDICES:
        raise HTTPException(400, f"no index named {indice_name!r}; indices: {INDICES}")
    return indice_name


def fetch_image_url(url: str, max_bytes: int, timeout_s: float) -> bytes:
    """GET an http(s) URL with size and time limits; refuses other schemes."""
    scheme = urllib.parse.urlsplit(url).scheme.lower()
    if scheme not in ("http", "https"):
        raise HTTPException(400, "image_url must be an http or https URL")
    try:
        with urllib.request.urlopen(
            urllib.request.Request(url, headers={"User-Agent": "mmsearch"}), timeout=timeout_s
        ) as resp:
            data = resp.read(max_bytes + 1)
    except (urllib.error.URLError, OSError, ValueError) as e:
        raise HTTPException(400, f"could not fetch image_url: {e}") from e
    if len(data) > max_bytes:
        raise HTTPException(413, f"image_url is larger than the limit of {max_bytes} bytes")
    return data


def _query_term(body: KnnIn, library) -> Term:
    """clip back's precedence: text, then image, then image_url, then embedding_input."""
    settings = library.settings
    if body.text:
        return Term(text=body.text)
    if body.image or body.image_url:
        if body.image:
            try:
                data = base64.b64decode(body.image, validate=False)
            except (binascii.Error, ValueError) as e:
                raise HTTPException(400, f"image is not base64: {e}") from e
            if len(data) > settings.max_upload_bytes:
                raise HTTPException(413, f"image is larger than the limit of {settings.max_upload_bytes} bytes")
        else:
            if not settings.allow_image_url:
                raise HTTPException(
                    400, "image_url queries are disabled on this server (MMSEARCH_ALLOW_IMAGE_URL=true enables them)"
                )
            data = fetch_image_url(body.image_url, settings.max_upload_bytes, settings.image_url_timeout_s)
        try:
            return Term(image=decode_query_image(data, settings.max_pixels))
        except UnreadableImageError as e:
            raise HTTPException(400, f"the query image is not readable: {e}") from e
    if body.embedding_input:
        return Term(vector=np.asarray(body.embedding_input, np.float32))
    raise HTTPException(400, "give one of text, image, image_url and embedding_input")


def _deduplicate(vectors: np.ndarray) -> list[int]:
    """Positions of the results to keep: a result goes when a better-ranked kept one is a near
    copy (blocked matrix products: 10,000 results in well under a second; see search.dedup)."""
    return keep_distinct(vectors, DEDUP_SIMILARITY)


class ClipRetrievalMetadata:
    """image_path, url and caption of a media item, as clip back's metadata columns."""

    def __init__(self, library, base_url: str):
        self.library, self.base_url = library, base_url.rstrip("/")

    def of(self, m, t_start: float | None = None) -> dict[str, Any]:
        # clip front shows `url` as an <img>: a video is shown by its frame at the moment.
        if m.kind == "video":
            url = self.base_url + thumbnail_url(m.id, 0.0 if t_start is None else t_start)
        else:
            url = self.base_url + file_url(m.id)
        return {"image_path": m.path, "url": url, "caption": self.library.caption(m)}


def clip_retrieval_router(state: AppState) -> APIRouter:
    router = APIRouter(tags=["clip-retrieval compatibility"], dependencies=state.read)
    library = state.library

    @router.get("/indices-list")
    def indices_list() -> list[str]:
        return INDICES

    @router.post(
        "/knn-service",
        openapi_extra={"requestBody": {"content": {"application/json": {"schema": KnnIn.model_json_schema()}}}},
    )
    async def knn_service(request: Request) -> list[dict]:
        """clip back's k-NN query; each result: {id, similarity, image_path, url, caption}
        (results past num_images carry only id and similarity, as in clip back)."""
        body = await _json_body(request, KnnIn)
        if body.modality != "image":
            raise HTTPException(
                400, f'modality {body.modality!r} is not served: mmsearch indexes media, not captions; use "image"'
            )
        kind = _kind(body.indice_name)
        wanted = max(body.num_result_ids or body.num_images, body.num_images)
        base_url = str(request.base_url)

        def run() -> list[dict]:
            term = _query_term(body, library)
            hits = library.search(SearchRequest(terms=[term], k=wanted, kind=kind, mode="vector"))  # as clip-retrieval
            if body.deduplicate and hits:
                vectors = library.media_vectors([h.id for h in hits])
                hits = [hits[i] for i in _deduplicate(vectors)]
            describe = ClipRetrievalMetadata(library, base_url)
            shown = library.media_many([h.id for h in hits[: body.num_images]])
            out = []
            for n, h in enumerate(hits):
                item: dict[str, Any] = {"id": h.id, "similarity": h.score}
                if n < body.num_images and h.id in shown:
                    item = describe.of(shown[h.id], h.t_start) | item
                out.append(item)
            return out

        return await run_in_threadpool(run)

    @router.post(
        "/metadata",
        openapi_extra={"requestBody": {"content": {"application/json": {"schema": MetadataIn.model_json_schema()}}}},
    )
    async def metadata(request: Request) -> list[dict]:
        """{ids, indice_name} -> [{id, metadata: {image_path, url, caption}}] in the order of
        ids; ids that name no media are left out."""
        body = await _json_body(request, MetadataIn)
        _kind(body.indice_name)
        describe = ClipRetrievalMetadata(library, str(request.base_url))

        def run() -> list[dict]:
            found = library.media_many([i for i in body.ids if 1 <= i <= MAX_ID])
            return [{"id": i, "metadata": describe.of(found[i])} for i in body.ids if i in found and not found[i].error]

        return await run_in_threadpool(run)

    return router
