"""VectorIndex: one FAISS index over L2-normalised float32 vectors, searched by inner product.

IDs are the caller's int64 ids (SQL vector row ids). The index is a derived artifact: SQL
holds the vectors, an index file is saved atomically with a watermark (the highest id ever
added) and, on open, is caught up from SQL; a missing or unreadable file raises
FileNotFoundError / ValueError so the caller rebuilds it.

How ids are kept, per index family (see faiss_parts):
- IVF indexes store ids in their inverted lists and remove them natively.
- Flat and HNSW are wrapped in IndexIDMap2. HNSW cannot remove, so removed ids become
  tombstones: filtered out of searches with an IDSelector and dropped by compact(), which
  runs by itself once tombstones exceed 20% of the stored vectors.

The CPU index is the master copy. With a GPU, Flat and IVF indexes are mirrored onto all
GPUs (sharded) for search (gpu_mirror); the mirror is rebuilt lazily after a change, so
saving and removal always work on the CPU index. Searches may run in several threads at
once (the lazily built tombstone filter and GPU mirror are made under a lock of their own);
changes may not run beside anything else (IndexSet's readers-writer lock sees to both).

A search may keep to a subset of ids (subset(); faiss_parts.search_subset, on the CPU index);
scores() scores a small subset exactly when the index keeps its vectors (Flat, HNSW,Flat).

The factory choice and memory estimate live in index_choice, the files on disk in
index_files, the FAISS plumbing in faiss_parts.
"""

from __future__ import annotations

import itertools
import logging
import os
import threading
from collections.abc import Callable, Iterable
from pathlib import Path

import faiss
import numpy as np

from .faiss_parts import (
    IdSubset,
    as_ids,
    as_vectors,
    base_index,
    fill_index,
    find_sorted,
    flat_scores,
    flat_storage,
    held_ids,
    make_subset,
    new_faiss_index,
    search_subset,
    train_index,
    training_clusters,
)
from .gpu_mirror import GPU_MAX_K, GpuMirror, resolve_use_gpu
from .index_choice import TRAIN_POINTS_PER_CENTROID, choose_factory, training_sample_size
from .index_files import FORMAT_VERSION, META_KEYS, load_index_files, write_index_files

log = logging.getLogger(__name__)

AUTO_COMPACT_FRACTION = 0.2
SEARCH_BATCH = 4096
COMPACT_CHUNK = 65_536
_STATES = itertools.count(1)  # every state of every index gets a number no other state had


def empty_hits(queries, k: int, dim: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The queries as float32 rows and a top-k answer of empty slots (id -1, score -inf) to fill."""
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    x = as_vectors(queries, dim)
    return x, np.full((len(x), k), -np.inf, dtype=np.float32), np.full((len(x), k), -1, dtype=np.int64)


class VectorIndex:
    """A FAISS index with caller ids, removal for every factory, GPU search and atomic save."""

    def __init__(self, dim: int, factory: str | None = None, use_gpu: str | bool = "auto"):
        if dim < 1:
            raise ValueError(f"dim must be positive, got {dim}")
        self._dim = int(dim)
        self._factory = factory or "Flat"
        self._index = new_faiss_index(self._dim, self._factory)
        self._use_gpu = resolve_use_gpu(use_gpu) and not self._is_hnsw
        self._gpu = GpuMirror()
        self._watermark = 0
        self._tombstones: set[int] = set()
        self._tombstone_filter = None
        self.state = next(_STATES)  # a number that changes whenever the ids or vectors held change
        self._held: tuple[np.ndarray, np.ndarray | None] | None = None  # sorted live ids, their rows
        self._lazy = threading.Lock()  # concurrent searches build the filter, held ids and mirror once
        self.meta_extra: dict = {}

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
        index = cls(dim, factory or choose_factory(len(vectors), dim, memory_budget_bytes), use_gpu)
        if len(vectors) and not index.is_trained:
            index.train(vectors)
        index.add(ids, vectors)
        return index

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
        return isinstance(base_index(self._index), faiss.IndexHNSW)

    def __repr__(self) -> str:
        return f"VectorIndex(dim={self._dim}, factory={self._factory!r}, ntotal={self.ntotal}, gpu={self._use_gpu})"

    def ids(self) -> np.ndarray:
        """The live ids held, sorted."""
        return self._held_ids()[0].copy()

    def _held_ids(self) -> tuple[np.ndarray, np.ndarray | None]:
        with self._lazy:  # once per state
            self._held = self._held or held_ids(self._index, self.tombstones)
            return self._held

    def _changed(self) -> None:
        """Called after every change of the ids or vectors held."""
        self.state, self._held = next(_STATES), None

    def train(self, vectors) -> None:
        """Train an IVF/PQ/SQ index; needs 39 vectors per centroid. No-op when trained."""
        if self.is_trained:
            return
        clusters = training_clusters(self._index)
        vectors = np.asarray(vectors)
        if len(vectors) > training_sample_size(clusters):
            # k-means would subsample anyway; doing it first avoids normalising a full copy.
            vectors = vectors[:: len(vectors) // training_sample_size(clusters)]
        needed = TRAIN_POINTS_PER_CENTROID * clusters
        if len(vectors) < needed:
            raise ValueError(
                f"{self._factory} needs at least {needed} training vectors, got {len(vectors)}; "
                "pass more or choose a smaller nlist"
            )
        log.info("training %s on %d vectors", self._factory, len(vectors))
        train_index(self._index, vectors)
        self._gpu.drop()
        self._changed()

    def add(self, ids, vectors) -> None:
        """Add vectors under the caller's ids; trains an untrained index on them first.

        Raises ValueError for a wrong dim, ids already held, or too few vectors to train.
        """
        x = as_vectors(vectors, self._dim)
        ids = as_ids(ids, len(x))
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
        self._gpu.drop()
        self._changed()

    def fill(self, count: int, batches: Callable[[], Iterable[tuple]]) -> None:
        """Add the `count` vectors of `batches()` ((ids, vectors), the same rows each call, ids
        unique) to this empty index, its storage allocated at its size first (fill_index)."""
        if self.ntotal or not self.is_trained:
            raise ValueError("fill() adds to an empty, trained index")
        top = fill_index(
            self._index, count, lambda: ((as_ids(i, len(v)), as_vectors(v, self._dim)) for i, v in batches())
        )
        self._watermark = max(self._watermark, top)
        self._gpu.drop()
        self._changed()

    def remove(self, ids) -> int:
        """Remove ids; returns how many were held. Ids not held are ignored."""
        ids = np.unique(np.asarray(ids, dtype=np.int64).reshape(-1))
        if not len(ids) or not self.ntotal:
            return 0
        if self._is_hnsw:
            return self._tombstone(ids)
        removed = int(self._index.remove_ids(ids))
        if removed:
            self._gpu.drop()
            self._changed()
        return removed

    def _tombstone(self, ids: np.ndarray) -> int:
        fresh = ids[self.contains(ids)]
        self._tombstones.update(fresh.tolist())
        self._tombstone_filter = None
        self._changed()
        if len(self._tombstones) > AUTO_COMPACT_FRACTION * self._index.ntotal:
            self.compact()
        return len(fresh)

    def contains(self, ids: np.ndarray) -> np.ndarray:
        """Which ids are live in the index (a boolean mask). Ids above the watermark never are, so the
        common case (new SQL rows) skips listing the index."""
        mask = np.zeros(len(ids), dtype=bool)
        maybe = ids <= self._watermark
        if maybe.any():
            mask[maybe] = find_sorted(ids[maybe], self._held_ids()[0])[0]
        return mask

    def compact(self) -> int:
        """Rebuild an HNSW index without its tombstones; returns how many were dropped.

        Vectors are reconstructed from the graph's storage (exact for HNSW,Flat). Other
        index families remove immediately, so this is a no-op for them.
        """
        if not self._tombstones:
            return 0
        old_base, old_ids = base_index(self._index), faiss.vector_to_array(self._index.id_map)
        dead = np.isin(old_ids, self.tombstones)
        fresh = new_faiss_index(self._dim, self._factory)
        base_index(fresh).hnsw.efSearch = old_base.hnsw.efSearch
        if not fresh.is_trained:
            live = old_ids[~dead]
            sample = live[:: max(1, len(live) // training_sample_size(training_clusters(fresh)))]
            fresh.train(self._index.reconstruct_batch(sample))
        for start in range(0, len(old_ids), COMPACT_CHUNK):
            stop = min(start + COMPACT_CHUNK, len(old_ids))
            keep = ~dead[start:stop]
            fresh.add_with_ids(old_base.reconstruct_n(start, stop - start)[keep], old_ids[start:stop][keep])
        dropped = len(self._tombstones)
        log.info("compacted %s: dropped %d tombstones, %d vectors remain", self._factory, dropped, fresh.ntotal)
        self._index, self._tombstones, self._tombstone_filter = fresh, set(), None
        self._changed()
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

    def set_search_params(self, nprobe: int | None = None, ef_search: int | None = None) -> None:
        """Set IVF nprobe and/or HNSW efSearch (more: better recall, slower)."""
        for name, value in (("nprobe", nprobe), ("efSearch", ef_search)):
            if value is None:
                continue
            try:
                faiss.ParameterSpace().set_index_parameter(self._index, name, value)
            except RuntimeError as e:
                raise ValueError(f"{name} does not apply to the index {self._factory!r}") from e
            self._gpu.set_parameter(name, value)

    def subset(self, ids) -> IdSubset:
        """The ids among `ids` (any order, repeats and ids not held allowed) that the index holds
        live, prepared for search(..., subset=) and scores()."""
        return make_subset(np.asarray(ids, dtype=np.int64), *self._held_ids(), self.state)

    def scores(self, q, subset: IdSubset) -> np.ndarray | None:
        """Exact inner products of one query with a subset's stored vectors, in its id order;
        None when the index keeps only codes (IVF, SQ, PQ) and cannot give them back."""
        rows, storage = self._current(subset).rows, flat_storage(self._index)
        return None if rows is None or storage is None else flat_scores(storage, as_vectors(q, self._dim)[0], rows)

    def search(self, queries, k: int, subset: IdSubset | np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Top-k by inner product: (scores float32 (n, k), ids int64 (n, k)); with `subset` (an
        IdSubset, or ids), among those ids alone. Empty slots (fewer than k live vectors) have
        id -1 and score -inf."""
        x, scores, ids = empty_hits(queries, k, self._dim)
        if subset is not None:
            subset = self._current(subset if isinstance(subset, IdSubset) else self.subset(subset))
        if self.ntotal == 0 or (subset is not None and not len(subset)):
            return scores, ids
        for start in range(0, len(x), SEARCH_BATCH):
            batch = slice(start, start + SEARCH_BATCH)
            if subset is None:
                scores[batch], ids[batch] = self._search_batch(x[batch], k)
            else:  # on the CPU index: a GPU index takes no CPU selector
                scores[batch], ids[batch] = search_subset(self._index, x[batch], k, subset)
        scores[ids < 0] = -np.inf
        return scores, ids

    def _current(self, subset: IdSubset) -> IdSubset:
        """`subset`, prepared again when the index changed since it was."""
        return subset if subset.state == self.state else self.subset(subset.ids)

    def _search_batch(self, x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        if self._tombstones:
            return self._search_skipping_tombstones(x, k)
        if self._use_gpu and k <= GPU_MAX_K:
            with self._lazy:
                mirror = self._gpu.get(self._index, self._factory)
            if mirror is not None:
                return mirror.search(x, k)
            self._use_gpu = False
        return self._index.search(x, k)

    def _search_skipping_tombstones(self, x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        with self._lazy:
            if self._tombstone_filter is None:
                batch = faiss.IDSelectorBatch(self.tombstones)
                self._tombstone_filter = (batch, faiss.IDSelectorNot(batch))
        ef = base_index(self._index).hnsw.efSearch
        params = faiss.SearchParametersHNSW(sel=self._tombstone_filter[1], efSearch=ef)
        scores, ids = self._index.search(x, k, params=params)
        short = (ids >= 0).sum(axis=1) < min(k, self.ntotal)
        if short.any():
            # Tombstones crowded the beam for these rows; a beam wider than k plus all
            # tombstones finds k live results whenever they exist.
            params.efSearch = max(ef, k + len(self._tombstones))
            scores[short], ids[short] = self._index.search(x[short], k, params=params)
        return scores, ids

    def save(self, path: str | os.PathLike, extra: dict | None = None) -> None:
        """Write the index and its sidecar `<path>.meta.json` atomically (index_files): factory,
        dim, watermark, ntotal (tombstoned included), tombstones, format and `extra`'s keys."""
        extra = extra or {}
        clash = set(extra) & set(META_KEYS)
        if clash:
            raise ValueError(f"extra may not override reserved keys {sorted(clash)}")
        meta = {
            **extra,
            "factory": self._factory,
            "dim": self._dim,
            "watermark": self._watermark,
            "ntotal": int(self._index.ntotal),
            "tombstones": self.tombstones.tolist(),
            "format": FORMAT_VERSION,
        }
        write_index_files(self._index, Path(path), meta)
        self.meta_extra = dict(extra)

    @classmethod
    def load(cls, path: str | os.PathLike, use_gpu: str | bool = "auto") -> "VectorIndex":
        """Read an index saved by save(). FileNotFoundError if it or its sidecar is missing;
        ValueError if either is unreadable or they disagree (rebuild from SQL then)."""
        index, meta = load_index_files(Path(path))
        loaded = cls(meta["dim"], meta["factory"], use_gpu)
        loaded._index = index
        loaded._watermark = int(meta["watermark"])
        loaded._tombstones = set(int(i) for i in meta["tombstones"])
        loaded._changed()
        loaded.meta_extra = {key: value for key, value in meta.items() if key not in META_KEYS}
        return loaded
