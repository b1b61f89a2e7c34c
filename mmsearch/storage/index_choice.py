"""Which FAISS factory a VectorIndex uses, and roughly how much memory each one takes.

Small collections are searched exactly (Flat); larger ones get an HNSW graph or IVF lists of
float32 vectors, whichever measures faster where both fit the memory budget, else IVF with SQ8
or PQ codes sized to fit.
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
LIST_HEADROOM = 8  # IVF lists are kept 1/8 over their size after a build (faiss_parts.tighten_inverted_lists)


# k-means costs sample x nlist, and the sample grows with nlist: 16384 lists (10M vectors) would
# train for hours on a few CPU cores; 4096 train in ~2 minutes on 2 (BENCHMARKS.md).
MAX_NLIST = 4096


def ivf_nlist(n_vectors: int) -> int:
    """The power of two nearest 4*sqrt(n), at most MAX_NLIST, halved until n gives 39 training
    points per list."""
    nlist = min(MAX_NLIST, 2 ** max(0, round(math.log2(4 * math.sqrt(max(n_vectors, 1))))))
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
        lists = n_vectors * (code_bytes + IVF_ID_BYTES) * (LIST_HEADROOM + 1) // LIST_HEADROOM
        return nlist * dim * 4 + codebooks + lists
    raise ValueError(f"cannot estimate memory for factory {factory!r}")


def candidate_factories(n_vectors: int, dim: int, memory_budget_bytes: int | None = None) -> list[str]:
    """The factories worth building for n_vectors of dim, to be measured against each other
    (index_selection): which one serves a target recall fastest depends on the data.

    - fewer than 100_000 vectors: ["Flat"] (exact; brute force is fast at this size);
    - otherwise those of "HNSW32,Flat" and "IVF<nlist>,Flat" whose float32 vectors (plus
      graph or lists, and id maps) fit the budget (both, when no budget is given), with nlist
      the power of two nearest 4*sqrt(n) (at least 39 training vectors per list);
    - when neither fits, the first of "IVF<nlist>,SQ8" (dim bytes per vector) and
      "IVF<nlist>,PQ<M>" (the largest M dividing dim with at least 4 dimensions per
      sub-quantizer: the most precise codes) that fits.
    Memory is estimate_memory_bytes(); a budget too small even for PQ raises ValueError.
    """
    if n_vectors < FLAT_MAX_VECTORS:
        return ["Flat"]

    def fits(factory: str) -> bool:
        return memory_budget_bytes is None or estimate_memory_bytes(factory, n_vectors, dim) <= memory_budget_bytes

    nlist = ivf_nlist(n_vectors)
    full = [f"HNSW{HNSW_M},Flat"]
    if n_vectors >= TRAIN_POINTS_PER_CENTROID * nlist:  # false only under 39 vectors (a test's lowered line)
        full.append(f"IVF{nlist},Flat")
    full = [f for f in full if fits(f)]
    if full:
        return full
    compressed = [f"IVF{nlist},SQ8"] + [f"IVF{nlist},PQ{m}" for m in range(max(1, dim // 4), 0, -1) if dim % m == 0]
    for factory in compressed:
        if fits(factory):
            return [factory]
    smallest = estimate_memory_bytes(compressed[-1], n_vectors, dim)
    raise ValueError(
        f"no index fits {n_vectors} vectors of dim {dim} in {memory_budget_bytes} bytes; "
        f"the smallest ({compressed[-1]}) needs ~{smallest}"
    )


def choose_factory(n_vectors: int, dim: int, memory_budget_bytes: int | None = None) -> str:
    """The factory used when nothing is measured (VectorIndex.build without one): the first
    of candidate_factories."""
    return candidate_factories(n_vectors, dim, memory_budget_bytes)[0]


def quickest_to_build(candidates: list[str]) -> str:
    """Of candidate_factories, the one built soonest: IVF lists (one k-means on a sample, then
    one assignment per vector) before an HNSW graph (a search per vector inserted: 1M x 512
    measured 679 s against ~140 s for IVF4096 on 2 cores, BENCHMARKS.md)."""
    return next((f for f in candidates if f.startswith("IVF")), candidates[0])


def still_suits(factory: str, candidates: list[str]) -> bool:
    """Whether an index of `factory` may go on serving where `candidates` would be built now:
    one of them, or IVF lists of the same codes numbering within a factor two of the wanted
    count (a quarter or four times as many: rebuilt). Without that slack a library hovering
    about a size where nlist steps would be rebuilt at every index job."""
    if factory in candidates:
        return True
    have = re.fullmatch(r"IVF(\d+),(.+)", factory)
    for wanted in candidates:
        want = re.fullmatch(r"IVF(\d+),(.+)", wanted)
        if have and want and have.group(2) == want.group(2):
            return int(want.group(1)) // 2 <= int(have.group(1)) <= 2 * int(want.group(1))
    return False
