"""MilvusIndexSet: the vectors of one embedding space served by Milvus, one collection per
vector kind, kept in step with SQL, behind the interface of the FAISS IndexSet (the engine,
the prefilter, the job runners' sink, the library and the API cannot tell them apart).

SQL stays the source of truth: a collection's ids are SQL vector row ids. On first use a
collection is opened (created when missing, indexed for its size: milvus_choice) and caught
up from SQL: rows SQL holds and it lacks are written, rows it holds that SQL no longer has
(media deleted while it was not told) are deleted. Searches hold the read side of the set's
readers-writer lock, changes the write side. Rows another process committed (a job beside a
server, on a shared Milvus server) are caught up by the next search, at most once a second,
as the FAISS set does; writes are upserts, so two processes writing one row leave one copy.

An approximate index (HNSW or IVF_FLAT, from FLAT_MAX_VECTORS up) is tuned by measurement on
the upkeep thread (index_tuning: the cheapest ef or nprobe reaching the target recall@10
against exact search over SQL), and re-indexed there when its size calls for another type
(searches wait for a re-index: Milvus releases a collection while it indexes it anew).
What it shares with the FAISS set is in index_set_base.
"""

from __future__ import annotations

import logging

import numpy as np

from . import index_tuning
from .index_set import index_entry
from .index_set_base import IndexSetBase, space_slug
from .milvus_choice import MilvusIndex, choose_index, milvus_params, suits
from .milvus_collection import MilvusCollection
from .milvus_connect import CALL_TIMEOUT_S, connect, is_server
from .milvus_names import collection_name, library_id
from .store import Store

log = logging.getLogger(__name__)

SQL_FETCH_CHUNK = 8192  # missing rows below the collection's highest id, read from SQL per chunk


class MilvusIndexSet(IndexSetBase[MilvusCollection]):
    backend = "milvus"

    def __init__(
        self,
        store: Store,
        uri: str,
        space: str,
        dim: int,
        save_every_s: float = 30.0,
        kind_spaces: dict[str, str] | None = None,
        target_recall: float = index_tuning.DEFAULT_TARGET_RECALL,
        memory_budget: int | None = None,
        text_queries=None,
        client=None,
    ):
        # The budget is this process's memory: it governs Milvus Lite (served in this process) alone.
        budget = None if is_server(uri) else memory_budget
        upkeep_name = f"milvus-{space_slug(space)}"
        super().__init__(store, space, dim, save_every_s, kind_spaces, target_recall, budget, text_queries, upkeep_name)
        self.uri = uri
        self.client = client if client is not None else connect(uri)
        self.library = library_id(store)

    def collection_name(self, kind: str) -> str:
        return collection_name(self.library, self.space_of(kind), kind)

    def fitted(self, kind: str) -> MilvusCollection:
        """The kind's collection, caught up from SQL; opening it re-indexes it when its row
        count calls for another index type. Never dropped: servers search it meanwhile."""
        return self.caught_up(kind)

    # -- opening and catching up -------------------------------------------------------------
    def _open(self, kind: str) -> MilvusCollection:
        space = self.space_of(kind)
        live = self.store.vector_ids(space, (kind,))
        wanted = choose_index(len(live), self.dim, self.memory_share(kind, len(live)))
        name = self.collection_name(kind)
        collection = MilvusCollection.open(self.client, name, space, kind, self.dim, wanted, not is_server(self.uri))
        held = collection.held_among(live)
        if collection.count() > len(held):  # it holds rows SQL deleted: list them all
            held = collection.all_ids()
        collection.set_held(held)
        counts = self._sync(kind, collection, live)
        if counts["added"] or counts["removed"]:
            log.info("Milvus collection %s caught up from SQL: %s", name, counts)
            collection.flush()
        if not suits(collection.index, wanted):
            collection.reindex(wanted)  # nothing searches it yet
        self._keep_up(kind, collection)
        return collection

    def _sync(self, kind: str, collection: MilvusCollection, live: np.ndarray) -> dict:
        """Write the rows of `live` (SQL's ids, sorted) the collection lacks and delete those
        it holds beyond them. The caller holds the write lock."""
        removed = collection.delete(np.setdiff1d(collection.ids(), live, assume_unique=True))
        missing = np.setdiff1d(live, collection.ids(), assume_unique=True)
        # Rows another process wrote to a shared collection are held already: not written again.
        elsewhere = collection.held_among(missing) if len(missing) else missing
        if len(elsewhere):
            collection.set_held(np.union1d(collection.ids(), elsewhere))
            missing = np.setdiff1d(missing, elsewhere, assume_unique=True)
        held = collection.ids()
        added, top = 0, int(held[-1]) if len(held) else 0
        below = missing[missing <= top].tolist()  # a gap (a crash between SQL and Milvus): read by id
        for start in range(0, len(below), SQL_FETCH_CHUNK):
            stored = self.store.vectors_by_id(below[start : start + SQL_FETCH_CHUNK])
            if stored:
                added += collection.upsert(np.fromiter(stored, np.int64), np.stack(list(stored.values())))
        if len(missing) and missing[-1] > top:  # rows after the collection's newest: streamed in id order
            for ids, vectors in self.store.iter_vectors(self.space_of(kind), (kind,), after_id=top):
                added += collection.upsert(ids, vectors)
        if added or removed:
            self._dirty.add(kind)
        return {"added": added, "removed": removed}

    def rebuild(self, kind: str, searched: bool = True) -> MilvusCollection:
        """Make the kind's collection anew from SQL alone (the source of truth), indexed for
        its size, tuned on the upkeep thread. Searches wait meanwhile (`searched` is the FAISS
        set's distinction; Milvus builds one index either way)."""
        with self.lock.write():
            name = self.collection_name(kind)
            if self.client.has_collection(name, timeout=CALL_TIMEOUT_S):
                self.client.drop_collection(name, timeout=CALL_TIMEOUT_S)
            self._indexes.pop(kind, None)
            self._indexes[kind] = collection = self._open(kind)
            collection.flush()
            self._dirty.discard(kind)
        return collection

    # -- upkeep: tuning and re-indexing ------------------------------------------------------
    def _keep_up(self, kind: str, collection: MilvusCollection) -> None:
        """Queue the tuning of an approximate index never tuned for its size or target."""
        if collection.index.exact or collection.ntotal == 0:
            return
        tuning = index_tuning.Tuning.from_meta(collection.tuning)
        if (
            tuning is None
            or tuning.factory != collection.index.factory
            or tuning.due(collection.ntotal, self.target_recall)
        ):
            self.upkeep.submit("tune", kind, lambda: self._tune_live(kind))

    def _tune_live(self, kind: str) -> None:
        collection = self._indexes.get(kind)
        if collection is not None:
            self.tune(kind, collection)

    def tune(self, kind: str, collection: MilvusCollection, probes=None) -> index_tuning.Tuning:
        """Measure the collection's index against exact search over SQL, use its cheapest
        setting reaching the target recall, and keep it in the collection's properties."""
        queries, truth = probes or self._probes(kind)
        tunable = _Tunable(collection)
        tuning = index_tuning.tune(tunable, queries, truth, self.target_recall, apply=tunable.apply)
        with self.lock.write():
            collection.set_tuning(tuning.as_meta())
        log.info("tuned Milvus %s (%s): %s, recall %s", kind, collection.index.index_type, tuning.params, tuning.recall)
        return tuning

    def _reindex_live(self, kind: str, wanted: MilvusIndex) -> None:
        with self.lock.write():
            collection = self._indexes.get(kind)
            if collection is None or suits(collection.index, wanted):
                return
            collection.reindex(wanted)
        self._keep_up(kind, collection)

    # -- changes and searches ----------------------------------------------------------------
    def search(self, kind: str, queries: np.ndarray, k: int, subset=None) -> tuple[np.ndarray, np.ndarray]:
        """The kind's top-k; with `subset` (ids, or a HeldSubset from its collection), among
        those ids alone."""
        self.get(kind)
        self._refresh(kind)
        with self.lock.read():
            return self._indexes[kind].search(queries, k, subset=subset)

    # -- the backend's part of IndexSetBase --------------------------------------------------------
    def _catch_up(self, kind: str, collection: MilvusCollection) -> MilvusCollection:
        self._sync(kind, collection, self.store.vector_ids(self.space_of(kind), (kind,)))
        return collection

    def _write_rows(self, collection: MilvusCollection, ids: np.ndarray, vectors: np.ndarray) -> None:
        collection.upsert(ids, vectors)

    def _delete_rows(self, collection: MilvusCollection, ids: np.ndarray) -> int:
        return collection.delete(ids)

    def _save_kind(self, kind: str, collection: MilvusCollection) -> None:
        collection.flush()

    def _keep_types(self) -> None:
        for kind, collection in list(self._indexes.items()):
            wanted = choose_index(collection.ntotal, self.dim, self.memory_share(kind, collection.ntotal))
            if not suits(collection.index, wanted):
                log.info("re-indexing Milvus %s as %s for %d vectors", kind, wanted.index_type, collection.ntotal)
                self.upkeep.submit("rebuild", kind, lambda kind=kind, wanted=wanted: self._reindex_live(kind, wanted))
            else:
                self._keep_up(kind, collection)

    def info(self) -> list[dict]:
        """Per opened collection: backend, index type and build parameters, size, search
        setting and last tuning."""
        with self.lock.read():
            out = []
            for kind, collection in sorted(self._indexes.items()):
                index = collection.index
                entry = index_entry(
                    self.space_of(kind),
                    kind,
                    index.factory,
                    collection.ntotal,
                    collection.ntotal,
                    self.dim,
                    collection.tuning,
                )
                out.append(
                    {
                        **entry,
                        "backend": "milvus",
                        "factory": index.index_type,
                        "index_type": index.index_type,
                        "build_params": dict(index.build_params),
                        "params": dict(collection.params),
                        "collection": collection.name,
                        "upkeep": "busy" if self.upkeep.busy(kind) else "idle",
                    }
                )
            return out

    def close(self) -> None:
        """Stop the upkeep and close this set's connection (Milvus Lite's server stays up for
        the process's other sets; milvus_connect.release_lite stops it)."""
        super().close()
        self.client.close()


class _Tunable:
    """A collection as index_tuning sees it: its FAISS-named factory (the ladder), searched at
    the setting being tried without changing what live searches use."""

    def __init__(self, collection: MilvusCollection):
        self.collection = collection
        self.factory = collection.index.factory
        self.params = collection.params

    @property
    def ntotal(self) -> int:
        return self.collection.ntotal

    def apply(self, tuned: dict) -> None:
        self.params = milvus_params(tuned)

    def search(self, queries, k: int):
        return self.collection.search(queries, k, params=self.params)
