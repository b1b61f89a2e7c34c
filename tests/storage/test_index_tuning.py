"""storage.index_tuning: search settings chosen by measured recall against exact search, for
library-like and text-like (moved off the data) queries."""

import numpy as np
import pytest

from mmsearch.storage.index_tuning import (
    EF_LADDER,
    Tuning,
    exact_top_k,
    exact_top_k_of,
    ladder,
    probe_queries,
    recall_at_k,
    tune,
)
from mmsearch.storage.vector_index import VectorIndex


def clustered(n: int, dim: int, seed: int = 0, per_cluster: int = 20) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(max(1, n // per_cluster), dim))
    x = centres[rng.integers(0, len(centres), n)] + rng.normal(size=(n, dim)) * 0.6
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def batches(ids, x, size):
    return [(ids[i : i + size], x[i : i + size]) for i in range(0, len(x), size)]


def test_exact_top_k_over_batches_equals_brute_force():
    x = clustered(1000, 16)
    ids = np.arange(100, 1100)
    q = clustered(30, 16, seed=1)
    expected = ids[np.argsort(-(q @ x.T), axis=1)[:, :10]]
    for size in (7, 10, 333, 5000):
        found = exact_top_k(q, batches(ids, x, size))
        assert [set(r) for r in found.tolist()] == [set(r) for r in expected.tolist()], size
    both = exact_top_k_of({"a": q[:10], "b": q[10:]}, lambda: batches(ids, x, 64))
    assert [set(r) for r in np.concatenate([both["a"], both["b"]]).tolist()] == [set(r) for r in expected.tolist()]
    # fewer vectors than k: the rest of the slots are empty
    assert exact_top_k(q[:1], batches(ids[:3], x[:3], 2)).tolist()[0].count(-1) == 7


def test_recall_counts_the_true_neighbours_found():
    truth = np.array([[1, 2, 3, 4], [5, 6, -1, -1]])
    found = np.array([[1, 2, 9, 9], [6, 5, 7, 8]])
    assert recall_at_k(found, truth) == pytest.approx((2 / 4 + 2 / 2) / 2)


def test_text_like_queries_sit_apart_from_the_data_unless_the_encoder_gives_them():
    x = clustered(500, 512)
    queries = probe_queries(x[:50])
    assert np.allclose(queries["image-like"], x[:50], atol=1e-6)
    cosines = np.sum(queries["text-like"] * x[:50], axis=1)
    assert np.all((cosines > 0.6) & (cosines < 0.8))  # each moved off by a unit step: cos ~ 0.71 in 512-d
    assert np.allclose(np.linalg.norm(queries["text-like"], axis=1), 1.0, atol=1e-5)
    # four directions taken in turn: queries 0 and 4 moved the same way, 0 and 1 not
    q, x50 = queries["text-like"], x[:50]
    away = q - np.sum(q * x50, axis=1, keepdims=True) * x50
    away /= np.linalg.norm(away, axis=1, keepdims=True)
    assert away[0] @ away[4] > 0.99 and abs(away[0] @ away[1]) < 0.2
    text = clustered(20, 512, seed=5)
    given = probe_queries(x[:50], text=text)
    assert set(given) == {"image-like", "text-like", "text"} and np.allclose(given["text"], text, atol=1e-6)


def test_tuning_picks_the_cheapest_setting_that_reaches_the_target_for_both_query_kinds():
    x = clustered(6000, 32)
    ids = np.arange(1, 6001)
    index = VectorIndex.build(ids, x, "HNSW8,Flat", use_gpu=False)
    queries = probe_queries(x[::30])
    truth = exact_top_k_of(queries, lambda: batches(ids, x, 1000))
    result = tune(index, queries, truth, target=0.97)
    assert result.reached and min(result.recall.values()) >= 0.97
    assert result.factory == "HNSW8,Flat" and result.vectors == 6000 and result.p50_ms > 0
    chosen = EF_LADDER.index(result.params["efSearch"])
    assert chosen > 0, "the data should need more than the cheapest setting"
    # every setting tried is recorded, up to the chosen one: only it reaches the target
    assert [p for p, _ in result.tried] == [{"efSearch": ef} for ef in EF_LADDER[: chosen + 1]]
    assert all(r < 0.97 for _, r in result.tried[:-1]) and result.tried[-1][1] >= 0.97
    index.set_search_params(ef_search=EF_LADDER[chosen - 1])  # one step cheaper misses the target
    worse = min(recall_at_k(index.search(q, 10)[1], truth[kind]) for kind, q in queries.items())
    assert worse < 0.97


def test_an_ivf_index_is_tuned_by_its_probes_and_an_unreachable_target_keeps_the_best():
    x = clustered(4000, 16)
    ids = np.arange(4000)
    index = VectorIndex.build(ids, x, "IVF16,SQ8", use_gpu=False)
    assert ladder(index) == [{"nprobe": p} for p in (1, 2, 4, 8, 16)]
    queries = probe_queries(x[::40])
    truth = exact_top_k_of(queries, lambda: batches(ids, x, 999))
    result = tune(index, queries, truth, target=1.01)  # beyond any index: SQ8 codes are not exact
    assert not result.reached and result.params == {"nprobe": 16}
    assert ladder(VectorIndex.build(ids[:10], x[:10], "Flat", use_gpu=False)) == [{}]


def test_an_index_is_tuned_again_once_it_doubled_or_halved_or_the_target_moved():
    tuning = Tuning("HNSW32,Flat", {"efSearch": 64}, {"image-like": 0.99}, 1.0, 0.95, True, vectors=1000)
    assert not tuning.due(2000, 0.95) and not tuning.due(500, 0.95)
    assert tuning.due(2001, 0.95) and tuning.due(499, 0.95) and tuning.due(1000, 0.9)
    assert Tuning.from_meta(tuning.as_meta()) == tuning
    assert Tuning.from_meta({"factory": "Flat"}) is None and Tuning.from_meta(None) is None
