"""The FAISS plumbing under VectorIndex: making an index from a factory string, reaching the
index inside its id map, listing an IVF index's ids, checking the caller's vectors and ids,
and searching within a subset of ids.

IVF indexes store ids in their inverted lists and remove them natively, so they are NOT
wrapped in IndexIDMap (whose remove_ids compacts its id table, right only for indexes that
shift their internal ids on removal: Flat does, IVF does not). Flat and HNSW are wrapped in
IndexIDMap2.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import faiss
import numpy as np

from .index_choice import LIST_HEADROOM

DEFAULT_EF_SEARCH = 64
# faiss's default (40) builds a graph that 1M clustered vectors' text-like queries cannot reach
# 0.95 recall@10 in at any efSearch; 80 did at 100k for ef 32, with builds ~3x as long (BENCHMARKS.md).
HNSW_EF_CONSTRUCTION = 80
DEFAULT_NPROBE = 16
CODEC_TRAIN_VECTORS = 65_536  # what faiss's PQ k-means (256 points for each of 256 codes) would keep of more
ENCODE_CHUNK = 65_536
BITMAP_BYTES_PER_ID = 8  # id_selector: a bitmap up to this size per id selected, else a hashed batch


def new_faiss_index(dim: int, factory: str) -> faiss.Index:
    """An empty inner-product index of `factory`, IVF bare, Flat/HNSW in an IndexIDMap2."""
    try:
        index = faiss.index_factory(dim, factory, faiss.METRIC_INNER_PRODUCT)
    except RuntimeError as e:
        raise ValueError(f"invalid FAISS factory string {factory!r}: {e}") from e
    ivf = faiss.try_extract_index_ivf(index)
    if ivf is not None:
        ivf.nprobe = min(DEFAULT_NPROBE, ivf.nlist)
        coder = faiss.downcast_index(ivf)
        if isinstance(coder, faiss.IndexIVFPQ):
            # orders PQ codes for Hamming-distance search, which is not used here; by simulated
            # annealing per sub-quantizer: 15+ minutes of a 10M x 512 PQ128 build's training
            coder.do_polysemous_training = False
        quantizer = faiss.downcast_index(ivf.quantizer)
        if isinstance(quantizer, faiss.IndexHNSW):  # IVF<n>_HNSW<M>: its beam is at least nprobe wide
            quantizer.hnsw.efSearch = DEFAULT_EF_SEARCH
        return index
    wrapped = faiss.IndexIDMap2(index)  # the python wrapper keeps `index` alive
    if isinstance(index, faiss.IndexHNSW):
        index.hnsw.efSearch = DEFAULT_EF_SEARCH
        index.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
    return wrapped


def base_index(index: faiss.Index) -> faiss.Index:
    """The index inside an IndexIDMap2 wrapper, or the index itself."""
    return faiss.downcast_index(index.index) if isinstance(index, faiss.IndexIDMap2) else index


def training_clusters(index: faiss.Index) -> int:
    """The largest k-means the index trains: its IVF lists, or the 256 codes of a PQ."""
    ivf = faiss.try_extract_index_ivf(index)
    coder = faiss.downcast_index(ivf if ivf is not None else base_index(index))
    clusters = ivf.nlist if ivf is not None else 1
    pq = getattr(coder, "pq", None)
    return max(clusters, pq.ksub) if pq is not None else clusters


def ivf_ids(ivf: faiss.IndexIVF) -> np.ndarray:
    """Every id stored in an IVF index's inverted lists."""
    invlists, chunks = ivf.invlists, []
    for list_no in range(ivf.nlist):
        size = invlists.list_size(list_no)
        if size:
            ptr = invlists.get_ids(list_no)
            chunks.append(faiss.rev_swig_ptr(ptr, size).copy())
            invlists.release_ids(list_no, ptr)
    return np.concatenate(chunks) if chunks else np.empty(0, np.int64)


def train_index(index: faiss.Index, sample: np.ndarray) -> None:
    """Train `index` on `sample`: an IVF's lists by train_lists over all of it, then its codec
    (PQ, SQ) on about CODEC_TRAIN_VECTORS of it; any other index on all of it, normalised."""
    ivf = faiss.try_extract_index_ivf(index)
    if ivf is not None and ivf.quantizer.ntotal != ivf.nlist:
        train_lists(ivf, sample)
        sample = sample[:: max(1, len(sample) // CODEC_TRAIN_VECTORS)]
    index.train(as_vectors(sample, index.d))


def train_lists(ivf: faiss.IndexIVF, sample: np.ndarray) -> None:
    """Train an IVF's centroids by k-means over `sample` (its rows normalised here), the
    sample held as float16 codes decoded block by block: a 10M library's 1.1M training
    vectors of 512-d take 1.1 GB, not 2.3 as float32 (and not 4.6 with a normalised copy).
    The IVF's codec (PQ, SQ) is left untrained: IndexIVF.train, given a small sample next,
    trains it and keeps these lists."""
    if np.ndim(sample) != 2 or np.shape(sample)[1] != ivf.d:
        raise ValueError(f"expected vectors of shape (n, {ivf.d}), got {np.shape(sample)}")
    codec = faiss.IndexScalarQuantizer(ivf.d, faiss.ScalarQuantizer.QT_fp16, ivf.metric_type)
    codes = np.empty((len(sample), codec.sa_code_size()), np.uint8)
    for start in range(0, len(sample), ENCODE_CHUNK):
        chunk = as_vectors(sample[start : start + ENCODE_CHUNK], ivf.d)  # checked, normalised float32
        codes[start : start + len(chunk)] = codec.sa_encode(chunk)
    params = faiss.ClusteringParameters()
    params.niter, params.seed = ivf.cp.niter, ivf.cp.seed
    params.spherical = ivf.metric_type == faiss.METRIC_INNER_PRODUCT  # what IndexIVF.train does for inner product
    params.max_points_per_centroid = len(sample)  # sampled already (training_sample_size)
    clustering = faiss.Clustering(ivf.d, ivf.nlist, params)
    clustering.train_encoded(codes, codec, faiss.IndexFlat(ivf.d, ivf.metric_type))
    quantizer = faiss.downcast_index(ivf.quantizer)
    quantizer.reset()
    quantizer.add(faiss.vector_to_array(clustering.centroids).reshape(ivf.nlist, ivf.d))


def reserve_storage(index: faiss.Index, count: int) -> None:
    """Allocate an empty Flat or HNSW index's storage (and an HNSW graph's links) for the
    `count` vectors about to be added: storage grown by doubling as batches arrive ends up to
    twice its size, and copying it to size afterwards briefly holds both. IVF lists are sized
    by reserve_lists."""
    storage, base = flat_storage(index), base_index(index)
    if storage is None or storage.ntotal:
        return
    _reserve(storage.codes, count * storage.code_size)
    if isinstance(base, faiss.IndexHNSW):
        # level 0 holds 2M links; the levels above, M each for 1 vector in M: ~M/(M-1) more
        _reserve(base.hnsw.neighbors, count * (base.hnsw.nb_neighbors(0) + 2))


def fillable_ivf(index: faiss.Index) -> faiss.IndexIVF | None:
    """The index as an empty IVF whose lists are in memory, unpacked (what reserve_lists and
    add_to_lists work on); None for any other index (lists on disk, packed for fast scan)."""
    ivf = faiss.try_extract_index_ivf(index)
    if ivf is None or ivf.ntotal:
        return None
    return ivf if isinstance(faiss.downcast_InvertedLists(ivf.invlists), faiss.ArrayInvertedLists) else None


def centroid_finder(ivf: faiss.IndexIVF) -> faiss.Index:
    """A flat index over an IVF's centroids, finding a batch's lists in one matrix product:
    for a bulk add, quicker than an HNSW quantizer's walk and exact (16,384 random centroids
    of 512-d, 2 cores side by side: 0.23 ms a vector, against 0.53 at efSearch 64, which
    found the nearest centroid for 45% of the vectors)."""
    quantizer = faiss.downcast_index(ivf.quantizer)
    if isinstance(quantizer, faiss.IndexFlat):
        return quantizer
    flat = faiss.IndexFlat(ivf.d, quantizer.metric_type)
    flat.add(quantizer.reconstruct_n(0, ivf.nlist))
    return flat


def reserve_lists(ivf: faiss.IndexIVF, sizes: np.ndarray) -> None:
    """Allocate each list of an empty IVF (fillable_ivf) for the `sizes` of vectors about to be
    added to it, with an eighth of headroom so that later small additions do not double them."""
    lists = faiss.downcast_InvertedLists(ivf.invlists)
    for list_no in np.flatnonzero(sizes).tolist():
        size = int(sizes[list_no])
        lists.resize(list_no, size + -(-size // LIST_HEADROOM))  # from empty: allocated at exactly this
        lists.resize(list_no, 0)  # capacity kept


def add_to_lists(ivf: faiss.IndexIVF, ids: np.ndarray, x: np.ndarray, lists: np.ndarray) -> None:
    """Add normalised vectors `x` under `ids` to the IVF lists already found for them."""
    lists = np.ascontiguousarray(lists, dtype=np.int64)
    ivf.add_core(len(x), faiss.swig_ptr(x), faiss.swig_ptr(np.ascontiguousarray(ids)), faiss.swig_ptr(lists))


def fill_index(index: faiss.Index, count: int, batches: Callable[[], Iterable[tuple[np.ndarray, np.ndarray]]]) -> int:
    """Add the `count` (ids, normalised vectors) of `batches()` (unique ids) to an empty, trained
    index, its storage allocated at its size first; returns the largest id added (-1: none).
    An IVF's lists are found once per vector, by centroid_finder in the pass that sizes them,
    and kept (12 bytes a vector) for the pass that adds it. `batches()` gives the same rows
    each call; a batch that differs (rows changed between the passes) has its lists found again."""
    ivf, top = fillable_ivf(index), -1
    if ivf is None:
        reserve_storage(index, count)
        for ids, x in batches():
            if len(ids):
                index.add_with_ids(x, ids)
                top = max(top, int(ids.max()))
        return top
    finder, found, sizes = centroid_finder(ivf), [], np.zeros(ivf.nlist, np.int64)

    def lists_of(x: np.ndarray) -> np.ndarray:
        return finder.assign(x, 1).ravel() if len(x) else np.zeros(0, np.int64)

    for ids, x in batches():
        lists = lists_of(x)
        sizes += np.bincount(lists, minlength=ivf.nlist)
        found.append((ids, lists.astype(np.int32)))
    reserve_lists(ivf, sizes)
    found.reverse()  # popped in batch order: each batch's lists freed once it is added
    for ids, x in batches():
        kept_ids, lists = found.pop() if found else (None, None)
        if kept_ids is None or not np.array_equal(kept_ids, ids):
            lists = lists_of(x)
        if len(ids):
            add_to_lists(ivf, ids, x, lists)
            top = max(top, int(ids.max()))
    return top


def _reserve(vector, size: int) -> None:
    """Give an empty faiss vector the capacity for `size` entries (grown from empty, a vector
    is allocated at exactly the size asked; shrinking keeps the allocation)."""
    vector.resize(size)
    vector.resize(0)


def as_vectors(vectors, dim: int) -> np.ndarray:
    """A normalised float32 copy, shape (n, dim); a single 1-D vector becomes one row."""
    x = np.array(vectors, dtype=np.float32, order="C", copy=True, ndmin=2)
    if x.ndim != 2 or x.shape[1] != dim:
        raise ValueError(f"expected vectors of shape (n, {dim}), got {np.shape(vectors)}")
    if not np.isfinite(x).all():
        raise ValueError("vectors contain NaN or infinite values")
    faiss.normalize_L2(x)
    return x


def as_ids(ids, n: int) -> np.ndarray:
    """The caller's ids as int64, checked: one per vector, non-negative, unique."""
    arr = np.asarray(ids, dtype=np.int64).reshape(-1)
    if len(arr) != n:
        raise ValueError(f"got {len(arr)} ids for {n} vectors")
    if len(arr) and arr.min() < 0:
        raise ValueError("ids must be >= 0 (-1 marks an empty result slot)")
    if len(np.unique(arr)) != len(arr):
        raise ValueError("ids within one batch must be unique")
    return arr


def flat_storage(index: faiss.Index) -> faiss.IndexFlat | None:
    """The IndexFlat holding a Flat or HNSW,Flat index's float32 vectors (by internal row);
    None for indexes that keep only codes (IVF, SQ, PQ): they cannot give the vectors back."""
    base = base_index(index)
    storage = faiss.downcast_index(base.storage) if isinstance(base, faiss.IndexHNSW) else base
    return storage if isinstance(storage, faiss.IndexFlat) else None


def flat_scores(storage: faiss.IndexFlat, q: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Inner products of one query with the stored vectors at `rows`, computed where they lie:
    gathering them first would copy 2 KB a vector (512-d), twice the time (bench_filtered)."""
    q, rows = np.ascontiguousarray(q, np.float32), np.ascontiguousarray(rows, np.int64)
    out = np.empty(len(rows), np.float32)
    storage.compute_distance_subset(1, faiss.swig_ptr(q), len(rows), faiss.swig_ptr(out), faiss.swig_ptr(rows))
    return out


def id_selector(ids: np.ndarray) -> faiss.IDSelector:
    """A selector of the sorted unique `ids`: a bitmap (one bit per id up to the largest) when
    that takes at most BITMAP_BYTES_PER_ID bytes per id, else a hashed batch. A bitmap test is
    one memory read; a batch test hashes, and its table costs ~30 bytes per id."""
    if len(ids) and (int(ids[-1]) // 8 + 1) <= BITMAP_BYTES_PER_ID * len(ids):
        mask = np.zeros(int(ids[-1]) + 1, dtype=bool)
        mask[ids] = True
        return faiss.IDSelectorBitmap(np.packbits(mask, bitorder="little"))
    return faiss.IDSelectorBatch(ids)


@dataclass(frozen=True)
class IdSubset:
    """The ids of a subset that one state of an index holds, ready to search: sorted live ids,
    their rows in the index's flat storage (None when it keeps none), and their selector."""

    ids: np.ndarray
    rows: np.ndarray | None
    selector: faiss.IDSelector
    state: int

    def __len__(self) -> int:
        return len(self.ids)


def held_ids(index: faiss.Index, tombstones: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """(the sorted ids an index holds, minus tombstones; their rows in its flat storage, or None
    when it keeps only codes)."""
    ivf = faiss.try_extract_index_ivf(index)
    if ivf is not None:
        return np.sort(ivf_ids(ivf)), None
    by_row = faiss.vector_to_array(index.id_map)
    rows = np.argsort(by_row, kind="stable")
    if len(tombstones):
        rows = rows[~np.isin(by_row[rows], tombstones)]
    return by_row[rows], rows if flat_storage(index) is not None else None


def make_subset(ids: np.ndarray, held: np.ndarray, rows: np.ndarray | None, state: int) -> IdSubset:
    """The IdSubset of the `ids` (any order, repeats allowed) found in the sorted `held` ids of
    an index in `state`, whose flat storage rows are `rows` (None: it keeps none)."""
    ids = np.unique(ids.reshape(-1))
    found, where = find_sorted(ids, held)
    ids = ids[found]
    return IdSubset(ids, None if rows is None else rows[where[found]], id_selector(ids), state)


def find_sorted(ids: np.ndarray, held: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Which of `ids` are in the sorted array `held` (a boolean mask), and where they are in it."""
    where = np.searchsorted(held, ids)
    found = np.zeros(len(ids), dtype=bool)
    inside = where < len(held)
    found[inside] = held[where[inside]] == ids[inside]
    return found, where


def search_subset(index: faiss.Index, x: np.ndarray, k: int, subset: IdSubset) -> tuple[np.ndarray, np.ndarray]:
    """Top-k of a (CPU) index among a non-empty subset's ids. Flat is exact. The subset's k best
    lie as far from the query as the index's k / share best, so IVF probes and HNSW's beam
    are widened by the inverse of the subset's share (a selector spares the distances to
    non-members in IVF lists, not in the HNSW walk); rows still short of min(k, len(subset))
    are searched again exhaustively (every list, a beam as wide as the graph)."""
    widen = index.ntotal / len(subset)
    ivf, base = faiss.try_extract_index_ivf(index), base_index(index)
    if ivf is not None:
        params = faiss.SearchParametersIVF(sel=subset.selector, nprobe=min(math.ceil(ivf.nprobe * widen), ivf.nlist))
        exhaustive = {"nprobe": ivf.nlist}
    elif isinstance(base, faiss.IndexHNSW):
        ef = base.hnsw.efSearch
        wide = min(math.ceil(ef * widen), index.ntotal)
        params = faiss.SearchParametersHNSW(sel=subset.selector, efSearch=max(ef, k, wide))
        exhaustive = {"efSearch": max(k, index.ntotal)}
    else:
        return index.search(x, k, params=faiss.SearchParameters(sel=subset.selector))
    scores, ids = index.search(x, k, params=params)
    short = (ids >= 0).sum(axis=1) < min(k, len(subset))
    if short.any():
        for name, value in exhaustive.items():
            setattr(params, name, value)
        scores[short], ids[short] = index.search(x[short], k, params=params)
    return scores, ids
