"""Which FAISS factory a VectorIndex uses, and roughly how much memory each one takes.

Small collections are searched exactly (Flat); larger ones get an HNSW graph when it fits the
memory budget, else IVF with SQ8 or PQ codes sized to fit.
"""

from __future__ import annotations

import math
import re

FLAT_MAX_VECTORS = 100_000
HNSW_M = 32
# faiss k-means warns below 39 training points per centroid; we require it.
TRAIN_POINTS_PER_CENTROID = 39
# k-means cost grows with the sample; past ~64 points per centroid recall barely moves.
MAX_TRAIN_POINTS_PER_CENTROID = 64
# id_map (8 bytes) + IndexIDMap2's reverse hash map (~48 bytes per entry).
ID_BYTES_PER_VECTOR = 56
IVF_ID_BYTES = 8


def ivf_nlist(n_vectors: int) -> int:
    """The power of two nearest 4*sqrt(n), halved until n gives 39 training points per list."""
    nlist = 2 ** max(0, round(math.log2(4 * math.sqrt(max(n_vectors, 1)))))
    while nlist > 1 and TRAIN_POINTS_PER_CENTROID * nlist > n_vectors:
        nlist //= 2
    return nlist


def estimate_memory_bytes(factory: str, n_vectors: int, dim: int) -> int:
    """Approximate resident bytes of `factory` holding n_vectors of `dim`, id maps included.

    Understands the factories choose_factory produces: Flat, HNSW<M>[,Flat], IVF<n>,Flat,
    IVF<n>,SQ8 and IVF<n>,PQ<M>[x8].
    """
    hnsw = re.fullmatch(r"HNSW(\d+)(,Flat)?", factory)
    ivf = re.fullmatch(r"IVF(\d+),(Flat|SQ8|PQ(\d+)(x8)?)", factory)
    if factory == "Flat":
        return n_vectors * (4 * dim + ID_BYTES_PER_VECTOR)
    if hnsw:
        # Level 0 holds 2*M int32 links; upper levels, levels and offsets add ~16 bytes.
        graph = 8 * int(hnsw.group(1)) + 16
        return n_vectors * (4 * dim + graph + ID_BYTES_PER_VECTOR)
    if ivf:
        nlist, codec = int(ivf.group(1)), ivf.group(2)
        code_bytes = {"Flat": 4 * dim, "SQ8": dim}.get(codec) or int(ivf.group(3))
        codebooks = 256 * dim * 4 if codec.startswith("PQ") else 2 * dim * 4
        return nlist * dim * 4 + codebooks + n_vectors * (code_bytes + IVF_ID_BYTES)
    raise ValueError(f"cannot estimate memory for factory {factory!r}")


def choose_factory(n_vectors: int, dim: int, memory_budget_bytes: int | None = None) -> str:
    """Pick a factory string from the vector count and an optional memory budget.

    - fewer than 100_000 vectors: "Flat" (exact; brute force is fast at this size);
    - otherwise "HNSW32,Flat" when float32 vectors plus graph and id maps fit the
      budget (always, when no budget is given);
    - otherwise IVF with nlist = the power of two nearest 4*sqrt(n) (at least 39
      training vectors per list): "IVF<nlist>,SQ8" (dim bytes per vector) if it fits,
      else "IVF<nlist>,PQ<M>" with the largest M <= 64 dividing dim that fits.
    Memory is estimate_memory_bytes(); a budget too small even for PQ raises ValueError.
    """
    if n_vectors < FLAT_MAX_VECTORS:
        return "Flat"

    def fits(factory: str) -> bool:
        return memory_budget_bytes is None or estimate_memory_bytes(factory, n_vectors, dim) <= memory_budget_bytes

    candidates = [f"HNSW{HNSW_M},Flat", f"IVF{ivf_nlist(n_vectors)},SQ8"]
    candidates += [f"IVF{ivf_nlist(n_vectors)},PQ{m}" for m in range(min(64, dim), 0, -1) if dim % m == 0]
    for factory in candidates:
        if fits(factory):
            return factory
    smallest = estimate_memory_bytes(candidates[-1], n_vectors, dim)
    raise ValueError(
        f"no index fits {n_vectors} vectors of dim {dim} in {memory_budget_bytes} bytes; "
        f"the smallest ({candidates[-1]}) needs ~{smallest}"
    )
