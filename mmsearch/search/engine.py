"""Query -> vector -> ANN -> SQL lookup -> group by media -> filters -> page of hits."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable

import numpy as np
from sqlalchemy import select

from ..storage.index_set import IndexSet
from ..storage.store import Media, Store, Vector, decode_embeddings
from .moments import best_moment
from .query import MediaNotFoundError, QueryError, SearchRequest, Term, combine

log = logging.getLogger(__name__)

MEDIA_KINDS = ("image", "video", "any")
# Vector kinds searched for each media kind: a video scores the best of its pooled vector
# and its segments' vectors.
VECTOR_KINDS = {"image": ("image",), "video": ("video", "segment"), "any": ("image", "video", "segment")}
MAX_FETCH = 20_000  # most vectors one search reads; bounds the cost of very selective filters


@dataclass
class Hit:
    id: int
    path: str
    kind: str
    score: float
    t_start: float | None = None
    t_end: float | None = None
    generated: bool = False
    via: str = "text"


@dataclass
class QueryVectors:
    """A query as unit vectors: `main` for image, segment and frame vectors; `video` for
    pooled video vectors, whose text queries pass through the temporal head's query map."""

    main: np.ndarray
    video: np.ndarray
    via: str  # text | image

    @classmethod
    def single(cls, q: np.ndarray, via: str) -> "QueryVectors":
        """The same vector for every kind (an image embedding, the prior's prediction)."""
        return cls(q, q, via)


class SearchEngine:
    def __init__(
        self, store: Store, encoder, indexes: IndexSet, video_text_map: Callable[[np.ndarray], np.ndarray] | None = None
    ):
        self.store, self.encoder, self.indexes = store, encoder, indexes
        self.video_text_map = video_text_map  # None: video queries are the plain ones

    # -- query vectors ----------------------------------------------------------------------
    def media_vector(self, media_id: int) -> np.ndarray:
        """The stored embedding of an indexed media item (an image's vector, a video's pooled one)."""
        with self.store.session() as s:
            media = s.get(Media, media_id)
            if media is None:
                raise MediaNotFoundError(f"no media with id {media_id}")
            kind = "video" if media.kind == "video" else "image"
            row = s.scalars(
                select(Vector)
                .where(Vector.media_id == media_id, Vector.kind == kind, Vector.space == self.indexes.space_of(kind))
                .order_by(Vector.id)
                .limit(1)
            ).first()
            if row is None:
                raise QueryError(
                    f"media {media_id} has no embedding in this model's space"
                    + (f" ({media.error})" if media.error else "")
                )
            return decode_embeddings([row.embedding], row.dim)[0]

    def query_vectors(self, terms: list[Term], kind: str) -> QueryVectors:
        """The query's unit vectors from weighted terms for a search of `kind`, and what they
        came from. The video query map applies to video searches only: it was trained on
        video captions against videos alone, and beside images it lifts short phrases'
        scores against unrelated videos above matching images."""
        if not terms:
            raise QueryError("nothing to search with: give text, an image, a media id or a vector")
        vectors, weights, via = [], [], "text"
        texts = [t for t in terms if t.text is not None]
        text_vectors = (
            self.encoder.embed_texts([t.text for t in texts]) if texts else np.zeros((0, self.encoder.dim), np.float32)
        )
        weights.extend(t.weight for t in texts)
        for t in terms:
            if t.image is not None:
                vectors.append(self.encoder.embed_images([t.image])[0])
            elif t.media_id is not None:
                vectors.append(self.media_vector(t.media_id))
            elif t.vector is not None:
                v = np.asarray(t.vector, np.float32).reshape(-1)
                if v.shape[0] != self.encoder.dim:
                    raise QueryError(f"vector has {v.shape[0]} dimensions; this library's model has {self.encoder.dim}")
                vectors.append(v / max(float(np.linalg.norm(v)), 1e-12))
            else:
                continue
            weights.append(t.weight)
            if not texts:
                via = "image"
        return QueryVectors(
            combine([*text_vectors, *vectors], weights),
            combine([*self._video_texts(text_vectors, kind), *vectors], weights),
            via,
        )

    def _video_texts(self, text_vectors: np.ndarray, kind: str) -> np.ndarray:
        mapped = self.video_text_map is not None and kind == "video"
        return self.video_text_map(text_vectors) if mapped else text_vectors

    # -- search -----------------------------------------------------------------------------
    def search(self, req: SearchRequest) -> list[Hit]:
        if req.kind not in MEDIA_KINDS:
            raise QueryError(f"kind must be one of {MEDIA_KINDS}")
        if req.k < 1 or req.offset < 0:
            raise QueryError("k must be >= 1 and offset >= 0")
        return self.search_vectors(self.query_vectors(req.terms, req.kind), req)

    def search_vectors(self, q: QueryVectors, req: SearchRequest) -> list[Hit]:
        if not (np.all(np.isfinite(q.main)) and np.all(np.isfinite(q.video))):
            raise QueryError("the query vector has non-finite values")
        wanted = req.offset + req.k
        kinds = VECTOR_KINDS[req.kind]
        total = sum(self.indexes.size(kind) for kind in kinds)
        fetch = min(max(4 * wanted, 32), total)
        while fetch:
            hits, lowest = self._collect(q, kinds, fetch, req)
            # Filters and grouping can eat candidates: widen the ANN search until the page
            # fills, the index is exhausted, the scores fall below min_score, or the cap.
            exhausted = fetch >= total or (req.min_score is not None and lowest < req.min_score)
            if len(hits) >= wanted or exhausted or fetch >= MAX_FETCH:
                page = hits[req.offset : wanted]
                self.add_moments(q.main, page)
                return page
            fetch = min(fetch * 4, total, MAX_FETCH)
        return []

    def _collect(
        self, q: QueryVectors, kinds: tuple[str, ...], fetch: int, req: SearchRequest
    ) -> tuple[list[Hit], float]:
        """Hits from the top `fetch` vectors, best per media; and the lowest score fetched."""
        best: dict[int, float] = {}
        lowest = float("inf")
        for kind in kinds:
            vector = q.video if kind == "video" else q.main
            scores, ids = self.indexes.search(kind, vector[None, :], fetch)
            found = ids[0] >= 0
            owners = self.store.media_of_vectors(ids[0][found].tolist())
            for vid, score in zip(ids[0][found], scores[0][found]):
                lowest = min(lowest, float(score))
                media_id = owners.get(int(vid))
                if media_id is not None and (media_id not in best or score > best[media_id]):
                    best[media_id] = float(score)  # (None: deleted in SQL after the index answered)
        media = self.store.media_by_id(list(best))
        hits = []
        for media_id, score in sorted(best.items(), key=lambda kv: (-kv[1], kv[0])):
            m = media.get(media_id)
            if m is None or not self._passes(m, score, req):
                continue
            hits.append(
                Hit(
                    id=m.id,
                    path=m.path,
                    kind=m.kind,
                    score=round(score, 6),
                    generated=m.generated,
                    via="generated" if m.generated else q.via,
                )
            )
        return hits, lowest

    def add_moments(self, q: np.ndarray, hits: list[Hit]) -> None:
        """Give each video hit the moment that matches the query best."""
        for hit in hits:
            if hit.kind == "video":
                moment = best_moment(self.store, self.indexes.space, hit.id, q)
                if moment:
                    hit.t_start, hit.t_end = moment

    def hits_for_media(self, q: np.ndarray, media_ids: list[int], via: str) -> list[Hit]:
        """Hits for given images (e.g. just generated), scored against the query vector."""
        space = self.indexes.space_of("image")
        with self.store.session() as s:
            rows = s.execute(
                select(Vector.media_id, Vector.dim, Vector.embedding).where(
                    Vector.media_id.in_(media_ids), Vector.kind == "image", Vector.space == space
                )
            ).all()
        scores = {mid: float(decode_embeddings([emb], dim)[0] @ q) for mid, dim, emb in rows}
        media = self.store.media_by_id(list(scores))
        return [
            Hit(id=m.id, path=m.path, kind=m.kind, score=round(scores[m.id], 6), generated=m.generated, via=via)
            for m in (media[i] for i in media_ids if i in media)
        ]

    @staticmethod
    def _passes(m: Media, score: float, req: SearchRequest) -> bool:
        if req.min_score is not None and score < req.min_score:
            return False
        if req.kind != "any" and m.kind != req.kind:
            return False
        if req.path_prefix and not m.path.startswith(req.path_prefix):
            return False
        if req.generated is not None and m.generated != req.generated:
            return False
        return True
