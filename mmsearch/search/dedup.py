"""Near-duplicate removal from a ranked list of result vectors.

The rule (clip-retrieval's): walk the results best first and keep one unless its similarity
(inner product) to an earlier KEPT result reaches the threshold. A result dropped for being
a near copy of a kept one does not itself remove later results: in a chain a ~ b ~ c where
b goes, c is compared with a alone.

`keep_distinct` walks the results in blocks. A block is compared with the results kept so
far in one matrix product, then with itself in another, and is walked in order over the few
pairs those products put near the threshold, rechecking each pair with the reference's own
scalar product, so that rounding in the blocked products cannot flip a decision. Python work
is linear in the results (plus their near pairs with kept ones, which a kept set of mutually
distinct vectors keeps few); the products are n x kept inner products at BLAS speed, in
memory bounded by the block.
"""

from __future__ import annotations

import numpy as np

BLOCK = 512  # results per block: 512 x 10,000 float32 similarities are 20 MB
# Pairs whose blocked product comes within this (times the largest squared norm) of the
# threshold are rechecked exactly: float32 or float64 products of length ~1000 err far less.
MARGIN = 1e-3


def keep_distinct(vectors: np.ndarray, threshold: float) -> list[int]:
    """Positions (ascending) of the results to keep: exactly those of keep_distinct_reference,
    for float32 or float64 vectors of shape (n, dim)."""
    v = np.asarray(vectors)
    n = len(v)
    if n == 0:
        return []
    # NaN norms give 1.0 here, and NaN similarities stay candidates below: the reference
    # drops a result on `not (sim < threshold)`, which NaN meets.
    near = threshold - MARGIN * max(1.0, float(np.max(np.einsum("ij,ij->i", v, v))))
    kept = np.empty((n, v.shape[1]), v.dtype)  # the kept vectors, in order, in the first n_kept rows
    positions: list[int] = []
    for start in range(0, n, BLOCK):
        block = v[start : start + BLOCK]
        alive = np.ones(len(block), bool)
        # Against the results kept before the block.
        if positions:
            previous = np.asarray(positions)
            rows, cols = np.nonzero(~(block @ kept[: len(positions)].T < near))
            for r, c in zip(rows.tolist(), cols.tolist()):
                if alive[r] and not float(block[r] @ v[previous[c]]) < threshold:
                    alive[r] = False
        # Within the block, in order: each against the block's earlier results it kept (the
        # decisions on earlier rows are final when a row is reached).
        close = ~(block @ block.T < near)
        close &= np.tri(len(block), k=-1, dtype=bool)
        for r in np.flatnonzero(close.any(axis=1)).tolist():
            if alive[r]:
                for c in np.flatnonzero(close[r] & alive).tolist():
                    if not float(block[r] @ block[c]) < threshold:
                        alive[r] = False
                        break
        for r in np.flatnonzero(alive).tolist():
            kept[len(positions)] = block[r]
            positions.append(start + r)
    return positions


def keep_distinct_reference(vectors: np.ndarray, threshold: float) -> list[int]:
    """The rule as first written: each result against every kept one (quadratic in Python;
    for tests and benchmarks)."""
    kept: list[int] = []
    for i in range(len(vectors)):
        if all(float(vectors[i] @ vectors[j]) < threshold for j in kept):
            kept.append(i)
    return kept
