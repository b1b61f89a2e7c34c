"""Rerank: the first hits of a text query scored again by BLIP's image-text matching head.

The engine ranks by the cosine of two embeddings made apart. BLIP's ITM head reads the
caption and the picture together (the text attends to the image's patches) and gives
P(match), a finer judge, but at the cost of a forward pass per image: so it reorders only
the first `rerank_top` hits of the cosine ranking, and the page is cut from that order.
An image hit is scored on its file, a video hit on the keyframe of the segment holding its
matching moment. The hits' `score` stays the cosine; `rerank_score` holds P(match). Hits
whose picture no longer decodes (or a video without keyframes) follow the scored ones, in
their cosine order; hits past the first `rerank_top` keep their place.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image
from sqlalchemy import select

from ..imageio import UnreadableImageError, decode_rgb
from ..storage.store import Segment, Store
from .query import RERANK_METHODS, RERANK_TOP_MAX, QueryError, SearchRequest

if TYPE_CHECKING:
    from .engine import Hit, QueryVectors, SearchEngine

IMAGE_SIDE = 512  # pictures are shrunk to this shorter side as they decode (BLIP reads 384 x 384)


def rerank_text(req: SearchRequest, encoder) -> str:
    """The caption the ITM head scores each picture against: the query's text terms, joined.
    QueryError when the request's rerank cannot run: an unknown method, a top out of range,
    an encoder without an ITM head, or a query that is not plain text."""
    if req.rerank not in RERANK_METHODS:
        raise QueryError(f"rerank must be one of {RERANK_METHODS}, not {req.rerank!r}")
    if not 1 <= req.rerank_top <= RERANK_TOP_MAX:
        raise QueryError(f"rerank_top must be between 1 and {RERANK_TOP_MAX}, not {req.rerank_top}")
    if not callable(getattr(encoder, "itm_scores", None)):
        raise QueryError(
            f"rerank {req.rerank!r} needs a BLIP library (a blip: model): this library's model "
            f"{getattr(encoder, 'name', type(encoder).__name__)} has no image-text matching head"
        )
    texts = [t.text for t in req.terms if t.text is not None]
    if not texts or len(texts) != len(req.terms) or any(t.weight <= 0 for t in req.terms):
        raise QueryError(
            f"rerank {req.rerank!r} needs a text query of text terms only, none of them negative: "
            "the image-text matching head scores one caption against each picture"
        )
    return ", ".join(texts)


def reranked_page(engine: "SearchEngine", q: "QueryVectors", req: SearchRequest) -> list["Hit"]:
    """The page of `req` cut from the first `rerank_top` hits reordered by the ITM head (and
    the cosine ranking after them)."""
    text = rerank_text(req, engine.encoder)
    ranked = engine.search_vectors(q, replace(req, k=max(req.offset + req.k, req.rerank_top), offset=0, rerank=None))
    return rerank_hits(engine.encoder, engine.store, text, ranked, req.rerank_top)[req.offset : req.offset + req.k]


def rerank_hits(encoder, store: Store, text: str, hits: list["Hit"], top: int) -> list["Hit"]:
    """`hits` with the first `top` reordered by encoder.itm_scores(text, their pictures), best
    first; ties and hits without a picture keep their order. Sets each scored hit's rerank_score."""
    head, rest = hits[:top], hits[top:]
    pictures = hit_pictures(store, head)
    scored = [i for i, picture in enumerate(pictures) if picture is not None]
    itm = encoder.itm_scores(text, [pictures[i] for i in scored]) if scored else np.zeros(0, np.float32)
    for i, p in zip(scored, itm.tolist()):
        head[i].rerank_score = round(float(p), 6)
    order = sorted(scored, key=lambda i: -head[i].rerank_score)  # stable: ties keep the cosine order
    unscored = [i for i, picture in enumerate(pictures) if picture is None]
    return [head[i] for i in order + unscored] + rest


def hit_pictures(store: Store, hits: list["Hit"]) -> list[Image.Image | None]:
    """The picture each hit is judged on (None: none that decodes): an image's file, a video's
    keyframe of the segment holding its moment (or its middle segment)."""
    keyframes = _video_keyframes(store, [h for h in hits if h.kind == "video"])
    pictures = []
    for hit in hits:
        path = hit.path if hit.kind == "image" else keyframes.get(hit.id)
        try:
            pictures.append(decode_rgb(path, max_side=IMAGE_SIDE) if path else None)
        except (UnreadableImageError, OSError):  # changed or gone since it was indexed
            pictures.append(None)
    return pictures


def _video_keyframes(store: Store, hits: list["Hit"]) -> dict[int, str]:
    """Per video hit, the keyframe of the segment its moment's middle falls in (the nearest
    segment to it; the middle segment of a hit without a moment)."""
    if not hits:
        return {}
    segments: dict[int, list] = {}
    with store.session() as s:
        for row in s.execute(
            select(Segment.media_id, Segment.t_start, Segment.t_end, Segment.keyframe)
            .where(Segment.media_id.in_([h.id for h in hits]))
            .order_by(Segment.media_id, Segment.t_start)
        ):
            segments.setdefault(row.media_id, []).append(row)
    found = {}
    for hit in hits:
        rows = segments.get(hit.id)
        if not rows:
            continue
        if hit.t_start is None or hit.t_end is None:
            chosen = rows[len(rows) // 2]
        else:
            t = (hit.t_start + hit.t_end) / 2
            chosen = min(rows, key=lambda r: max(r.t_start - t, t - r.t_end, 0.0))  # first of the nearest
        if chosen.keyframe:
            found[hit.id] = chosen.keyframe
    return found


def rerank_stage(req: SearchRequest, encoder) -> dict:
    """How a rerank ran, for the response's stages."""
    return {"stage": "rerank", "method": req.rerank, "model": encoder.name, "top": req.rerank_top}
