"""Pre-filtered search (search/prefilter.py) gives the top-k of an exact filtered search: a
numpy brute force over the vectors of the media passing the filter, read from SQL.

A library of random unit vectors is written straight into SQL (one image per media row), in
folders holding 10%, 1% and 0.01% of the media, with some media deleted afterwards (HNSW
keeps them as tombstones). Each filter's subset is searched both ways: exactly, and through
the ANN index with a selector."""

from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy import select

from mmsearch.search import prefilter
from mmsearch.search.engine import QueryVectors, SearchEngine
from mmsearch.search.prefilter import Prefilter, exact_top_k, vector_ids_of_media
from mmsearch.search.query import SearchRequest, Term
from mmsearch.storage.index_set import IndexSet
from mmsearch.storage.store import Media, Store, Vector, decode_embeddings, encode_embedding
from mmsearch.storage.vector_index import VectorIndex

from ..helpers import store_url, write_folder_library

SPACE = "test-model@1"
FOLDERS = {"/lib/": 1.0, "/lib/p10/": 0.1, "/lib/p1/": 0.01, "/lib/p001/": 0.0001}


def write_library(store: Store, n: int, dim: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """n random unit vectors written as a folder library (helpers.write_folder_library).
    Returns (vector ids, float32 vectors as stored)."""
    vectors = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    write_folder_library(store, vectors, SPACE, seed)
    ids = np.arange(1, n + 1, dtype=np.int64)
    return ids, decode_embeddings([encode_embedding(v) for v in vectors], dim)


def index_set(store: Store, directory, dim: int, index: VectorIndex) -> IndexSet:
    indexes = IndexSet(store, directory, SPACE, dim, use_gpu=False)
    indexes._indexes["image"] = index  # this factory, whatever size the set would choose it for
    return indexes


def exact_filtered(store: Store, prefix: str, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The top-k (scores, vector ids) by brute force over the live vectors under `prefix`."""
    with store.session() as s:
        rows = s.execute(
            select(Vector.id, Vector.dim, Vector.embedding).join(Media).where(Media.path.startswith(prefix))
        ).all()
    vectors = decode_embeddings([r.embedding for r in rows], rows[0].dim)
    ids = np.asarray([r.id for r in rows], np.int64)
    scores = vectors @ q
    order = np.lexsort((ids, -scores))[:k]
    return scores[order], ids[order]


@pytest.fixture(scope="module", params=["Flat", "HNSW32,Flat", "IVF64,Flat"])
def library(request, tmp_path_factory):
    """20,000 vectors of dim 16, 5% of the media deleted from SQL and the index."""
    dim, base = 16, tmp_path_factory.mktemp("prefilter")
    store = Store(store_url(base))
    ids, vectors = write_library(store, 20_000, dim)
    index = VectorIndex.build(ids, vectors, factory=request.param, use_gpu=False)
    deleted = ids[np.random.default_rng(1).choice(len(ids), 1000, replace=False)]
    with store.session() as s:
        store.delete_media(s, deleted.tolist())  # media id == vector id here
    index.remove(deleted)
    assert len(index.tombstones) == (1000 if request.param.startswith("HNSW") else 0)
    # Wide enough that the ANN's own approximation leaves the top-k exact here.
    if request.param.startswith("HNSW"):
        index.set_search_params(ef_search=256)
    if request.param.startswith("IVF"):
        index.set_search_params(nprobe=64)
    yield store, index_set(store, base / "indexes", dim, index), dim
    store.close()


@pytest.mark.parametrize("way", ["exact", "selector"])
@pytest.mark.parametrize("prefix", list(FOLDERS))
def test_subset_search_is_the_exact_filtered_search(library, monkeypatch, way, prefix):
    store, indexes, dim = library
    limit = 10**9 if way == "exact" else 0
    monkeypatch.setattr(prefilter, "EXACT_MAX_FROM_INDEX", limit)
    monkeypatch.setattr(prefilter, "EXACT_MAX_FROM_SQL", limit)
    pf = Prefilter(store, indexes)
    subset = pf.subsets(SearchRequest(terms=[], path_prefix=prefix), ("image",))["image"]
    live = 19_000 if prefix == "/lib/" else round(20_000 * FOLDERS[prefix] * 0.95)
    assert abs(len(subset) - live) <= max(2, live // 10)  # ~5% of each folder deleted
    for seed in range(5):
        q = np.random.default_rng(100 + seed).standard_normal(dim).astype(np.float32)
        q /= np.linalg.norm(q)
        scores, ids = pf.search("image", q, 10, subset)
        want_scores, want_ids = exact_filtered(store, prefix, q, 10)
        np.testing.assert_array_equal(ids, want_ids)
        np.testing.assert_allclose(scores, want_scores, atol=1e-5)


def test_ivf_selector_search_keeps_its_recall_at_default_nprobe(tmp_path):
    """IVF searches a subset probing nprobe / share lists (the subset's top-k lie as far out as
    the index's top k / share), so its recall is at least the unfiltered one; a query whose
    lists hold fewer than k of the subset probes them all, so it is never short."""
    dim, store = 16, Store(store_url(tmp_path))
    ids, vectors = write_library(store, 20_000, dim)
    index = VectorIndex.build(ids, vectors, factory="IVF64,Flat", use_gpu=False)
    index.set_search_params(nprobe=8)
    indexes = index_set(store, tmp_path / "indexes", dim, index)
    queries = np.random.default_rng(5).standard_normal((40, dim)).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)

    def recall(prefix: str, subset) -> float:
        found = 0
        for q in queries:
            _, got = indexes.search("image", q[None], 10, subset=subset)
            _, want = exact_filtered(store, prefix, q, 10)
            assert (got[0] >= 0).sum() == len(want)  # never short: the p001 folder's 2 are always found
            found += len(np.intersect1d(got[0], want)) / len(want)
        return found / len(queries)

    unfiltered = recall("/lib/", None)
    assert 0.5 < unfiltered < 0.95  # nprobe 8 of 64 lists: approximate
    for prefix in ("/lib/p10/", "/lib/p1/"):
        subset = index.subset(vector_ids_of_media(store, [Media.path.startswith(prefix)]))
        assert recall(prefix, subset) >= unfiltered
    subset = index.subset(vector_ids_of_media(store, [Media.path.startswith("/lib/p001/")]))
    assert recall("/lib/p001/", subset) == 1.0
    store.close()


def test_exact_top_k_breaks_ties_by_id():
    scores = np.array([0.5, 0.9, 0.5, 0.1, 0.5], np.float32)
    ids = np.array([40, 10, 20, 30, 5], np.int64)
    got_scores, got_ids = exact_top_k(scores, ids, 3)
    assert got_ids.tolist() == [10, 5, 20] and got_scores.tolist() == scores[[1, 4, 2]].tolist()
    assert exact_top_k(scores, ids, 10)[1].tolist() == [10, 5, 20, 40, 30]


@pytest.mark.slow
def test_engine_over_200k_vectors_pages_the_exact_filtered_search(tmp_path, monkeypatch):
    """An engine over a real Store and IndexSet of 200,000 vectors: each filter's page (media
    ids and scores) is the brute-force one, whichever way its subset is searched."""
    dim, store = 32, Store(store_url(tmp_path))
    ids, vectors = write_library(store, 200_000, dim, seed=3)
    indexes = index_set(store, tmp_path / "indexes", dim, VectorIndex.build(ids, vectors, "Flat", use_gpu=False))
    engine = SearchEngine(store, encoder=None, indexes=indexes)
    rng = np.random.default_rng(4)
    for prefix in ("/lib/p10/", "/lib/p1/", "/lib/p001/"):
        for _ in range(3):
            q = rng.standard_normal(dim).astype(np.float32)
            q /= np.linalg.norm(q)
            req = SearchRequest(terms=[Term(vector=q)], k=10, kind="image", path_prefix=prefix)
            want_scores, want_ids = exact_filtered(store, prefix, q, 10)  # media id == vector id here
            pages = []
            for limit in (10**9, 0):  # exact, then the ANN with a selector
                monkeypatch.setattr(prefilter, "EXACT_MAX_FROM_INDEX", limit)
                engine.prefilter = Prefilter(store, indexes)
                pages.append(engine.search_vectors(QueryVectors.single(q, "image"), req))
            for page in pages:
                assert [h.id for h in page] == want_ids.tolist()
                np.testing.assert_allclose([h.score for h in page], want_scores, atol=1e-5)
    store.close()
