"""The FAISS plumbing under VectorIndex: making an index from a factory string, reaching the
index inside its id map, listing an IVF index's ids, and checking the caller's vectors and ids.

IVF indexes store ids in their inverted lists and remove them natively, so they are NOT
wrapped in IndexIDMap (whose remove_ids compacts its id table, right only for indexes that
shift their internal ids on removal: Flat does, IVF does not). Flat and HNSW are wrapped in
IndexIDMap2.
"""

from __future__ import annotations

import faiss
import numpy as np

DEFAULT_EF_SEARCH = 64
DEFAULT_NPROBE = 16


def new_faiss_index(dim: int, factory: str) -> faiss.Index:
    """An empty inner-product index of `factory`, IVF bare, Flat/HNSW in an IndexIDMap2."""
    try:
        index = faiss.index_factory(dim, factory, faiss.METRIC_INNER_PRODUCT)
    except RuntimeError as e:
        raise ValueError(f"invalid FAISS factory string {factory!r}: {e}") from e
    ivf = faiss.try_extract_index_ivf(index)
    if ivf is not None:
        ivf.nprobe = min(DEFAULT_NPROBE, ivf.nlist)
        return index
    wrapped = faiss.IndexIDMap2(index)  # the python wrapper keeps `index` alive
    if isinstance(index, faiss.IndexHNSW):
        index.hnsw.efSearch = DEFAULT_EF_SEARCH
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
