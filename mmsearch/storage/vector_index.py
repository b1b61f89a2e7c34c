"""VectorIndex: one FAISS index over L2-normalised float32 vectors, searched by inner product.

IDs are the caller's int64 ids (SQL vector row ids). The index is a derived artifact: SQL
holds the vectors, an index file is saved atomically with a watermark (the highest id ever
added) and, on open, is caught up from SQL; a missing or unreadable file raises
FileNotFoundError / ValueError so the caller rebuilds it.

How ids are kept, per index family:
- IVF indexes store ids in their inverted lists and remove them natively. They are NOT
  wrapped in IndexIDMap: IndexIDMap.remove_ids compacts its id table, which is only right
  for indexes that shift their internal ids on removal (Flat does, IVF does not).
- Flat and HNSW are wrapped in IndexIDMap2. HNSW cannot remove, so removed ids become
  tombstones: filtered out of searches with an IDSelector and dropped by compact(), which
  runs by itself once tombstones exceed 20% of the stored vectors.

The CPU index is the master copy. With a GPU, Flat and IVF indexes are mirrored onto all
GPUs (sharded) for search; the mirror is rebuilt lazily after a change, so saving and
removal always work on the CPU index. Not thread-safe: callers serialise access (IndexSet
holds one lock).
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
from collections.abc import Iterable
from pathlib import Path

import faiss
import numpy as np

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
FLAT_MAX_VECTORS = 100_000
HNSW_M = 32
DEFAULT_EF_SEARCH = 64
DEFAULT_NPROBE = 16
# faiss k-means warns below 39 training points per centroid; we require it.
TRAIN_POINTS_PER_CENTROID = 39
# k-means cost grows with the sample; past ~64 points per centroid recall barely moves.
MAX_TRAIN_POINTS_PER_CENTROID = 64
AUTO_COMPACT_FRACTION = 0.2
SEARCH_BATCH = 4096
COMPACT_CHUNK = 65_536
# faiss GPU k-selection handles k <= 2048; larger k is searched on the CPU copy.
GPU_MAX_K = 2048
# id_map (8 bytes) + IndexIDMap2's reverse hash map (~48 bytes per entry).
ID_BYTES_PER_VECTOR = 56
IVF_ID_BYTES = 8
_META_KEYS = ("factory", "dim", "watermark", "ntotal", "tombstones", "format")


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


def _gpu_count() -> int:
    return faiss.get_num_gpus() if hasattr(faiss, "StandardGpuResources") else 0


def _resolve_use_gpu(use_gpu: str | bool) -> bool:
    if use_gpu == "auto":
        return _gpu_count() > 0
    if use_gpu is True and _gpu_count() == 0:
        raise ValueError("use_gpu=True but faiss sees no GPU (is faiss-gpu installed?)")
    if use_gpu not in (True, False):
        raise ValueError(f"use_gpu must be 'auto', True or False, not {use_gpu!r}")
    return use_gpu


def _as_vectors(vectors, dim: int) -> np.ndarray:
    """A normalised float32 copy, shape (n, dim); a single 1-D vector becomes one row."""
    x = np.array(vectors, dtype=np.float32, order="C", copy=True, ndmin=2)
    if x.ndim != 2 or x.shape[1] != dim:
        raise ValueError(f"expected vectors of shape (n, {dim}), got {np.shape(vectors)}")
    if not np.isfinite(x).all():
        raise ValueError("vectors contain NaN or infinite values")
    faiss.normalize_L2(x)
    return x


def _as_ids(ids, n: int) -> np.ndarray:
    arr = np.asarray(ids, dtype=np.int64).reshape(-1)
    if len(arr) != n:
        raise ValueError(f"got {len(arr)} ids for {n} vectors")
    if len(arr) and arr.min() < 0:
        raise ValueError("ids must be >= 0 (-1 marks an empty result slot)")
    if len(np.unique(arr)) != len(arr):
        raise ValueError("ids within one batch must be unique")
    return arr


def _new_faiss_index(dim: int, factory: str) -> faiss.Index:
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


def _training_clusters(index: faiss.Index) -> int:
    """The largest k-means the index trains: its IVF lists, or the 256 codes of a PQ."""
    ivf = faiss.try_extract_index_ivf(index)
    coder = faiss.downcast_index(ivf if ivf is not None else _base_index(index))
    clusters = ivf.nlist if ivf is not None else 1
    pq = getattr(coder, "pq", None)
    return max(clusters, pq.ksub) if pq is not None else clusters


def _base_index(index: faiss.Index) -> faiss.Index:
    """The index inside an IndexIDMap2 wrapper, or the index itself."""
    return faiss.downcast_index(index.index) if isinstance(index, faiss.IndexIDMap2) else index


def _ivf_ids(ivf: faiss.IndexIVF) -> np.ndarray:
    invlists, chunks = ivf.invlists, []
    for list_no in range(ivf.nlist):
        size = invlists.list_size(list_no)
        if size:
            ptr = invlists.get_ids(list_no)
            chunks.append(faiss.rev_swig_ptr(ptr, size).copy())
            invlists.release_ids(list_no, ptr)
    return np.concatenate(chunks) if chunks else np.empty(0, np.int64)


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(directory: Path) -> None:
    # Makes the renames durable; directories cannot be opened this way on Windows.
    if os.name == "posix":
        _fsync_file(directory)


def _write_json_tmp(path: Path, payload: dict) -> Path:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(payload, f)
        f.flush()
        os.fsync(f.fileno())
    return tmp


def _meta_path(path: Path) -> Path:
    return path.with_name(path.name + ".meta.json")


class VectorIndex:
    """A FAISS index with caller ids, removal for every factory, GPU search and atomic save."""

    def __init__(self, dim: int, factory: str | None = None, use_gpu: str | bool = "auto"):
        if dim < 1:
            raise ValueError(f"dim must be positive, got {dim}")
        self._dim = int(dim)
        self._factory = factory or "Flat"
        self._index = _new_faiss_index(self._dim, self._factory)
        self._use_gpu = _resolve_use_gpu(use_gpu) and not self._is_hnsw
        self._gpu_resources: list = []
        self._gpu_index: faiss.Index | None = None
        self._watermark = 0
        self._tombstones: set[int] = set()
        self._tombstone_filter = None
        self.meta_extra: dict = {}

    # ----- choosing and building -------------------------------------------------------

    @staticmethod
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
            f"no index fits {n_vectors} vectors of dim {dim} in {memory_budget_bytes} bytes; the smallest ({candidates[-1]}) needs ~{smallest}"
        )

    @classmethod
    def build(
        cls,
        ids,
        vectors,
        factory: str | None = None,
        *,
        dim: int | None = None,
        memory_budget_bytes: int | None = None,
        use_gpu: str | bool = "auto",
    ) -> "VectorIndex":
        """An index holding (ids, vectors); factory chosen from the count when None.

        `dim` is needed only when vectors is empty and has no second axis to read it from.
        """
        vectors = np.asarray(vectors, dtype=np.float32)
        dim = dim or vectors.shape[1]
        index = cls(dim, factory or cls.choose_factory(len(vectors), dim, memory_budget_bytes), use_gpu)
        if len(vectors) and not index.is_trained:
            index.train(vectors)
        index.add(ids, vectors)
        return index

    # ----- properties ------------------------------------------------------------------

    @property
    def dim(self) -> int:
        return self._dim

    @property
    def factory(self) -> str:
        return self._factory

    @property
    def ntotal(self) -> int:
        """Live vectors: those stored minus tombstones."""
        return self._index.ntotal - len(self._tombstones)

    @property
    def watermark(self) -> int:
        """The highest id ever added (0 when nothing was); removal does not lower it."""
        return self._watermark

    @property
    def tombstones(self) -> np.ndarray:
        """Removed ids still stored in an HNSW graph, sorted."""
        return np.array(sorted(self._tombstones), dtype=np.int64)

    @property
    def is_trained(self) -> bool:
        return self._index.is_trained

    @property
    def uses_gpu(self) -> bool:
        return self._use_gpu

    @property
    def _is_hnsw(self) -> bool:
        return isinstance(_base_index(self._index), faiss.IndexHNSW)

    def __repr__(self) -> str:
        return f"VectorIndex(dim={self._dim}, factory={self._factory!r}, ntotal={self.ntotal}, gpu={self._use_gpu})"

    def ids(self) -> np.ndarray:
        """The live ids held, in no particular order."""
        ivf = faiss.try_extract_index_ivf(self._index)
        held = _ivf_ids(ivf) if ivf is not None else faiss.vector_to_array(self._index.id_map)
        if self._tombstones:
            held = held[~np.isin(held, self.tombstones)]
        return held

    # ----- mutation --------------------------------------------------------------------

    def train(self, vectors) -> None:
        """Train an IVF/PQ/SQ index; needs 39 vectors per centroid. No-op when trained."""
        if self.is_trained:
            return
        clusters = _training_clusters(self._index)
        vectors = np.asarray(vectors)
        if len(vectors) > MAX_TRAIN_POINTS_PER_CENTROID * clusters:
            # k-means would subsample anyway; doing it first avoids normalising a full copy.
            vectors = vectors[:: len(vectors) // (MAX_TRAIN_POINTS_PER_CENTROID * clusters)]
        x = _as_vectors(vectors, self._dim)
        needed = TRAIN_POINTS_PER_CENTROID * clusters
        if len(x) < needed:
            raise ValueError(
                f"{self._factory} needs at least {needed} training vectors, got {len(x)}; pass more or choose a smaller nlist"
            )
        log.info("training %s on %d vectors", self._factory, len(x))
        self._index.train(x)
        self._drop_gpu_mirror()

    def add(self, ids, vectors) -> None:
        """Add vectors under the caller's ids; trains an untrained index on them first.

        Raises ValueError for a wrong dim, ids already held, or too few vectors to train.
        """
        x = _as_vectors(vectors, self._dim)
        ids = _as_ids(ids, len(x))
        if not len(ids):
            return
        if not self.is_trained:
            self.train(x)
        held = ids[self.contains(ids)]
        if len(held):
            raise ValueError(f"{len(held)} ids are already in the index, e.g. {held[:5].tolist()}")
        if self._tombstones.intersection(ids.tolist()):
            self.compact()  # a re-added id must not collide with its tombstoned copy
        self._index.add_with_ids(x, ids)
        self._watermark = max(self._watermark, int(ids.max()))
        self._drop_gpu_mirror()

    def remove(self, ids) -> int:
        """Remove ids; returns how many were held. Ids not held are ignored."""
        ids = np.unique(np.asarray(ids, dtype=np.int64).reshape(-1))
        if not len(ids) or not self.ntotal:
            return 0
        if self._is_hnsw:
            return self._tombstone(ids)
        removed = int(self._index.remove_ids(ids))
        if removed:
            self._drop_gpu_mirror()
        return removed

    def _tombstone(self, ids: np.ndarray) -> int:
        fresh = ids[self.contains(ids)]
        self._tombstones.update(fresh.tolist())
        self._tombstone_filter = None
        if len(self._tombstones) > AUTO_COMPACT_FRACTION * self._index.ntotal:
            self.compact()
        return len(fresh)

    def contains(self, ids: np.ndarray) -> np.ndarray:
        """Which ids are live in the index (a boolean mask). Ids above the watermark never are, so the
        common case (new SQL rows) skips listing the index."""
        mask = np.zeros(len(ids), dtype=bool)
        maybe = ids <= self._watermark
        if maybe.any():
            mask[maybe] = np.isin(ids[maybe], self.ids())
        return mask

    def compact(self) -> int:
        """Rebuild an HNSW index without its tombstones; returns how many were dropped.

        Vectors are reconstructed from the graph's storage (exact for HNSW,Flat). Other
        index families remove immediately, so this is a no-op for them.
        """
        if not self._tombstones:
            return 0
        old_base, old_ids = _base_index(self._index), faiss.vector_to_array(self._index.id_map)
        dead = np.isin(old_ids, self.tombstones)
        fresh = _new_faiss_index(self._dim, self._factory)
        _base_index(fresh).hnsw.efSearch = old_base.hnsw.efSearch
        if not fresh.is_trained:
            live = old_ids[~dead]
            sample = live[:: max(1, len(live) // (MAX_TRAIN_POINTS_PER_CENTROID * _training_clusters(fresh)))]
            fresh.train(self._index.reconstruct_batch(sample))
        for start in range(0, len(old_ids), COMPACT_CHUNK):
            stop = min(start + COMPACT_CHUNK, len(old_ids))
            keep = ~dead[start:stop]
            fresh.add_with_ids(old_base.reconstruct_n(start, stop - start)[keep], old_ids[start:stop][keep])
        dropped = len(self._tombstones)
        log.info("compacted %s: dropped %d tombstones, %d vectors remain", self._factory, dropped, fresh.ntotal)
        self._index, self._tombstones, self._tombstone_filter = fresh, set(), None
        return dropped

    def catch_up(self, live_ids, new_rows: Iterable[tuple[np.ndarray, np.ndarray]]) -> dict:
        """Bring a loaded index in step with SQL.

        Removes held ids missing from `live_ids` (rows deleted since the save), then adds the
        (ids, vectors) batches of `new_rows` (rows above the watermark), skipping ids already
        held. Returns {"removed": n, "added": m}.
        """
        live_ids = np.asarray(live_ids, dtype=np.int64)
        held = self.ids()
        removed = self.remove(held[~np.isin(held, live_ids)])
        added = 0
        for batch_ids, batch_vectors in new_rows:
            batch_ids = np.asarray(batch_ids, dtype=np.int64)
            new = ~self.contains(batch_ids)
            self.add(batch_ids[new], np.asarray(batch_vectors)[new])
            added += int(new.sum())
        missing = len(np.setdiff1d(live_ids, self.ids()))
        if missing:
            log.warning("%d live rows are not in the index (not in new_rows?); rebuild it to include them", missing)
        return {"removed": removed, "added": added}

    # ----- search ----------------------------------------------------------------------

    def set_search_params(self, nprobe: int | None = None, ef_search: int | None = None) -> None:
        """Set IVF nprobe and/or HNSW efSearch (more: better recall, slower)."""
        for name, value in (("nprobe", nprobe), ("efSearch", ef_search)):
            if value is None:
                continue
            try:
                faiss.ParameterSpace().set_index_parameter(self._index, name, value)
            except RuntimeError as e:
                raise ValueError(f"{name} does not apply to the index {self._factory!r}") from e
            if self._gpu_index is not None:
                faiss.GpuParameterSpace().set_index_parameter(self._gpu_index, name, value)

    def search(self, queries, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-k by inner product: (scores float32 (n, k), ids int64 (n, k)).

        Empty slots (fewer than k live vectors) have id -1 and score -inf.
        """
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        x = _as_vectors(queries, self._dim)
        scores = np.full((len(x), k), -np.inf, dtype=np.float32)
        ids = np.full((len(x), k), -1, dtype=np.int64)
        if self.ntotal == 0:
            return scores, ids
        for start in range(0, len(x), SEARCH_BATCH):
            batch = slice(start, start + SEARCH_BATCH)
            scores[batch], ids[batch] = self._search_batch(x[batch], k)
        scores[ids < 0] = -np.inf
        return scores, ids

    def _search_batch(self, x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        if self._tombstones:
            return self._search_skipping_tombstones(x, k)
        if self._use_gpu and k <= GPU_MAX_K:
            return self._gpu_mirror().search(x, k)
        return self._index.search(x, k)

    def _search_skipping_tombstones(self, x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        if self._tombstone_filter is None:
            batch = faiss.IDSelectorBatch(self.tombstones)
            self._tombstone_filter = (batch, faiss.IDSelectorNot(batch))
        ef = _base_index(self._index).hnsw.efSearch
        params = faiss.SearchParametersHNSW(sel=self._tombstone_filter[1], efSearch=ef)
        scores, ids = self._index.search(x, k, params=params)
        short = (ids >= 0).sum(axis=1) < min(k, self.ntotal)
        if short.any():
            # Tombstones crowded the beam for these rows; a beam wider than k plus all
            # tombstones finds k live results whenever they exist.
            params.efSearch = max(ef, k + len(self._tombstones))
            scores[short], ids[short] = self._index.search(x[short], k, params=params)
        return scores, ids

    def _gpu_mirror(self) -> faiss.Index:
        """The search copy on all GPUs, sharded; rebuilt after the CPU index changes."""
        if self._gpu_index is None:
            if not self._gpu_resources:
                # Held here: the GPU index uses them for as long as it lives.
                self._gpu_resources = [faiss.StandardGpuResources() for _ in range(_gpu_count())]
            options = faiss.GpuMultipleClonerOptions()
            options.shard = True
            try:
                self._gpu_index = faiss.index_cpu_to_gpu_multiple_py(self._gpu_resources, self._index, options)
            except RuntimeError as e:
                log.warning("%s cannot run on GPU (%s); searching on CPU", self._factory, e)
                self._use_gpu = False
                return self._index
        return self._gpu_index

    def _drop_gpu_mirror(self) -> None:
        self._gpu_index = None

    # ----- persistence -----------------------------------------------------------------

    def save(self, path: str | os.PathLike, extra: dict | None = None) -> None:
        """Write the index and its sidecar `<path>.meta.json` atomically.

        Both are written to `.tmp` files and fsynced, then renamed over the old ones. The
        sidecar holds factory, dim, watermark, ntotal (vectors in the file, tombstoned
        included), tombstones, format, and the caller's `extra` keys.
        """
        extra = extra or {}
        clash = set(extra) & set(_META_KEYS)
        if clash:
            raise ValueError(f"extra may not override reserved keys {sorted(clash)}")
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        meta = {
            **extra,
            "factory": self._factory,
            "dim": self._dim,
            "watermark": self._watermark,
            "ntotal": int(self._index.ntotal),
            "tombstones": self.tombstones.tolist(),
            "format": FORMAT_VERSION,
        }
        index_tmp = path.with_name(path.name + ".tmp")
        faiss.write_index(self._index, str(index_tmp))
        _fsync_file(index_tmp)
        meta_tmp = _write_json_tmp(_meta_path(path), meta)
        os.replace(index_tmp, path)
        os.replace(meta_tmp, _meta_path(path))
        _fsync_dir(path.parent)
        self.meta_extra = dict(extra)

    @classmethod
    def load(cls, path: str | os.PathLike, use_gpu: str | bool = "auto") -> "VectorIndex":
        """Read an index saved by save(). FileNotFoundError if it or its sidecar is missing;
        ValueError if either is unreadable or they disagree (rebuild from SQL then)."""
        path = Path(path)
        meta = _read_meta(path)
        if not path.is_file():
            raise FileNotFoundError(f"no index file at {path}")
        try:
            index = faiss.read_index(str(path))
        except RuntimeError as e:
            raise ValueError(f"corrupt index file {path}: {e}") from e
        if faiss.try_extract_index_ivf(index) is None and not isinstance(index, faiss.IndexIDMap2):
            raise ValueError(f"{path} holds a {type(index).__name__}, not an index saved by VectorIndex")
        if index.d != meta["dim"] or index.ntotal != meta["ntotal"]:
            raise ValueError(
                f"{path} holds {index.ntotal} vectors of dim {index.d} but its metadata says "
                f"{meta['ntotal']} of dim {meta['dim']} (interrupted save?)"
            )
        loaded = cls(meta["dim"], meta["factory"], use_gpu)
        loaded._index = index
        loaded._watermark = int(meta["watermark"])
        loaded._tombstones = set(int(i) for i in meta["tombstones"])
        loaded.meta_extra = {key: value for key, value in meta.items() if key not in _META_KEYS}
        return loaded


def _read_meta(path: Path) -> dict:
    meta_path = _meta_path(path)
    if not meta_path.is_file():
        raise FileNotFoundError(f"no index metadata at {meta_path}")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"corrupt index metadata {meta_path}: {e}") from e
    if not isinstance(meta, dict) or any(key not in meta for key in _META_KEYS):
        raise ValueError(f"index metadata {meta_path} lacks some of {list(_META_KEYS)}")
    if meta["format"] != FORMAT_VERSION:
        raise ValueError(f"index metadata {meta_path} has format {meta['format']}, expected {FORMAT_VERSION}")
    return meta
