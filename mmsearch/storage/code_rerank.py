"""Exact re-scoring of a compressed index's candidates: an index holding SQ8 or PQ codes
(chosen when float32 vectors do not fit the memory budget) returns RERANK_FACTOR times the
hits asked for, scored from its codes; their float16 vectors, which SQL holds anyway, are
read back (from SQL in a library: Store.vectors_by_id) and the top k are taken by exact
inner product. Compression then costs little recall for a few hundred microseconds of SQL per
query."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

import numpy as np

# ids -> {id: vector} of those still stored (Store.vectors_by_id)
Fetch = Callable[[Sequence[int]], dict[int, np.ndarray]]

# PQ128 codes of bench_ann's 1M clustered vectors: 4x candidates kept recall@10 0.953 of the
# lists' 0.978 at nprobe 16 (text-like 0.927 of 0.942); 10x kept all of it (session 21)
RERANK_FACTOR = 10
RERANK_WIDEN_MAX_K = 256  # deeper reads (a filtered search widening) are re-scored without widening


def candidates_for(k: int) -> int:
    """How many hits to take from the codes for k re-scored ones."""
    return k * RERANK_FACTOR if k <= RERANK_WIDEN_MAX_K else k


def holds_codes(factory: str) -> bool:
    """Whether an index of `factory` scores from lossy codes (SQ, PQ) rather than the vectors."""
    return re.search(r",(SQ\d|PQ\d)", factory) is not None


def search_depth(factory: str, k: int) -> int:
    """Hits to take from an index of `factory` for k served: more from one of codes."""
    return candidates_for(k) if holds_codes(factory) else k


def as_served(factory: str, fetch: Fetch, queries, found: tuple[np.ndarray, np.ndarray], k: int):
    """The top k of an index's (scores, ids) as a search serves them: those of an index of
    codes re-scored exactly from the vectors `fetch` gives."""
    return rerank_exact(fetch, queries, found[1], k) if holds_codes(factory) else found


def rerank_exact(fetch: Fetch, queries: np.ndarray, ids: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per query row, the k best of its candidate `ids` (-1: none) by exact inner product with
    the vectors `fetch` gives: (scores (n, k) float32, -inf where empty; ids (n, k) int64, -1)."""
    queries = np.atleast_2d(np.asarray(queries, np.float32))
    found = fetch(sorted({int(i) for i in ids.reshape(-1) if i >= 0}))
    scores = np.full((len(queries), k), -np.inf, np.float32)
    best = np.full((len(queries), k), -1, np.int64)
    for row, (q, candidates) in enumerate(zip(queries, ids)):
        held = [int(i) for i in candidates if int(i) in found]  # a row deleted since the index answered drops out
        if not held:
            continue
        exact = np.stack([found[i] for i in held]) @ q
        top = np.argsort(-exact, kind="stable")[:k]
        scores[row, : len(top)], best[row, : len(top)] = exact[top], np.asarray(held)[top]
    return scores, best
