"""Exact re-scoring of a compressed index's candidates: an index holding SQ8 or PQ codes
(chosen when float32 vectors do not fit the memory budget) returns RERANK_FACTOR times the
hits asked for, scored from its codes; their float16 vectors, which SQL holds anyway, are
read back and the top k are taken by exact inner product. Compression then costs little
recall for a few hundred microseconds of SQL per query."""

from __future__ import annotations

import re

import numpy as np

from .store import Store

RERANK_FACTOR = 4
RERANK_WIDEN_MAX_K = 256  # deeper reads (a filtered search widening) are re-scored without widening


def candidates_for(k: int) -> int:
    """How many hits to take from the codes for k re-scored ones."""
    return k * RERANK_FACTOR if k <= RERANK_WIDEN_MAX_K else k


def holds_codes(factory: str) -> bool:
    """Whether an index of `factory` scores from lossy codes (SQ, PQ) rather than the vectors."""
    return re.search(r",(SQ\d|PQ\d)", factory) is not None


def rerank_exact(store: Store, queries: np.ndarray, ids: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per query row, the k best of its candidate `ids` (-1: none) by exact inner product with
    the stored vectors: (scores (n, k) float32, -inf where empty; ids (n, k) int64, -1)."""
    queries = np.atleast_2d(np.asarray(queries, np.float32))
    found = store.vectors_by_id(sorted({int(i) for i in ids.reshape(-1) if i >= 0}))
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
