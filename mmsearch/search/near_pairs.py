"""Each vector's nearest neighbours among the others, kept where their inner product reaches a
threshold (a similarity self-join), in time near-linear in their number: the candidates for
near-duplicate media.

A vector's K nearest are its candidates, whatever the threshold: a model that finds many
images alike (the built-in mini model on anything but its shapes) would otherwise pair
nearly everything with everything.

Comparing every pair is quadratic (10^10 products at 100k vectors). Instead the vectors are
clustered by k-means into lists of about LIST_SIZE; each vector lives in its nearest list and
is compared, in one matrix product per list, with the members of its PROBES nearest lists
(keeping its K nearest of each).
Vectors as close as near-duplicates usually share one of those lists (where a model embeds
everything alike, fewer do: BENCHMARKS.md measures it). The cost is about
n x PROBES x LIST_SIZE inner products, plus n x n / LIST_SIZE to place each vector among the
lists. Every pair returned is checked exactly; what the lists
can cost is a pair not found (tests/search/test_near_pairs.py measures it).

Below EXACT_BELOW vectors all pairs are compared, in blocks. Vectors may come as float16
(half the memory: a million 512-d vectors take 1 GiB); products are taken in float32, a block
at a time.
"""

from __future__ import annotations

import numpy as np

K = 8
LIST_SIZE = 1024
PROBES = 8
EXACT_BELOW = 8192
BLOCK_SIMILARITIES = 1 << 24  # per matrix product: 64 MB of float32
ASSIGN_BATCH = 65536  # vectors placed among the lists at a time


def near_pairs(
    vectors: np.ndarray, threshold: float, k: int = K, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(first, second, similarity) of the pairs of rows, first < second, where one is among the
    other's k nearest and their inner product is at least threshold, sorted by (first, second).
    vectors: (n, dim) float32 or float16, unit length for cosine."""
    if len(vectors) < EXACT_BELOW:
        return _exact_pairs(np.ascontiguousarray(vectors, np.float32), threshold, k)
    x = vectors if vectors.dtype in (np.float16, np.float32) else vectors.astype(np.float32)
    return _clustered_pairs(x, threshold, k, seed)


def _exact_pairs(x: np.ndarray, threshold: float, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    found = []
    block = _block_rows(len(x))
    for start in range(0, len(x), block):
        rows = np.arange(start, min(len(x), start + block))
        found.append(_nearest(rows, np.arange(len(x)), x[rows] @ x.T, threshold, k))
    return _sorted_unique(found, len(x))


def _nearest(rows: np.ndarray, cols: np.ndarray, sims: np.ndarray, threshold: float, k: int) -> tuple:
    """The pairs (row, its k most similar cols other than itself, at least threshold) of a block
    of similarities sims[i, j] = rows[i] . cols[j] (cols ascending), each pair as (smaller,
    larger, similarity)."""
    at = np.minimum(np.searchsorted(cols, rows), len(cols) - 1)
    itself = cols[at] == rows
    sims[np.flatnonzero(itself), at[itself]] = -np.inf
    if sims.shape[1] > k:
        top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
    else:
        top = np.broadcast_to(np.arange(sims.shape[1]), sims.shape)
    picked = np.take_along_axis(sims, top, axis=1)
    i, j = np.nonzero(picked >= threshold)
    a, b = rows[i], cols[top[i, j]]
    return np.minimum(a, b), np.maximum(a, b), picked[i, j]


def _clustered_pairs(x: np.ndarray, threshold: float, k: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    import faiss

    n, dim = x.shape
    lists = max(2, n // LIST_SIZE)
    sample = x[np.sort(np.random.default_rng(seed).choice(n, min(n, 64 * lists), replace=False))]
    kmeans = faiss.Kmeans(dim, lists, niter=10, seed=seed, spherical=True)
    kmeans.train(sample.astype(np.float32))
    # (n, PROBES) list numbers, nearest first
    nearest = np.concatenate(
        [kmeans.index.search(x[s : s + ASSIGN_BATCH].astype(np.float32), PROBES)[1] for s in range(0, n, ASSIGN_BATCH)]
    )
    home = nearest[:, 0]
    members = _group(home, lists)
    askers = _group(nearest.ravel(), lists, np.repeat(np.arange(n), PROBES))
    found = []
    for j in range(lists):
        m, q = members[j], askers[j]
        if len(m) == 0:
            continue
        block = _block_rows(len(m))
        xm = x[m].astype(np.float32).T
        for start in range(0, len(q), block):
            qs = q[start : start + block]
            found.append(_nearest(qs, m, x[qs].astype(np.float32) @ xm, threshold, k))
    return _sorted_unique(found, n)


def _block_rows(columns: int) -> int:
    return max(16, BLOCK_SIMILARITIES // max(1, columns))


def _group(labels: np.ndarray, count: int, items: np.ndarray | None = None) -> list[np.ndarray]:
    """items (default: their positions) split by label, each part in ascending item order."""
    items = np.arange(len(labels)) if items is None else items
    order = np.argsort(labels, kind="stable")
    bounds = np.searchsorted(labels[order], np.arange(count + 1))
    return [items[order[bounds[j] : bounds[j + 1]]] for j in range(count)]


def _sorted_unique(found: list[tuple], n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if not found:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32)
    first = np.concatenate([f[0] for f in found]).astype(np.int64)
    second = np.concatenate([f[1] for f in found]).astype(np.int64)
    sims = np.concatenate([f[2] for f in found]).astype(np.float32)
    _, at = np.unique(first * n + second, return_index=True)  # one of each pair, in (first, second) order
    return first[at], second[at], sims[at]
