"""Hybrid search: a text query runs both ways, through its embedding (the ANN search) and
through its words (search/keywords.py), and the two rankings are fused by reciprocal rank
fusion: a media item scores sum(1 / (RRF_K + rank)) over the rankings that found it, so one
found by both sides rises above one found by either.

Modes: `vector` (the embedding alone), `keyword` (the words alone), `hybrid` (both; the
default). A query that is one quoted term (`"IMG_2041"`) is searched by its words alone, as
a phrase. A hit's `score` stays the cosine of its embedding with the query (a hit found by
its words alone is scored too); `found_by` says which side found it: the embedding's top
(`vector`), the words (`keyword`) or both. Only the positive text terms give words
('"red circle" - "white background"' searches the words red and circle).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

from .query import QueryError, SearchRequest

RRF_K = 60  # the constant of Cormack et al. (2009): it damps the weight of the very first ranks


def keyword_text(req: SearchRequest) -> tuple[str | None, bool]:
    """The words a request searches and whether they are one phrase (a lone quoted term)."""
    texts = [t for t in req.terms if t.text is not None and t.weight > 0]
    if not texts:
        return None, False
    return " ".join(t.text for t in texts), len(req.terms) == 1 and texts[0].quoted


def effective_mode(req: SearchRequest, phrase: bool) -> str:
    return "keyword" if phrase and req.mode == "hybrid" else req.mode


def fuse(rankings: dict[str, list[int]]) -> list[tuple[int, str]]:
    """(media id, ranked by) by reciprocal rank fusion of named rankings, best first; ties by
    the first ranking's order, then id. ranked by: the ranking's name, or "both".
    """
    fused: dict[int, float] = {}
    found: dict[int, set[str]] = {}
    for name, ids in rankings.items():
        for rank, media_id in enumerate(ids, 1):
            fused[media_id] = fused.get(media_id, 0.0) + 1.0 / (RRF_K + rank)
            found.setdefault(media_id, set()).add(name)
    first = {media_id: i for i, media_id in enumerate(next(iter(rankings.values()), []))}
    order = sorted(fused, key=lambda i: (-fused[i], first.get(i, len(first)), i))
    return [(i, "both" if len(found[i]) > 1 else next(iter(found[i]))) for i in order]


def hybrid_page(engine, q, req: SearchRequest) -> list:
    """The page of hits of a request in its mode (engine: a SearchEngine)."""
    words, phrase = keyword_text(req)
    mode = effective_mode(req, phrase)
    if mode == "keyword" and (words is None or not engine.keywords.available):
        raise QueryError(
            "keyword search needs query text"
            if words is None
            else "keyword search needs an SQLite or PostgreSQL library"
        )
    if mode == "vector" or words is None or req.rerank is not None or not engine.keywords.available:
        return engine.search_vectors(q, req)  # a rerank reorders the embedding's ranking alone
    wanted = req.offset + req.k
    keyword_ids = engine.keywords.search(words, req, wanted, phrase)
    vector_hits = [] if mode == "keyword" else engine.search_vectors(q, replace(req, k=wanted, offset=0, sort="score"))
    by_id = {h.id: h for h in vector_hits}
    by_id.update(engine.scored_hits(q, [i for i in keyword_ids if i not in by_id]))
    # The vector side ranks every candidate by its score, the ones found by words alone too
    # (below its own top when they score lower): a file named by the query and ranked 8th by
    # its embedding is then found by both sides, not tied with the embedding's first hit.
    by_score = sorted(by_id.values(), key=lambda h: (-h.score, h.id))
    rankings = {"vector": [h.id for h in by_score]} if mode == "hybrid" else {}
    rankings["keyword"] = [i for i in keyword_ids if i in by_id]
    searched = {"vector": {h.id for h in vector_hits}, "keyword": set(keyword_ids)}
    hits = []
    for media_id, _ in fuse(rankings):
        sides = [side for side, ids in searched.items() if media_id in ids]
        hits.append(replace(by_id[media_id], found_by="both" if len(sides) == 2 else sides[0]))
    page = (newest_first(hits) if req.sort == "date" else hits)[req.offset : wanted]
    engine.add_moments(q.main, [h for h in page if h.kind == "video" and h.t_start is None])
    return page


def newest_first(hits: list) -> list:
    """The hits by capture time, newest first (by the clock where each was taken); undated
    ones after, in their order."""
    dated = [h for h in hits if h.taken_at is not None]
    undated = [h for h in hits if h.taken_at is None]
    return (
        sorted(dated, key=lambda h: dt.datetime.fromisoformat(h.taken_at).replace(tzinfo=None), reverse=True) + undated
    )
