"""The FAISS indexes of one embedding space, one per vector kind, kept in step with SQL.

On first use an index is loaded from disk and caught up from SQL (rows added after its
watermark, rows deleted since it was saved), or built from SQL when its file is missing or
unreadable. Saves are atomic and throttled. Searches hold the read side of a readers-writer
lock, so they run at once (FAISS searches release the GIL); opening, catching up, adding,
removing and saving hold the write side, so a search never sees an index half changed.

Each approximate index is tuned by measurement (index_tuning: the cheapest search setting
reaching the target recall) once built and again when it has doubled or halved; an index
whose size calls for other types (past 100k vectors, Flat -> HNSW or IVF, whichever measures
faster: index_selection; or a memory budget) is rebuilt. Both run on a worker thread
(index_upkeep) while searches use the index they have; a rebuilt index is caught up from SQL
and swapped in under a brief write. What this set shares with the Milvus one (opening on first
use, following other processes' commits, adding, removing, checkpoints) is in index_set_base.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path

import numpy as np

from . import index_tuning
from .code_rerank import as_served, search_depth
from .index_choice import candidate_factories, estimate_memory_bytes, quickest_to_build, still_suits
from .index_files import read_meta
from .index_selection import build_index, build_measured
from .index_set_base import IndexSetBase, space_slug
from .rwlock import ReadWriteLock
from .store import Store
from .vector_index import VectorIndex

log = logging.getLogger(__name__)


class IndexSet(IndexSetBase[VectorIndex]):
    def __init__(
        self,
        store: Store,
        directory: Path,
        space: str,
        dim: int,
        save_every_s: float = 30.0,
        use_gpu: str | bool = "auto",
        kind_spaces: dict[str, str] | None = None,
        target_recall: float = index_tuning.DEFAULT_TARGET_RECALL,
        memory_budget: int | None = None,
        text_queries=None,
    ):
        super().__init__(
            store, space, dim, save_every_s, kind_spaces, target_recall, memory_budget, text_queries, space_slug(space)
        )
        self.directory, self.use_gpu = Path(directory), use_gpu

    def path(self, kind: str) -> Path:
        return self.directory / f"{space_slug(self.space_of(kind))}.{kind}.faiss"

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
        tuning = index_tuning.Tuning.from_meta(index.meta_extra.get("tuning"))
        if tuning is not None and tuning.factory == index.factory:
            index_tuning.apply_params(index, tuning.params)
        index = self._catch_up(kind, index)
        self._keep_up(kind, index)
        return index

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

    def fitted(self, kind: str) -> VectorIndex:
        """The kind's index, of a type its row count calls for: the saved file caught up from
        SQL when its type still suits, else built anew from SQL in batches (never a Flat index
        of every row first), of the type that measures best (an import's, nothing searches it)."""
        _, count = self.store.vector_stats(self.space_of(kind), kind)
        try:
            saved = read_meta(self.path(kind))["factory"]
        except (FileNotFoundError, ValueError):
            saved = None
        if saved is not None and still_suits(
            saved, candidate_factories(count, self.dim, self.memory_share(kind, count))
        ):
            return self.caught_up(kind)
        return self.rebuild(kind, searched=False)

    def rebuild(self, kind: str, searched: bool = True) -> VectorIndex:
        """Build the kind's index from SQL alone (the source of truth). While searches wait for
        it: of the types that fit, the quickest to build (IVF takes minutes where a graph takes
        ten), untuned; the measured choice among them follows beside the searches
        (_rebuild_live). An index nothing searches yet (`searched` False: an import's) is the
        measured choice at once, and memory holds one candidate at a time, not three."""
        with self.lock.write():
            index, others = self._build_quick(kind) if searched else (self._build(kind), False)
            self._indexes[kind] = index
            self._dirty.add(kind)
            self._save()
        if others:
            self.upkeep.submit("rebuild", kind, lambda: self._rebuild_live(kind))
        else:
            self._keep_up(kind, index)
        return index

    def _candidates(self, kind: str) -> tuple[list[str], int, Callable]:
        """The index types the kind's size and memory share allow, its vector count, and its
        vectors' batches from SQL (for index_selection)."""
        space = self.space_of(kind)
        _, count = self.store.vector_stats(space, kind)
        candidates = candidate_factories(count, self.dim, self.memory_share(kind, count))
        return candidates, count, functools.partial(self.store.iter_vectors, space, (kind,))

    def _build(self, kind: str) -> VectorIndex:
        """A new index, from SQL, of the type that measures best among those that fit
        (index_selection), tuned."""
        candidates, count, batches = self._candidates(kind)
        probes = self._probes(kind) if candidates != ["Flat"] and count else None
        self.directory.mkdir(parents=True, exist_ok=True)  # the best candidate so far waits there
        return build_measured(
            self.dim,
            candidates,
            batches,
            count,
            lambda index: self.tune(kind, index, probes),
            self.use_gpu,
            scratch=self.directory,
        )

    def _build_quick(self, kind: str) -> tuple[VectorIndex, bool]:
        """A new index, from SQL, of the type quickest to build among those that fit, untuned;
        and whether there were others to measure it against."""
        candidates, count, batches = self._candidates(kind)
        return build_index(self.dim, quickest_to_build(candidates), batches, count, self.use_gpu), len(candidates) > 1

    # -- upkeep: tuning and rebuilding off the search path ---------------------------------------
    def _keep_up(self, kind: str, index: VectorIndex) -> None:
        """Queue the tuning of an approximate index never tuned for its size or target."""
        if index.factory == "Flat" or index.ntotal == 0:
            return
        tuning = index_tuning.Tuning.from_meta(index.meta_extra.get("tuning"))
        if tuning is None or tuning.factory != index.factory or tuning.due(index.ntotal, self.target_recall):
            self.upkeep.submit("tune", kind, lambda: self._tune_live(kind))

    def tune(self, kind: str, index: VectorIndex, probes=None) -> index_tuning.Tuning:
        """Measure `index` (the kind's, live or about to be) against exact search over SQL and
        set its cheapest setting reaching the target recall; `probes` (from _probes) when the
        caller measures several indexes on the same ones."""
        queries, truth = probes or self._probes(kind)
        live = self._indexes.get(kind) is index
        tunable = _Tunable(index, self.lock if live else None, self._searcher(index, live))
        tuning = index_tuning.tune(tunable, queries, truth, self.target_recall)
        index.meta_extra["tuning"] = tuning.as_meta()
        log.info("tuned the %s index (%s): %s, recall %s", kind, index.factory, tuning.params, tuning.recall)
        return tuning

    def _tune_live(self, kind: str) -> None:
        index = self._indexes.get(kind)
        if index is None:
            return
        self.tune(kind, index)
        with self.lock.write():
            if self._indexes.get(kind) is index:
                self._dirty.add(kind)

    def _rebuild_live(self, kind: str) -> None:
        """Build the kind's index anew beside the live one, tune it, then swap it in (caught up
        with what SQL gained or lost meanwhile)."""
        fresh = self._build(kind)
        with self.lock.write():
            self._indexes[kind] = self._catch_up(kind, fresh)
            self._dirty.add(kind)
        log.info("rebuilt the %s index as %s (%d vectors)", kind, fresh.factory, fresh.ntotal)

    def search(self, kind: str, queries: np.ndarray, k: int, subset=None) -> tuple[np.ndarray, np.ndarray]:
        """The kind's top-k; with `subset` (ids, or an IdSubset from its index), among those ids alone."""
        self.get(kind)
        self._refresh(kind)  # before reading: a reader may not take the write side
        with self.lock.read():
            index = self._indexes[kind]
            found = index.search(queries, search_depth(index.factory, k), subset=subset)
        return as_served(index.factory, self.store.vectors_by_id, queries, found, k)

    def _searcher(self, index: VectorIndex, live: bool):
        """How tuning searches an index: as searches do (compressed codes re-scored exactly),
        under the read lock when it is the live one."""

        def search(queries, k: int):
            with self.lock.read() if live else nullcontext():
                found = index.search(queries, search_depth(index.factory, k))
            return as_served(index.factory, self.store.vectors_by_id, queries, found, k)

        return search

    # -- the backend's part of IndexSetBase --------------------------------------------------------
    def _write_rows(self, index: VectorIndex, ids: np.ndarray, vectors: np.ndarray) -> None:
        index.add(ids, vectors)

    def _delete_rows(self, index: VectorIndex, ids: np.ndarray) -> int:
        return index.remove(ids)

    def _save_kind(self, kind: str, index: VectorIndex) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        extra = {"space": self.space_of(kind), "kind": kind}
        extra.update({key: index.meta_extra[key] for key in ("tuning", "compared") if key in index.meta_extra})
        index.save(self.path(kind), extra=extra)

    def _keep_types(self) -> None:
        for kind, index in list(self._indexes.items()):
            wanted = candidate_factories(index.ntotal, self.dim, self.memory_share(kind, index.ntotal))
            if not still_suits(index.factory, wanted):
                log.info("rebuilding the %s index (one of %s) for %d vectors", kind, wanted, index.ntotal)
                self.upkeep.submit("rebuild", kind, lambda kind=kind: self._rebuild_live(kind))
            else:
                self._keep_up(kind, index)

    def info(self) -> list[dict]:
        """Per opened index: its type, size, estimated memory, search setting and last tuning."""
        with self.lock.read():
            out = []
            for kind, index in sorted(self._indexes.items()):
                entry = index_entry(
                    self.space_of(kind),
                    kind,
                    index.factory,
                    index.ntotal,
                    index.ntotal,
                    self.dim,
                    index.meta_extra.get("tuning"),
                    index.meta_extra.get("compared"),
                )
                out.append({**entry, "upkeep": "busy" if self.upkeep.busy(kind) else "idle"})
            return out


def index_entry(
    space: str,
    kind: str,
    factory: str,
    vectors: int,
    stored: int,
    dim: int,
    tuning: dict | None,
    compared: list | None = None,
) -> dict:
    """What index-info says of one index: `vectors` live, `stored` (tombstones included) in
    memory; `compared`: each candidate type's measurement when it was chosen among several."""
    return {
        "space": space,
        "kind": kind,
        "factory": factory,
        "vectors": vectors,
        "memory_bytes": estimate_memory_bytes(factory, stored, dim),
        "params": (tuning or {}).get("params", {}),
        "tuning": tuning,
        "compared": compared or [],
    }


class _Tunable:
    """An index as tuning sees it: searched as the set searches it (re-scored when it holds
    codes), set under the set's write lock when it is live."""

    def __init__(self, index: VectorIndex, lock: ReadWriteLock | None, search):
        self.index, self.lock, self.search = index, lock, search
        self.factory = index.factory

    @property
    def ntotal(self) -> int:
        return self.index.ntotal

    def set_search_params(self, **params) -> None:
        if self.lock is None:
            self.index.set_search_params(**params)
            return
        with self.lock.write():
            self.index.set_search_params(**params)
