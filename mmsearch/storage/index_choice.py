"""Which FAISS factory a VectorIndex uses, and roughly how much memory each one takes.

Small collections are searched exactly (Flat); larger ones get an HNSW graph or IVF lists of
float32 vectors, whichever measures faster where both fit the memory budget, else IVF with SQ8
or 4-bit PQ codes (faiss's fast scan) sized to fit.
"""

from __future__ import annotations

import math
import re

FLAT_MAX_VECTORS = 100_000
HNSW_M = 32
# faiss k-means warns below 39 training points per centroid; we require it.
TRAIN_POINTS_PER_CENTROID = 39
# k-means cost grows with the sample, and so does the partition's quality: on bench_ann's
# clusters (1M vectors in 1,638 lists, as 10M fill 16,384), 39 points per centroid gave recall@10
# 0.86 / 0.76 (image-like / text-like) at nprobe 16, 128 gave 0.97 / 0.94 (session 21).
MAX_TRAIN_POINTS_PER_CENTROID = 128
# id_map (8 bytes) + IndexIDMap2's reverse hash map (~48 bytes per entry).
ID_BYTES_PER_VECTOR = 56
IVF_ID_BYTES = 8
LIST_HEADROOM = 8  # IVF lists are allocated 1/8 over their size on a build (faiss_parts.reserve_lists)
FAST_SCAN_BLOCK = 32  # fast-scan lists hold codes in blocks of 32 vectors

# Lists are found by comparing with every centroid (a flat quantizer), however many there are:
# a bulk build finds them by one matrix product (faiss_parts.fill_index), and a query's
# comparison with 16,384 centroids costs ~0.14 ms. A graph over the centroids (IVF<n>_HNSW32,
# built from session 17 to 19; still read) found the nearest of 16,384 for 42% of queries at
# efSearch 16 (what a saved index reloads with), 75% at 64, and more lists did not help: a 10M
# index of it served recall@10 0.41 at any nprobe (BENCHMARKS.md).
# Building costs a comparison with every centroid per vector added and per training vector in
# each k-means round: at 16,384 lists on 2 cores, 10M vectors took ~45 minutes to find their
# lists alone. The training sample grows with nlist; this caps it at 128 points for each of
# MAX_NLIST lists (1M vectors: ~1 GB at 512-d, held as float16 while training: train_lists).
MAX_NLIST = 8192
MAX_TRAIN_VECTORS = MAX_TRAIN_POINTS_PER_CENTROID * MAX_NLIST


def ivf_nlist(n_vectors: int) -> int:
    """The power of two nearest 4*sqrt(n), at most MAX_NLIST, halved until n gives 39 training
    points per list."""
    nlist = min(MAX_NLIST, 2 ** max(0, round(math.log2(4 * math.sqrt(max(n_vectors, 1))))))
    while nlist > 1 and TRAIN_POINTS_PER_CENTROID * nlist > n_vectors:
        nlist //= 2
    return nlist


def ivf_factory(nlist: int, codec: str) -> str:
    """IVF lists of `codec`, found by comparing with every centroid."""
    return f"IVF{nlist},{codec}"


def training_sample_size(clusters: int) -> int:
    """How many vectors k-means over `clusters` centroids trains on: 128 per centroid, at most
    MAX_TRAIN_VECTORS (memory and time grow with it) unless that leaves fewer than 39 each."""
    return min(MAX_TRAIN_POINTS_PER_CENTROID * clusters, max(MAX_TRAIN_VECTORS, TRAIN_POINTS_PER_CENTROID * clusters))


def estimate_memory_bytes(factory: str, n_vectors: int, dim: int) -> int:
    """Approximate resident bytes of `factory` holding n_vectors of `dim`, id maps included.

    Understands the factories choose_factory produces: Flat, HNSW<M>[,Flat], and IVF<n>[_HNSW<M>]
    with Flat, SQ8, PQ<M>[x8] or PQ<M>x4fs.
    """
    hnsw = re.fullmatch(r"HNSW(\d+)(,Flat)?", factory)
    ivf = re.fullmatch(r"IVF(\d+)(?:_HNSW(\d+))?,(Flat|SQ8|PQ(\d+)(x8|x4fs)?)", factory)
    if factory == "Flat":
        return n_vectors * (4 * dim + ID_BYTES_PER_VECTOR)
    if hnsw:
        return n_vectors * (4 * dim + _graph_bytes(int(hnsw.group(1))) + ID_BYTES_PER_VECTOR)
    if ivf:
        nlist, codec = int(ivf.group(1)), ivf.group(3)
        if codec.endswith("x4fs"):
            # 4-bit codes in blocks of FAST_SCAN_BLOCK vectors, each list's storage grown by
            # doubling as vectors arrive (up to twice its size; 1M: +113 MiB where its codes
            # and ids take 69)
            code_bytes, codebook_entries = int(ivf.group(4)) // 2, 16
            lists = 2 * (n_vectors * (code_bytes + IVF_ID_BYTES) + nlist * FAST_SCAN_BLOCK * code_bytes)
        else:
            code_bytes = {"Flat": 4 * dim, "SQ8": dim}.get(codec) or int(ivf.group(4))
            codebook_entries = 256 if codec.startswith("PQ") else 2  # SQ: a min and a range per dim
            lists = n_vectors * (code_bytes + IVF_ID_BYTES) * (LIST_HEADROOM + 1) // LIST_HEADROOM
        centroids = nlist * (4 * dim + (_graph_bytes(int(ivf.group(2))) if ivf.group(2) else 0))
        return centroids + codebook_entries * dim * 4 + lists
    raise ValueError(f"cannot estimate memory for factory {factory!r}")


def _graph_bytes(m: int) -> int:
    """Per vector of an HNSW graph: 2*M int32 links on level 0; upper levels, levels and offsets ~16."""
    return 8 * m + 16


def candidate_factories(n_vectors: int, dim: int, memory_budget_bytes: int | None = None) -> list[str]:
    """The factories worth building for n_vectors of dim, to be measured against each other
    (index_selection): which one serves a target recall fastest depends on the data.

    - fewer than 100_000 vectors: ["Flat"] (exact; brute force is fast at this size);
    - otherwise those of "HNSW32,Flat" and "IVF<nlist>,Flat" whose float32 vectors (plus
      graph or lists, and id maps) fit the budget (both, when no budget is given), with nlist
      the power of two nearest 4*sqrt(n), at most MAX_NLIST (at least 39 training vectors
      per list);
    - when neither fits, the first of "IVF<nlist>,SQ8" (dim bytes per vector) and
      "IVF<nlist>,PQ<M>x4fs" (the largest M dividing dim with at least 4 dimensions per
      sub-quantizer, 4 bits each) that fits. Fast scan holds each sub-quantizer's 16
      distances in a SIMD register and scores a block of 32 codes at once: on bench_ann's 1M
      vectors in 819 lists, PQ128x4fs scanned a quarter of them in 1.42 ms against PQ128's
      (8-bit) 15.79, and with 10x re-scored candidates (code_rerank) reached the same
      recall@10 (0.980 / 0.951, session 21).
    Memory is estimate_memory_bytes(); a budget too small even for PQ raises ValueError.
    """
    if n_vectors < FLAT_MAX_VECTORS:
        return ["Flat"]

    def fits(factory: str) -> bool:
        return memory_budget_bytes is None or estimate_memory_bytes(factory, n_vectors, dim) <= memory_budget_bytes

    nlist = ivf_nlist(n_vectors)
    full = [f"HNSW{HNSW_M},Flat"]
    if n_vectors >= TRAIN_POINTS_PER_CENTROID * nlist:  # false only under 39 vectors (a test's lowered line)
        full.append(ivf_factory(nlist, "Flat"))
    full = [f for f in full if fits(f)]
    if full:
        return full
    codecs = ["SQ8"] + [f"PQ{m}x4fs" for m in range(max(1, dim // 4), 0, -1) if dim % m == 0]
    compressed = [ivf_factory(nlist, codec) for codec in codecs]
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
    about a size where nlist steps would be rebuilt at every index job. Lists found through a
    graph over the centroids (IVF<n>_HNSW<M>) never suit: the graph misses them (above)."""
    if factory in candidates:
        return True
    have = re.fullmatch(r"IVF(\d+),(.+)", factory)
    for wanted in candidates:
        want = re.fullmatch(r"IVF(\d+),(.+)", wanted)
        if have and want and have.group(2) == want.group(2):
            return int(want.group(1)) // 2 <= int(have.group(1)) <= 2 * int(want.group(1))
    return False
