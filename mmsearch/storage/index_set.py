"""The FAISS indexes of one embedding space, one per vector kind, kept in step with SQL.

On first use an index is loaded from disk and caught up from SQL (rows added after its
watermark, rows deleted since it was saved), or built from SQL when its file is missing or
unreadable. Saves are atomic and throttled. Searches hold the read side of a readers-writer
lock, so they run at once (FAISS searches release the GIL); opening, catching up, adding,
removing and saving hold the write side, so a search never sees an index half changed.
"""

from __future__ import annotations

import logging
import re
import time
from pathlib import Path

import numpy as np

from .files import digest
from .rwlock import ReadWriteLock
from .store import Store
from .vector_index import VectorIndex

log = logging.getLogger(__name__)


def space_slug(space: str) -> str:
    readable = re.sub(r"[^A-Za-z0-9]+", "-", space.split("|")[0].split("@")[0]).strip("-")[:40]
    return f"{readable}-{digest(space, 'sha1', 10)}"


class IndexSet:
    def __init__(
        self,
        store: Store,
        directory: Path,
        space: str,
        dim: int,
        save_every_s: float = 30.0,
        use_gpu: str | bool = "auto",
        kind_spaces: dict[str, str] | None = None,
    ):
        self.store, self.directory, self.space, self.dim = store, Path(directory), space, dim
        self.kind_spaces = dict(kind_spaces or {})  # kinds whose vectors live in a derived space (pooled video vectors)
        self.save_every_s, self.use_gpu = save_every_s, use_gpu
        self._indexes: dict[str, VectorIndex] = {}
        self._dirty: set[str] = set()
        self._last_save = time.monotonic()
        self._last_refresh: dict[str, float] = {}
        self.lock = ReadWriteLock()

    def space_of(self, kind: str) -> str:
        return self.kind_spaces.get(kind, self.space)

    def path(self, kind: str) -> Path:
        return self.directory / f"{space_slug(self.space_of(kind))}.{kind}.faiss"

    def get(self, kind: str) -> VectorIndex:
        """The kind's index, opened (and caught up from SQL) on first use."""
        index = self._indexes.get(kind)
        if index is not None:
            return index
        with self.lock.write():
            if kind not in self._indexes:
                self._indexes[kind] = self._open(kind)
            return self._indexes[kind]

    def _open(self, kind: str) -> VectorIndex:
        path = self.path(kind)
        try:
            index = VectorIndex.load(path, use_gpu=self.use_gpu)
            if index.dim != self.dim:
                raise ValueError(f"index dim {index.dim} != encoder dim {self.dim}")
        except (FileNotFoundError, ValueError) as e:
            if path.exists():
                log.warning("rebuilding %s from SQL: %s", path.name, e)
            return self.rebuild(kind)
        return self._catch_up(kind, index)

    def _catch_up(self, kind: str, index: VectorIndex) -> VectorIndex:
        """Bring `index` in step with SQL (rows added after its watermark, rows deleted);
        rebuild from SQL when that cannot reconcile the two."""
        live = self.store.vector_ids(self.space_of(kind), (kind,))
        counts = index.catch_up(live, self.store.iter_vectors(self.space_of(kind), (kind,), after_id=index.watermark))
        if index.ntotal != len(live):
            log.warning(
                "%s disagrees with SQL after catch-up (%d vs %d vectors); rebuilding",
                self.path(kind).name,
                index.ntotal,
                len(live),
            )
            return self.rebuild(kind)
        if counts["added"] or counts["removed"]:
            log.info("%s caught up from SQL: %s", self.path(kind).name, counts)
            self._dirty.add(kind)
        return index

    def rebuild(self, kind: str) -> VectorIndex:
        """Build the kind's index from SQL alone (the source of truth)."""
        with self.lock.write():
            ids, vecs = [], []
            for batch_ids, batch_vecs in self.store.iter_vectors(self.space_of(kind), (kind,)):
                ids.append(batch_ids)
                vecs.append(batch_vecs)
            all_ids = np.concatenate(ids) if ids else np.zeros((0,), np.int64)
            all_vecs = np.concatenate(vecs) if vecs else np.zeros((0, self.dim), np.float32)
            index = VectorIndex.build(all_ids, all_vecs, dim=self.dim, use_gpu=self.use_gpu)
            self._indexes[kind] = index
            self._dirty.add(kind)
            self.checkpoint(force=True)
            return index

    def sizes(self) -> dict[str, int]:
        """Vectors held per kind, for the indexes opened so far (a scrape opens nothing)."""
        with self.lock.read():
            return {kind: index.ntotal for kind, index in self._indexes.items()}

    def add(self, kind: str, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Add rows just committed to SQL, skipping any the index already holds (opening it
        may have caught them up from SQL already)."""
        with self.lock.write():
            index = self.get(kind)
            fresh = ~index.contains(ids)
            if fresh.any():
                index.add(ids[fresh], vectors[fresh])
                self._dirty.add(kind)

    def remove(self, ids: list[int]) -> None:
        if not len(ids):
            return
        with self.lock.write():
            arr = np.asarray(ids, np.int64)
            for kind, index in self._indexes.items():
                if index.remove(arr):
                    self._dirty.add(kind)

    def search(self, kind: str, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        self.get(kind)
        self._refresh(kind)  # before reading: a reader may not take the write side
        with self.lock.read():
            return self._indexes[kind].search(queries, k)

    def _refresh(self, kind: str) -> None:
        """Catch up with rows another process (a CLI index job beside the server) committed;
        checked at most once a second with one cheap SQL query, outside the lock: only a
        change takes the write side."""
        now = time.monotonic()
        if now - self._last_refresh.get(kind, 0.0) < 1.0:
            return
        self._last_refresh[kind] = now  # two searches may both check: harmless
        max_id, count = self.store.vector_stats(self.space_of(kind), kind)
        if not self._behind(kind, max_id, count):
            return
        with self.lock.write():
            if self._behind(kind, max_id, count):  # not caught up by another search meanwhile
                self._indexes[kind] = self._catch_up(kind, self._indexes[kind])

    def _behind(self, kind: str, max_id: int, count: int) -> bool:
        index = self._indexes[kind]
        return max_id > index.watermark or count != index.ntotal

    def size(self, kind: str) -> int:
        self.get(kind)
        with self.lock.read():
            return self._indexes[kind].ntotal

    def checkpoint(self, force: bool = False) -> None:
        """Save dirty indexes, at most every save_every_s seconds unless forced."""
        with self.lock.write():
            if not self._dirty or (not force and time.monotonic() - self._last_save < self.save_every_s):
                return
            self.directory.mkdir(parents=True, exist_ok=True)
            if force:
                self._rechoose_factories()
            for kind in sorted(self._dirty):
                self._indexes[kind].save(self.path(kind), extra={"space": self.space_of(kind), "kind": kind})
            self._dirty.clear()
            self._last_save = time.monotonic()

    def _rechoose_factories(self) -> None:
        """An index that grew (or shrank) past a size threshold is rebuilt with the index type
        its size calls for (e.g. Flat -> HNSW at 100k vectors)."""
        for kind, index in list(self._indexes.items()):
            if VectorIndex.choose_factory(index.ntotal, self.dim) != index.factory:
                log.info(
                    "rebuilding the %s index as %s for %d vectors",
                    kind,
                    VectorIndex.choose_factory(index.ntotal, self.dim),
                    index.ntotal,
                )
                self.rebuild(kind)
