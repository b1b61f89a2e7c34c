"""What the FAISS IndexSet (index_set) and the MilvusIndexSet (milvus_index) share: one index
per vector kind of an embedding space, opened on first use, kept in step with SQL (the source
of truth) under one readers-writer lock, tuned and rebuilt on an upkeep thread.

A backend says how a kind's index is opened, caught up from SQL, written to, deleted from and
saved, and how its upkeep chooses types. Its index answers `ntotal` (live vectors) and
`watermark` (the highest id it was given), which tell whether SQL moved past it.
"""

from __future__ import annotations

import re
import time
from abc import ABC, abstractmethod
from typing import Generic, TypeVar

import numpy as np

from . import index_tuning
from .files import digest
from .index_upkeep import IndexUpkeep
from .rwlock import ReadWriteLock
from .store import Store

INDEXED_KINDS = ("image", "segment", "video")  # the vector kinds with an index (frames have none)
# How often a search looks for rows another process committed: counting a kind's vectors
# costs ~0.5 s at 1M, so not at every search.
REFRESH_EVERY_S = 1.0

Index = TypeVar("Index")  # what a set holds per kind: a FAISS VectorIndex or a MilvusCollection


def space_slug(space: str) -> str:
    readable = re.sub(r"[^A-Za-z0-9]+", "-", space.split("|")[0].split("@")[0]).strip("-")[:40]
    return f"{readable}-{digest(space, 'sha1', 10)}"


class IndexSetBase(ABC, Generic[Index]):
    def __init__(
        self,
        store: Store,
        space: str,
        dim: int,
        save_every_s: float,
        kind_spaces: dict[str, str] | None,
        target_recall: float,
        memory_budget: int | None,
        text_queries,
        upkeep_name: str,
    ):
        self.store, self.space, self.dim = store, space, dim
        self.kind_spaces = dict(kind_spaces or {})  # kinds whose vectors live in a derived space (pooled video vectors)
        self.save_every_s, self.target_recall = save_every_s, target_recall
        self.memory_budget = memory_budget  # bytes for this set's indexes together; None: no limit
        # () -> (m, dim) text embeddings of probe phrases (the text-like queries of tuning), or None
        self.text_queries = text_queries
        self._indexes: dict[str, Index] = {}  # kind -> its index, once opened
        self._dirty: set[str] = set()  # kinds changed since their last save
        self._last_save = time.monotonic()
        self._last_refresh: dict[str, tuple[float, int | None]] = {}  # kind -> (when, commit version)
        self.lock = ReadWriteLock()
        self.upkeep = IndexUpkeep(upkeep_name)

    # -- what a backend does -------------------------------------------------------------------
    @abstractmethod
    def fitted(self, kind: str) -> Index:
        """The kind's index caught up from SQL and of a type its row count calls for (an
        import's end)."""

    @abstractmethod
    def _open(self, kind: str) -> Index:
        """The kind's index, caught up from SQL (made from SQL when there is none). The caller
        holds the write lock."""

    @abstractmethod
    def _catch_up(self, kind: str, index: Index) -> Index:
        """`index` in step with SQL's rows of the kind, or one made anew where it cannot be.
        The caller holds the write lock."""

    @abstractmethod
    def _write_rows(self, index: Index, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Write rows the index does not hold yet."""

    @abstractmethod
    def _delete_rows(self, index: Index, ids: np.ndarray) -> int:
        """Delete the held ones of `ids`; how many were held."""

    @abstractmethod
    def _save_kind(self, kind: str, index: Index) -> None:
        """Make the kind's changes last (a file written, a collection flushed)."""

    @abstractmethod
    def _keep_types(self) -> None:
        """Queue the rebuild of indexes whose size calls for another type, and the tuning of
        those grown since theirs."""

    # -- opening and following SQL ---------------------------------------------------------------
    def space_of(self, kind: str) -> str:
        return self.kind_spaces.get(kind, self.space)

    def get(self, kind: str) -> Index:
        """The kind's index, opened (and caught up from SQL) on first use."""
        index = self._indexes.get(kind)
        if index is not None:
            return index
        with self.lock.write():
            if kind not in self._indexes:
                self._indexes[kind] = self._open(kind)
            return self._indexes[kind]

    def caught_up(self, kind: str) -> Index:
        """The kind's index in step with SQL now (not at the next once-a-second look)."""
        self.get(kind)
        with self.lock.write():
            self._indexes[kind] = self._catch_up(kind, self._indexes[kind])
            return self._indexes[kind]

    def _refresh(self, kind: str) -> None:
        """Catch up with rows another process (a CLI index job beside the server) committed; checked
        at most every REFRESH_EVERY_S, outside the lock, only when something was committed since the
        last check (Store.commits: the check counts the kind's vectors); only a change writes."""
        now = time.monotonic()
        checked_at, seen = self._last_refresh.get(kind, (0.0, None))
        if now - checked_at < REFRESH_EVERY_S:
            return
        version = self.store.commits.version()
        self._last_refresh[kind] = (now, version)  # two searches may both check: harmless
        if version is not None and version == seen:
            return
        max_id, count = self.store.vector_stats(self.space_of(kind), kind)
        if not self._behind(kind, max_id, count):
            return
        with self.lock.write():
            if self._behind(kind, max_id, count):  # not caught up by another search meanwhile
                self._indexes[kind] = self._catch_up(kind, self._indexes[kind])

    def _behind(self, kind: str, max_id: int, count: int) -> bool:
        index = self._indexes[kind]
        return max_id > index.watermark or count != index.ntotal

    def memory_share(self, kind: str, count: int) -> int | None:
        """The kind's part of the memory budget: in proportion to its vectors among this set's
        indexed kinds (None: no budget, as for a Milvus server, whose memory is not ours)."""
        if self.memory_budget is None:
            return None
        counts = {k: self.store.vector_stats(self.space_of(k), k)[1] for k in INDEXED_KINDS}
        counts[kind] = count
        return int(self.memory_budget * count / max(1, sum(counts.values())))

    def _probes(self, kind: str) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """Tuning's query sets for the kind (index_tuning.probe_queries) and their exact top 10,
        streamed from SQL."""
        space = self.space_of(kind)
        _, count = self.store.vector_stats(space, kind)
        step = max(1, count // index_tuning.QUERIES_PER_KIND)
        sample = next(self.store.iter_vectors(space, (kind,), every=step, batch=index_tuning.QUERIES_PER_KIND))[1]
        text = self.text_queries() if self.text_queries is not None and kind != "video" else None
        queries = index_tuning.probe_queries(sample, text=text)
        return queries, index_tuning.exact_top_k_of(queries, lambda: self.store.iter_vectors(space, (kind,)))

    def wait_upkeep(self, timeout: float) -> bool:
        """Wait for queued tuning and rebuilds (a CLI before it exits); False if still busy."""
        return self.upkeep.wait(timeout)

    def close(self) -> None:
        """Drop queued tuning and rebuilds (the next open queues what is still due)."""
        self.upkeep.close()

    # -- sizes and changes -----------------------------------------------------------------------
    def sizes(self) -> dict[str, int]:
        """Vectors held per kind, for the indexes opened so far (a scrape opens nothing)."""
        with self.lock.read():
            return {kind: index.ntotal for kind, index in self._indexes.items()}

    def size(self, kind: str) -> int:
        self.get(kind)
        with self.lock.read():
            return self._indexes[kind].ntotal

    def add(self, kind: str, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Add rows just committed to SQL, skipping any the index already holds (opening it
        may have caught them up from SQL already)."""
        with self.lock.write():
            index = self.get(kind)
            ids = np.asarray(ids, np.int64)
            fresh = ~index.contains(ids)
            if fresh.any():
                self._write_rows(index, ids[fresh], np.asarray(vectors)[fresh])
                self._dirty.add(kind)

    def remove(self, ids: list[int]) -> None:
        if not len(ids):
            return
        with self.lock.write():
            arr = np.asarray(ids, np.int64)
            for kind, index in self._indexes.items():
                if self._delete_rows(index, arr):
                    self._dirty.add(kind)

    def checkpoint(self, force: bool = False) -> None:
        """Save the indexes changed, at most every save_every_s seconds unless forced. A forced
        one (an index job's end) also queues the rebuild of indexes whose size calls for another
        type, and the tuning of those grown since theirs."""
        with self.lock.write():
            if force:
                self._keep_types()
            if not self._dirty or (not force and time.monotonic() - self._last_save < self.save_every_s):
                return
            self._save()

    def _save(self) -> None:
        for kind in sorted(self._dirty):
            self._save_kind(kind, self._indexes[kind])
        self._dirty.clear()
        self._last_save = time.monotonic()
