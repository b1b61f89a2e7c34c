"""Pre-filtered search: a request's filters resolved in SQL to the vector ids they leave, and
each vector kind's search restricted to those ids.

The media passing the filters are found by their own indexes (the path index for a prefix)
and their vector ids by the media_id index, both read without touching a vector row; each
kind's index keeps the ids it holds (a FAISS id is the SQL vector row id, so holding an id
says its kind and space). The resolved subsets are kept per filter until an index they
came from changes (its `state`): a filter repeated while the library does not change is
resolved once.

A subset is then searched one of two ways, whichever costs less:
- exactly: its vectors scored where the index stores them (Flat, HNSW,Flat), else read
  from SQL (Store.vectors_by_id); cost grows with the subset's size;
- through the ANN index with an IDSelector (VectorIndex.search(..., subset=)); cost grows
  with the share of the index the subset leaves out (HNSW's beam and IVF's probes widen by
  the inverse share), or is that of a scan of the ids (Flat).
The crossover is a subset size, EXACT_MAX_FROM_INDEX or EXACT_MAX_FROM_SQL vectors: constants
from a measurement (below), not measured at run time.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
from sqlalchemy import select

from ..storage.index_set import IndexSet
from ..storage.store import Media, Store, Vector
from ..storage.vector_index import IdSubset
from .media_filters import filter_key, filtered, media_conditions
from .query import SearchRequest

# Subset sizes up to which an exact search beats the ANN search with a selector; constants
# from a measurement, benchmarks/bench_filtered.py (1M x 512, HNSW32,Flat, 2 CPU cores, k=40):
# scoring the index's stored vectors costs ~0.3 us per vector (9.6 ms at 20k, 15.5 ms at 50k),
# the HNSW walk widened by the inverse share ~6e5 / size ms (29 ms at 20k, 12.6 ms at 50k):
# they cross near 44k. Reading vectors from SQL costs ~14 us per vector (14 ms for 1k); it
# serves only indexes that keep codes (IVF), whose selector search costs a few ms even when
# it probes every list, so it pays off for a few hundred vectors at most (that IVF cost is
# bench_search.py's single-query IVF1024 figure, not measured with a selector).
EXACT_MAX_FROM_INDEX = 40_000
EXACT_MAX_FROM_SQL = 500
CACHED_FILTERS = 16  # resolved filters kept (each holds its subsets' ids: 8-16 bytes per id)


def vector_ids_of_media(store: Store, conditions: list) -> np.ndarray:
    """The ids of every vector (of any kind and space) whose media row meets the SQLAlchemy
    `conditions`. Only indexes are read (media's, then vectors' media_id index), never a
    vector row: a selective filter costs its own rows, not the table's."""
    query = select(Vector.id).where(Vector.media_id.in_(select(Media.id).where(*conditions)))
    with store.engine.connect() as c:
        return np.fromiter(c.scalars(query), dtype=np.int64)


@dataclass(frozen=True)
class _Resolved:
    states: tuple[int, ...]  # of the kinds' indexes when resolved
    subsets: dict[str, IdSubset]


class Prefilter:
    """Resolves requests' filters to per-kind id subsets, and searches a kind within one."""

    def __init__(self, store: Store, indexes: IndexSet):
        self.store, self.indexes = store, indexes
        self._cache: OrderedDict[tuple, _Resolved] = OrderedDict()
        self._lock = threading.Lock()

    def subsets(self, req: SearchRequest, kinds: tuple[str, ...]) -> dict[str, IdSubset] | None:
        """Each kind's ids held by its index whose media pass the request's filters; None
        when the request has no filter to resolve."""
        if not filtered(req):
            return None
        indexes = [self.indexes.get(kind) for kind in kinds]
        key = (kinds, *filter_key(req))
        states = tuple(index.state for index in indexes)
        with self._lock:
            cached = self._cache.get(key)
            if cached is not None and cached.states == states:
                self._cache.move_to_end(key)
                return cached.subsets
        ids = vector_ids_of_media(self.store, media_conditions(self.store, req))
        with self.indexes.lock.read():
            resolved = _Resolved(states, {kind: index.subset(ids) for kind, index in zip(kinds, indexes)})
        with self._lock:
            self._cache[key] = resolved
            self._cache.move_to_end(key)
            while len(self._cache) > CACHED_FILTERS:
                self._cache.popitem(last=False)
        return resolved.subsets

    def search(self, kind: str, q: np.ndarray, k: int, subset: IdSubset) -> tuple[np.ndarray, np.ndarray]:
        """The top-k (scores, ids) of the kind's vectors within `subset`, best first, ties by id."""
        ids, scores = subset.ids, None
        if len(ids) <= EXACT_MAX_FROM_INDEX:
            with self.indexes.lock.read():  # a change may move the index's storage
                scores = self.indexes.get(kind).scores(q, subset)
        if scores is None and len(ids) <= EXACT_MAX_FROM_SQL:
            stored = self.store.vectors_by_id(ids.tolist())
            ids = np.asarray([i for i in ids.tolist() if i in stored], np.int64)  # SQL may have deleted some
            scores = np.stack([stored[i] for i in ids.tolist()]) @ q if len(ids) else np.zeros(0, np.float32)
        if scores is None:
            found_scores, found = self.indexes.search(kind, q[None, :], k, subset=subset)
            live = found[0] >= 0
            return found_scores[0][live], found[0][live]
        return exact_top_k(scores, ids, k)


def exact_top_k(scores: np.ndarray, ids: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k best (scores, ids), best first, ties by id."""
    if k < len(scores):
        # Keep every score tying the k-th, so ties are broken by id below, not by position.
        kth = np.partition(scores, len(scores) - k)[len(scores) - k]
        keep = scores >= kth
        scores, ids = scores[keep], ids[keep]
    order = np.lexsort((ids, -scores))[:k]
    return scores[order].astype(np.float32), ids[order]
