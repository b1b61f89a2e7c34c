"""Query -> vector -> ANN -> SQL lookup -> group by media -> filters -> page of hits."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
from sqlalchemy import select

from ..capture_time import taken_iso
from ..storage.index_set import IndexSet
from ..storage.store import Media, Store, Vector, decode_embeddings
from .hybrid import hybrid_page, newest_first
from .keywords import KeywordSearch
from .media_filters import passes_media_filters
from .moments import best_moment
from .prefilter import Prefilter
from .query import MODES, SORTS, MediaNotFoundError, QueryError, SearchRequest, Term, combine
from .rerank import reranked_page

log = logging.getLogger(__name__)

MEDIA_KINDS = ("image", "video", "any")
# Vector kinds searched for each media kind: a video scores the best of its pooled vector
# and its segments' vectors.
VECTOR_KINDS = {"image": ("image",), "video": ("video", "segment"), "any": ("image", "video", "segment")}
MAX_FETCH = 20_000  # most vectors one kind's search reads, unless the first round asks for more
_SQL_CHUNK = 900  # ids bound in one IN (...): SQLite limits the parameters of a statement


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
    rerank_score: float | None = None  # P(match) from a rerank (search/rerank.py); score stays the cosine
    taken_at: str | None = None  # ISO 8601, the clock where it was taken (with its offset when known)
    camera: str | None = None
    gps: list[float] | None = None  # [lat, lon]
    place: str | None = None
    found_by: str = "vector"  # vector | keyword | both (search/hybrid.py)

    @classmethod
    def of(cls, m: Media, score: float, via: str) -> "Hit":
        return cls(
            id=m.id,
            path=m.path,
            kind=m.kind,
            score=round(score, 6),
            generated=m.generated,
            via="generated" if m.generated else via,
            taken_at=taken_iso(m.taken_at, m.taken_offset),
            camera=camera_name(m.camera_make, m.camera_model),
            gps=[m.gps_lat, m.gps_lon] if m.gps_lat is not None and m.gps_lon is not None else None,
            place=m.place,
        )


def camera_name(make: str | None, model: str | None) -> str | None:
    """'Canon EOS 5D' from ('Canon', 'Canon EOS 5D'); 'NIKON D750' from ('NIKON CORPORATION', 'NIKON D750');
    the make and the model joined when the model does not name the make."""
    if not model:
        return make
    if not make or model.lower().startswith(make.split()[0].lower()):
        return model
    return f"{make} {model}"


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
        self.prefilter = Prefilter(store, indexes)
        self.keywords = KeywordSearch(store)

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

    def media_vectors(self, media_ids: list[int]) -> np.ndarray:
        """media_vector of many media items at once, (len(media_ids), dim), in their order: a
        few SQL queries instead of two per item (deduplicating 10,000 results reads 10,000)."""
        if not media_ids:
            return np.zeros((0, self.indexes.dim), np.float32)
        media: dict[int, Media] = self.store.media_by_id(list(dict.fromkeys(media_ids)))
        first: dict[int, tuple[int, int, bytes]] = {}  # media id -> (vector id, dim, embedding)
        wanted = {("video" if m.kind == "video" else "image", m.id) for m in media.values()}
        spaces = {kind: self.indexes.space_of(kind) for kind in ("image", "video")}
        ids = list(media)
        with self.store.session() as s:
            for start in range(0, len(ids), _SQL_CHUNK):
                for row in s.execute(
                    select(Vector.id, Vector.media_id, Vector.kind, Vector.space, Vector.dim, Vector.embedding).where(
                        Vector.media_id.in_(ids[start : start + _SQL_CHUNK]), Vector.kind.in_(("image", "video"))
                    )
                ):
                    if (row.kind, row.media_id) in wanted and row.space == spaces[row.kind]:
                        if row.media_id not in first or row.id < first[row.media_id][0]:
                            first[row.media_id] = (row.id, row.dim, row.embedding)
        for media_id in media_ids:
            if media_id not in media:
                raise MediaNotFoundError(f"no media with id {media_id}")
            if media_id not in first:
                error = media[media_id].error
                raise QueryError(
                    f"media {media_id} has no embedding in this model's space" + (f" ({error})" if error else "")
                )
        rows = [first[i] for i in media_ids]
        return decode_embeddings([emb for _, _, emb in rows], rows[0][1])

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
        if req.sort not in SORTS:
            raise QueryError(f"sort must be one of {SORTS}")
        if req.mode not in MODES:
            raise QueryError(f"mode must be one of {MODES}")
        return self.search_query(self.query_vectors(req.terms, req.kind), req)

    def search_query(self, q: QueryVectors, req: SearchRequest) -> list[Hit]:
        """The page of hits in the request's mode: the query vectors' (search_vectors), its
        words', or both fused (search/hybrid.py)."""
        return hybrid_page(self, q, req)

    def search_vectors(self, q: QueryVectors, req: SearchRequest) -> list[Hit]:
        """The page of hits for query vectors, ranked as an exact filtered search ranks them
        (up to the ANN index's own approximation).

        The filters are resolved in SQL first, to the ids of each vector kind they leave, and
        each kind is searched within its ids alone (search/prefilter.py). Each kind is read in
        widening rounds, for what no filter tells beforehand: how many of its top vectors
        collapse into one media item (a video's segments) or belong to media deleted since. A
        kind is settled when nothing it has not yet returned could enter the page: it returned
        all it holds, or its lowest score fetched is below min_score, or below the page's last
        score once the page is full. The page is final only when every kind is settled: one
        kind filling the page says nothing of another kind's unread candidates. No kind reads
        past MAX_FETCH vectors (or the first round's size, when a large page asks for more);
        then the page is the best found."""
        if not (np.all(np.isfinite(q.main)) and np.all(np.isfinite(q.video))):
            raise QueryError("the query vector has non-finite values")
        if req.rerank is not None:  # the first rerank_top hits reordered, then the page (search/rerank.py)
            return reranked_page(self, q, req)
        wanted = req.offset + req.k
        fetch = max(4 * wanted, 32)
        cap = max(MAX_FETCH, fetch)
        subsets = self.prefilter.subsets(req, VECTOR_KINDS[req.kind])  # None: no filter
        rounds = {
            kind: _KindFetch(len(subsets[kind]) if subsets else self.indexes.size(kind), fetch)
            for kind in VECTOR_KINDS[req.kind]
        }
        media: dict[int, Media] = {}
        while True:
            for kind, r in rounds.items():
                if r.pending:
                    self._fetch(q, kind, r, subsets[kind] if subsets else None)
            hits, scores = self._rank(q, _best_per_media(rounds.values()), media, req)
            page_last = scores[wanted - 1] if len(scores) >= wanted else None
            for r in rounds.values():
                r.settle(req.min_score, page_last)
            if all(r.settled for r in rounds.values()):
                break
            if not any([r.widen(cap) for r in rounds.values()]):
                log.debug("search read %d vectors of a kind without settling the page: best found returned", cap)
                break
        page = (newest_first(hits[:wanted]) if req.sort == "date" else hits)[req.offset : wanted]
        self.add_moments(q.main, page)
        return page

    def _fetch(self, q: QueryVectors, kind: str, r: "_KindFetch", subset) -> None:
        """Read the kind's top r.fetch vectors (within `subset`, when the request filters),
        with the media owning each."""
        k = min(r.fetch, r.size)
        r.pending = False
        if k < 1:
            r.scores, r.owners, r.complete = np.zeros(0, np.float32), [], True
            return
        vector = q.video if kind == "video" else q.main
        if subset is not None:
            r.scores, found = self.prefilter.search(kind, vector, k, subset)
            vids = found.tolist()
        else:
            scores, ids = self.indexes.search(kind, vector[None, :], k)
            live = ids[0] >= 0
            vids, r.scores = ids[0][live].tolist(), scores[0][live]
        owners = self.store.media_of_vectors(vids)
        r.owners = [owners.get(v) for v in vids]  # None: deleted in SQL after the index answered
        # Fewer than asked: the index has nothing more to give (for IVF, in the lists it probes).
        r.complete = k >= r.size or len(vids) < k

    def _rank(
        self, q: QueryVectors, best: dict[int, float], media: dict[int, Media], req: SearchRequest
    ) -> tuple[list[Hit], list[float]]:
        """Hits passing the filters, best first (ties by media id), and their unrounded scores.
        `media` caches rows across rounds."""
        missing = [i for i in best if i not in media]
        if missing:
            media.update(self.store.media_by_id(missing))
        hits, scores = [], []
        for media_id, score in sorted(best.items(), key=lambda kv: (-kv[1], kv[0])):
            m = media.get(media_id)
            if m is None or not self._passes(m, score, req):
                continue
            scores.append(score)
            hits.append(Hit.of(m, score, q.via))
        return hits, scores

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
        return [Hit.of(m, scores[m.id], via) for m in (media[i] for i in media_ids if i in media)]

    def scored_hits(self, q: QueryVectors, media_ids: list[int]) -> dict[int, Hit]:
        """Hits for media found otherwise than by their vectors (their words), scored by their
        embedding against the query; media with no embedding in this space are left out."""
        media = self.store.media_by_id(media_ids)
        try:
            vectors = dict(zip(media_ids, self.media_vectors(media_ids)))
        except QueryError:  # one has no embedding here (a file indexed by another model only)
            vectors = {}
            for media_id in media_ids:
                try:
                    vectors[media_id] = self.media_vector(media_id)
                except QueryError:
                    pass
        return {
            i: Hit.of(media[i], float(v @ (q.video if media[i].kind == "video" else q.main)), q.via)
            for i, v in vectors.items()
            if i in media
        }

    @staticmethod
    def _passes(m: Media, score: float, req: SearchRequest) -> bool:
        if req.min_score is not None and score < req.min_score:
            return False
        if req.kind != "any" and m.kind != req.kind:
            return False
        return passes_media_filters(m, req)


@dataclass
class _KindFetch:
    """One vector kind's candidates so far: the top `fetch` of its `size` vectors, their
    scores (descending) and owning media ids."""

    size: int
    fetch: int
    scores: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    owners: list[int | None] = field(default_factory=list)
    pending: bool = True  # to be (re)read at `fetch`
    complete: bool = False  # every vector of the kind the index can give was read
    settled: bool = False  # no unread vector of the kind can change the page

    def settle(self, min_score: float | None, page_last: float | None) -> None:
        # An unread vector scores at most `lowest`; tying the page's last score, it could
        # still enter before it by media id, so settling needs strictly below.
        lowest = float(self.scores[-1]) if len(self.scores) else float("inf")
        self.settled = (
            self.complete
            or (min_score is not None and lowest < min_score)
            or (page_last is not None and lowest < page_last)
        )

    def widen(self, cap: int) -> bool:
        """Read four times deeper next round, up to `cap`; False when settled or at the cap."""
        if self.settled or self.fetch >= min(cap, self.size):
            return False
        self.fetch, self.pending = min(self.fetch * 4, cap), True
        return True


def _best_per_media(fetches) -> dict[int, float]:
    """Each media item's best score over the fetched vectors of every kind."""
    best: dict[int, float] = {}
    for f in fetches:
        for media_id, score in zip(f.owners, f.scores.tolist()):
            if media_id is not None and (media_id not in best or score > best[media_id]):
                best[media_id] = score
    return best
