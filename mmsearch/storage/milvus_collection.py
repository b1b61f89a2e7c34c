"""One Milvus collection holding the vectors of one (space, kind): int64 primary key = the
SQL vector row id (auto_id off), a FLOAT_VECTOR of the space's dim, metric IP, Strong
consistency (a search sees every write acknowledged before it).

The ids the collection holds are mirrored here, sorted (8 bytes per vector, as the FAISS
backend's held ids): counting and membership tests never ask Milvus (a count(*) scans the
collection), and a filter's ids are cut to those held before they become a filter
expression. Writes go through upsert, so writing a row twice (a catch-up racing another
process's job on a shared server) leaves one copy.

It answers as VectorIndex does where the engine and the prefilter look: ntotal, factory,
state, subset(), scores() (None: the vectors stay in Milvus, so a small subset is scored
from SQL's copies, as for an IVF index) and search().
"""

from __future__ import annotations

import itertools
import json
import logging
from dataclasses import dataclass

import numpy as np

from .faiss_parts import as_ids, as_vectors, find_sorted
from .milvus_choice import FLAT, MilvusIndex, milvus_params
from .milvus_connect import BUILD_TIMEOUT_S, CALL_TIMEOUT_S, pymilvus
from .milvus_names import INDEX_PROPERTY, KIND_PROPERTY, SPACE_PROPERTY
from .vector_index import empty_hits

log = logging.getLogger(__name__)

ID_FIELD, VECTOR_FIELD = "id", "vector"
MAX_TOPK = 16_384  # a Milvus server's limit of one search's (and one query's) rows
WRITE_BATCH = 4096  # rows per upsert call (a gRPC message under 64 MB up to 4096-d)
ID_QUERY_BATCH = MAX_TOPK  # ids per membership query
_STATES = itertools.count(1)  # every state of every collection gets a number no other state had


@dataclass(frozen=True)
class HeldSubset:
    """The ids of a subset that one state of a collection holds, sorted and unique."""

    ids: np.ndarray
    state: int

    def __len__(self) -> int:
        return len(self.ids)


class MilvusCollection:
    def __init__(
        self, client, name: str, dim: int, index: MilvusIndex, held: np.ndarray, tuning: dict | None, lite: bool
    ):
        self.client, self.name, self.dim, self.lite = client, name, dim, lite
        self.index = index
        self.tuning = tuning  # index_tuning.Tuning.as_meta() of the current index, or None
        self.params = self._params_of(tuning)
        self._held = np.asarray(held, np.int64)
        self.state = next(_STATES)

    # -- opening -----------------------------------------------------------------------------
    @classmethod
    def open(
        cls, client, name: str, space: str, kind: str, dim: int, wanted: MilvusIndex, lite: bool
    ) -> "MilvusCollection":
        """The collection `name`, loaded; created (indexed as `wanted`) when missing, and made
        anew when it holds vectors of another dim. Its held ids are not listed yet (open_ids)."""
        if client.has_collection(name, timeout=CALL_TIMEOUT_S):
            found = client.describe_collection(name, timeout=CALL_TIMEOUT_S)
            if _dim_of(found) == dim:
                client.load_collection(name, timeout=BUILD_TIMEOUT_S)
                index, tuning = _index_of(client, name, found)
                return cls(client, name, dim, index, np.zeros(0, np.int64), tuning, lite)
            log.warning("Milvus collection %s holds %s-d vectors, not %d: made anew", name, _dim_of(found), dim)
            client.drop_collection(name, timeout=CALL_TIMEOUT_S)
        cls.create(client, name, space, kind, dim, wanted, lite)
        return cls(client, name, dim, wanted, np.zeros(0, np.int64), None, lite)

    @staticmethod
    def create(client, name: str, space: str, kind: str, dim: int, index: MilvusIndex, lite: bool) -> None:
        module = pymilvus()
        schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field(ID_FIELD, module.DataType.INT64, is_primary=True)
        schema.add_field(VECTOR_FIELD, module.DataType.FLOAT_VECTOR, dim=dim)
        client.create_collection(
            name,
            schema=schema,
            consistency_level="Strong",
            properties={SPACE_PROPERTY: space, KIND_PROPERTY: kind, INDEX_PROPERTY: _index_property(index, None)},
            timeout=CALL_TIMEOUT_S,
        )
        _build_index(client, name, index, lite)
        log.info("created Milvus collection %s (%s, %s, %d-d, %s)", name, space, kind, dim, index.index_type)

    def held_among(self, ids: np.ndarray) -> np.ndarray:
        """Which of `ids` (sorted, unique) the collection holds, asked of Milvus (a membership
        query per ID_QUERY_BATCH ids): sorted."""
        found = []
        for start in range(0, len(ids), ID_QUERY_BATCH):
            chunk = ids[start : start + ID_QUERY_BATCH]
            rows = self.client.query(
                self.name,
                filter=f"{ID_FIELD} in {chunk.tolist()}",
                output_fields=[ID_FIELD],
                limit=len(chunk),
                timeout=CALL_TIMEOUT_S,
            )
            found += [row[ID_FIELD] for row in rows]
        return np.unique(np.asarray(found, np.int64))

    def count(self) -> int:
        """Rows in the collection, asked of Milvus (a scan: open only)."""
        rows = self.client.query(self.name, filter="", output_fields=["count(*)"], timeout=CALL_TIMEOUT_S)
        return int(rows[0]["count(*)"])

    def all_ids(self) -> np.ndarray:
        """Every id the collection holds, asked of Milvus page by page (its query iterator)."""
        iterator = self.client.query_iterator(
            self.name,
            batch_size=ID_QUERY_BATCH,
            filter=f"{ID_FIELD} >= 0",
            output_fields=[ID_FIELD],
            timeout=CALL_TIMEOUT_S,
        )
        found = []
        try:
            while batch := iterator.next():
                found += [row[ID_FIELD] for row in batch]
        finally:
            iterator.close()
        return np.unique(np.asarray(found, np.int64))

    def set_held(self, held: np.ndarray) -> None:
        self._held = np.unique(np.asarray(held, np.int64))
        self.state = next(_STATES)

    # -- what the engine reads ---------------------------------------------------------------
    @property
    def ntotal(self) -> int:
        return len(self._held)

    @property
    def factory(self) -> str:
        return self.index.index_type

    @property
    def watermark(self) -> int:
        return int(self._held[-1]) if len(self._held) else 0

    def ids(self) -> np.ndarray:
        return self._held.copy()

    def contains(self, ids: np.ndarray) -> np.ndarray:
        return find_sorted(np.asarray(ids, np.int64), self._held)[0]

    def subset(self, ids) -> HeldSubset:
        """The ids among `ids` (any order, repeats and ids not held allowed) held now."""
        ids = np.unique(np.asarray(ids, np.int64).reshape(-1))
        return HeldSubset(ids[self.contains(ids)], self.state)

    def scores(self, q, subset) -> None:
        """None: Milvus keeps the vectors, so the prefilter scores a small subset from SQL."""
        return None

    # -- writes ------------------------------------------------------------------------------
    def upsert(self, ids, vectors) -> int:
        """Write rows (any ids, held or not); returns how many were not held before."""
        x = as_vectors(vectors, self.dim)
        ids = as_ids(ids, len(x))
        if not len(ids):
            return 0
        for start in range(0, len(ids), WRITE_BATCH):
            rows = [
                {ID_FIELD: int(i), VECTOR_FIELD: v}
                for i, v in zip(ids[start : start + WRITE_BATCH], x[start : start + WRITE_BATCH])
            ]
            self.client.upsert(self.name, rows, timeout=CALL_TIMEOUT_S)
        fresh = ids[~self.contains(ids)]
        self.set_held(np.concatenate([self._held, fresh]))
        return len(fresh)

    def delete(self, ids) -> int:
        """Delete the held ones of `ids`; returns how many were held."""
        ids = np.asarray(ids, np.int64).reshape(-1)
        held = np.unique(ids[self.contains(ids)])
        if not len(held):
            return 0
        for start in range(0, len(held), ID_QUERY_BATCH):
            self.client.delete(self.name, ids=held[start : start + ID_QUERY_BATCH].tolist(), timeout=CALL_TIMEOUT_S)
        self.set_held(np.setdiff1d(self._held, held, assume_unique=True))
        return len(held)

    def flush(self) -> None:
        """Seal what was written into indexed segments (Milvus Lite searches unsealed rows by
        brute force, slower)."""
        self.client.flush(self.name, timeout=BUILD_TIMEOUT_S)

    def reindex(self, index: MilvusIndex) -> None:
        """Index the collection anew as `index` (released meanwhile: the caller keeps searches
        out); the old tuning no longer applies."""
        self.client.release_collection(self.name, timeout=CALL_TIMEOUT_S)
        self.client.drop_index(self.name, VECTOR_FIELD, timeout=CALL_TIMEOUT_S)
        _build_index(self.client, self.name, index, self.lite)
        self.index = index
        self.set_tuning(None)
        log.info("re-indexed Milvus collection %s as %s %s", self.name, index.index_type, index.build_params)

    def set_tuning(self, tuning: dict | None) -> None:
        """Use a tuning's setting from now on, kept in the collection's properties (a reopen
        finds it)."""
        self.tuning = tuning
        self.params = self._params_of(tuning)
        self.client.alter_collection_properties(
            self.name, {INDEX_PROPERTY: _index_property(self.index, tuning)}, timeout=CALL_TIMEOUT_S
        )

    def _params_of(self, tuning: dict | None) -> dict:
        return milvus_params(tuning["params"]) if tuning else self.index.default_params()

    # -- search ------------------------------------------------------------------------------
    def search(
        self, queries, k: int, subset: HeldSubset | np.ndarray | None = None, params: dict | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-k by inner product: (scores float32 (n, k), ids int64 (n, k)), best first, ties
        by id; with `subset`, among those ids alone. Empty slots have id -1 and score -inf.
        `params` overrides the search setting (tuning tries its ladder so)."""
        x, scores, ids = empty_hits(queries, k, self.dim)  # the empty slots FAISS searches answer too
        if subset is not None:
            subset = (
                subset
                if isinstance(subset, HeldSubset) and subset.state == self.state
                else self.subset(subset.ids if isinstance(subset, HeldSubset) else subset)
            )
        if self.ntotal == 0 or (subset is not None and not len(subset)):
            return scores, ids
        params = dict(self.params if params is None else params)
        allowed = None if subset is None else subset.ids
        if allowed is not None and not self.index.exact:
            params = self.index.widened(params, k, len(allowed) / self.ntotal, self.ntotal)
        want = min(k, self.ntotal if allowed is None else len(allowed))
        for row, found in enumerate(self._search_rows(x, k, allowed, params)):
            if len(found) < want and not self.index.exact:
                found = self._search_rows(x[row : row + 1], k, allowed, self.index.exhaustive(k, self.ntotal))[0]
            n = min(k, len(found))
            ids[row, :n], scores[row, :n] = [i for i, _ in found[:n]], [s for _, s in found[:n]]
        return scores, ids

    def _search_rows(self, x: np.ndarray, k: int, allowed: np.ndarray | None, params: dict) -> list[list]:
        """Per query: [(id, score), ...], best first, ties by id. Past MAX_TOPK results (a
        server's limit) each query is asked again for the next page, the ids found excluded."""
        if k <= MAX_TOPK:
            pages = self._page(x, k, allowed, [], params)
        else:
            pages = []
            for row in range(len(x)):
                found: list = []
                while len(found) < k:
                    limit = min(MAX_TOPK, k - len(found))
                    page = self._page(x[row : row + 1], limit, allowed, found, params)[0]
                    found += page
                    if len(page) < limit:
                        break
                pages.append(found)
        return [sorted(page, key=lambda hit: (-hit[1], hit[0])) for page in pages]

    def _page(self, x: np.ndarray, limit: int, allowed: np.ndarray | None, excluded: list, params: dict) -> list:
        conditions = []
        if allowed is not None:
            left_out = self.ntotal - len(allowed)
            if left_out < len(allowed):  # the shorter expression
                conditions.append(f"{ID_FIELD} not in {np.setdiff1d(self._held, allowed).tolist()}")
            else:
                conditions.append(f"{ID_FIELD} in {allowed.tolist()}")
        if excluded:
            conditions.append(f"{ID_FIELD} not in {[i for i, _ in excluded]}")
        conditions = [c for c in conditions if not c.endswith("not in []")]
        if "ef" in params:
            params = {**params, "ef": max(params["ef"], limit)}  # a server refuses a beam narrower than k
        result = self.client.search(
            self.name,
            data=x,
            limit=limit,
            filter=" and ".join(f"({c})" for c in conditions),
            output_fields=[ID_FIELD],
            search_params={"metric_type": "IP", "params": params},
            anns_field=VECTOR_FIELD,
            timeout=CALL_TIMEOUT_S,
        )
        return [[(int(hit["id"]), float(hit["distance"])) for hit in hits] for hits in result]


def _build_index(client, name: str, index: MilvusIndex, lite: bool) -> None:
    """Index the collection's vectors as `index`, then load it. A server is waited for until
    the index is built; Milvus Lite builds it within the call (and lacks the timestamp call
    pymilvus's wait starts with: it would log an error and poll for half a second)."""
    client.create_index(name, _index_params(client, index), sync=not lite, timeout=BUILD_TIMEOUT_S)
    client.load_collection(name, timeout=BUILD_TIMEOUT_S)


def _index_params(client, index: MilvusIndex):
    params = client.prepare_index_params()
    params.add_index(
        field_name=VECTOR_FIELD,
        index_name=VECTOR_FIELD,
        index_type=index.index_type,
        metric_type="IP",
        params=dict(index.build_params),
    )
    return params


def _dim_of(description: dict) -> int | None:
    for field in description.get("fields", []):
        if field.get("name") == VECTOR_FIELD:
            return int(field.get("params", {}).get("dim", 0))
    return None


def _index_property(index: MilvusIndex, tuning: dict | None) -> str:
    """What the collection's INDEX_PROPERTY keeps: its index with the build parameters (a
    Milvus Lite's describe_index leaves them out) and the tuning measured on it."""
    return json.dumps({"index": index.describe(), "tuning": tuning})


def _index_of(client, name: str, description: dict) -> tuple[MilvusIndex, dict | None]:
    """The collection's index (its type as Milvus describes it, its build parameters as
    Milvus or, failing that, INDEX_PROPERTY says) and the tuning measured on it, if any."""
    found = client.describe_index(name, VECTOR_FIELD, timeout=CALL_TIMEOUT_S) or {}
    index_type = str(found.get("index_type", "FLAT")).upper()
    raw = (description.get("properties") or {}).get(INDEX_PROPERTY)
    try:
        kept = json.loads(raw) if raw else {}
    except ValueError:
        kept = {}
    kept_index = kept.get("index") or {}
    if index_type == "FLAT":
        index = FLAT
    elif kept_index.get("index_type") == index_type:
        index = MilvusIndex.from_description(index_type, {**kept_index.get("params", {}), **found})
    else:
        index = MilvusIndex.from_description(index_type, found)
    if index_type not in ("FLAT", "HNSW", "IVF_FLAT"):
        log.warning("Milvus collection %s has a %s index: searched with its own defaults", name, index_type)
    tuning = kept.get("tuning") if kept_index == index.describe() else None
    return index, tuning
