import json

import faiss
import numpy as np
import pytest

from mmsearch.storage.faiss_parts import (
    add_to_lists,
    as_vectors,
    centroid_finder,
    fillable_ivf,
    reserve_lists,
    reserve_storage,
)
from mmsearch.storage.index_choice import choose_factory, estimate_memory_bytes
from mmsearch.storage.vector_index import VectorIndex

DIM = 32
REMOVABLE_FACTORIES = ["Flat", "HNSW32,Flat", "IVF16,Flat"]


def unit_vectors(n: int, seed: int = 0, dim: int = DIM) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def caller_ids(n: int) -> np.ndarray:
    """Non-contiguous ids starting at 1000, like SQL rows with gaps."""
    return 1000 + 3 * np.arange(n, dtype=np.int64)


@pytest.fixture(params=REMOVABLE_FACTORIES)
def filled(request) -> tuple[VectorIndex, np.ndarray, np.ndarray]:
    vectors, ids = unit_vectors(2000), caller_ids(2000)
    index = VectorIndex.build(ids, vectors, factory=request.param, use_gpu=False)
    # Search every IVF list, and a wide HNSW beam, so nearest neighbours are exact here.
    if request.param.startswith("IVF"):
        index.set_search_params(nprobe=16)
    if request.param.startswith("HNSW"):
        index.set_search_params(ef_search=256)
    return index, ids, vectors


def test_flat_top1_is_exact_with_caller_ids():
    vectors, ids = unit_vectors(1500), caller_ids(1500)
    index = VectorIndex.build(ids, vectors, factory="Flat", use_gpu=False)
    queries = unit_vectors(50, seed=1)

    scores, found = index.search(queries, k=5)

    dots = queries @ vectors.T
    best = dots.argmax(axis=1)
    np.testing.assert_array_equal(found[:, 0], ids[best])
    np.testing.assert_allclose(scores[:, 0], dots[np.arange(50), best], atol=1e-5)
    assert scores.dtype == np.float32 and found.dtype == np.int64 and found.shape == (50, 5)


def test_flat_finds_each_stored_vector_under_its_id():
    vectors, ids = unit_vectors(500), caller_ids(500)
    index = VectorIndex.build(ids, vectors, factory="Flat", use_gpu=False)

    scores, found = index.search(vectors, k=1)

    np.testing.assert_array_equal(found[:, 0], ids)
    np.testing.assert_allclose(scores[:, 0], 1.0, atol=1e-5)


def test_removed_ids_never_come_back(filled):
    index, ids, vectors = filled
    removed = ids[::7]  # ~14%: HNSW keeps them as tombstones, below the compaction line

    assert index.remove(removed) == len(removed)
    assert index.remove(removed) == 0
    _, found = index.search(vectors, k=10)

    assert not np.isin(found, removed).any()
    assert (found >= 0).all()  # still k live results per query
    assert index.ntotal == len(ids) - len(removed)
    assert set(index.ids().tolist()) == set(ids.tolist()) - set(removed.tolist())
    kept = ~np.isin(ids, removed)
    _, top = index.search(vectors[kept], k=1)
    np.testing.assert_array_equal(top[:, 0], ids[kept])  # the survivors keep their own ids


def test_hnsw_tombstones_filter_then_compact():
    vectors, ids = unit_vectors(2000), caller_ids(2000)
    index = VectorIndex.build(ids, vectors, factory="HNSW32,Flat", use_gpu=False)
    first = ids[:300]

    index.remove(first)
    assert len(index.tombstones) == 300
    _, found = index.search(vectors[:300], k=10)
    assert not np.isin(found, first).any()

    index.remove(ids[300:500])  # 500 of 2000 > 20%: compacts by itself
    assert len(index.tombstones) == 0
    assert index.ntotal == 1500
    index.set_search_params(ef_search=256)
    _, found = index.search(vectors[500:], k=1)
    np.testing.assert_array_equal(found[:, 0], ids[500:])


def test_readding_a_tombstoned_id_replaces_its_vector():
    vectors, ids = unit_vectors(300), caller_ids(300)
    index = VectorIndex.build(ids, vectors, factory="HNSW32,Flat", use_gpu=False)
    index.remove(ids[:1])

    index.add(ids[:1], vectors[1:2])

    _, found = index.search(vectors[1:2], k=2)
    assert set(found[0].tolist()) == {ids[0], ids[1]}
    assert index.ntotal == 300


@pytest.mark.parametrize("factory", REMOVABLE_FACTORIES)
def test_save_load_round_trip(tmp_path, factory):
    vectors, ids = unit_vectors(2000), caller_ids(2000)
    index = VectorIndex.build(ids, vectors, factory=factory, use_gpu=False)
    index.remove(ids[:100])
    queries = unit_vectors(20, seed=3)
    before = index.search(queries, k=10)
    path = tmp_path / "vectors.faiss"

    index.save(path, extra={"space": "mini", "kind": "image"})
    loaded = VectorIndex.load(path, use_gpu=False)

    after = loaded.search(queries, k=10)
    np.testing.assert_array_equal(after[1], before[1])
    np.testing.assert_allclose(after[0], before[0], atol=1e-6)
    assert loaded.watermark == index.watermark == int(ids.max())
    np.testing.assert_array_equal(loaded.tombstones, index.tombstones)
    assert loaded.factory == factory and loaded.dim == DIM and loaded.ntotal == 1900
    assert loaded.meta_extra == {"space": "mini", "kind": "image"}


def test_save_is_atomic_and_leaves_no_temp_files(tmp_path):
    index = VectorIndex.build(caller_ids(100), unit_vectors(100), use_gpu=False)
    path = tmp_path / "sub" / "v.faiss"

    index.save(path)
    index.save(path)  # overwriting an existing pair works the same way

    assert sorted(p.name for p in path.parent.iterdir()) == ["v.faiss", "v.faiss.meta.json"]
    meta = json.loads((path.parent / "v.faiss.meta.json").read_text())
    assert meta == {
        "factory": "Flat",
        "dim": DIM,
        "watermark": int(caller_ids(100).max()),
        "ntotal": 100,
        "tombstones": [],
        "format": 1,
    }


def test_missing_or_corrupt_files_raise_documented_errors(tmp_path):
    path = tmp_path / "v.faiss"
    with pytest.raises(FileNotFoundError):
        VectorIndex.load(path)

    VectorIndex.build(caller_ids(100), unit_vectors(100), use_gpu=False).save(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="corrupt index file"):
        VectorIndex.load(path)

    path.write_bytes(data)
    (tmp_path / "v.faiss.meta.json").write_text("{not json")
    with pytest.raises(ValueError, match="corrupt index metadata"):
        VectorIndex.load(path)


def test_load_rejects_index_and_metadata_that_disagree(tmp_path):
    small, large = tmp_path / "small.faiss", tmp_path / "large.faiss"
    VectorIndex.build(caller_ids(10), unit_vectors(10), use_gpu=False).save(small)
    VectorIndex.build(caller_ids(20), unit_vectors(20), use_gpu=False).save(large)
    small.write_bytes(large.read_bytes())  # a save interrupted between the two renames

    with pytest.raises(ValueError, match="interrupted save"):
        VectorIndex.load(small)


def test_catch_up_removes_deleted_rows_and_adds_only_new_ones():
    vectors = unit_vectors(130)
    index = VectorIndex.build(np.arange(1, 101), vectors[:100], use_gpu=False)
    live = np.setdiff1d(np.arange(1, 121), [5, 6])  # SQL now: 5 and 6 deleted, 101..120 new
    new_rows = [
        (np.arange(95, 111), vectors[94:110]),  # overlaps rows the index already holds
        (np.arange(111, 121), vectors[110:120]),
    ]

    counts = index.catch_up(live, new_rows)

    assert counts == {"removed": 2, "added": 20}
    assert sorted(index.ids().tolist()) == live.tolist()
    assert index.watermark == 120
    _, found = index.search(vectors[119], k=1)
    assert found[0, 0] == 120


def test_choose_factory_by_count_and_memory_budget():
    assert choose_factory(99_999, 512) == "Flat"
    assert choose_factory(200_000, 512) == "HNSW32,Flat"

    budget = 200 * 2**20
    small = choose_factory(1_000_000, 512, memory_budget_bytes=budget)
    assert small.startswith("IVF4096,")
    assert estimate_memory_bytes(small, 1_000_000, 512) <= budget
    assert estimate_memory_bytes("HNSW32,Flat", 1_000_000, 512) > budget

    with pytest.raises(ValueError, match="no index fits"):
        choose_factory(1_000_000, 512, memory_budget_bytes=10 * 2**20)


def test_empty_index_returns_empty_slots():
    index = VectorIndex.build(np.zeros(0, np.int64), np.zeros((0, DIM), np.float32), dim=DIM, use_gpu=False)

    scores, found = index.search(unit_vectors(3), k=4)

    assert found.shape == (3, 4) and (found == -1).all()
    assert np.isneginf(scores).all()
    assert index.watermark == 0 and index.ntotal == 0


def test_fewer_vectors_than_k_pads_with_empty_slots():
    index = VectorIndex.build(caller_ids(3), unit_vectors(3), use_gpu=False)

    scores, found = index.search(unit_vectors(1, seed=5), k=5)

    assert (found[0, :3] >= 0).all() and (found[0, 3:] == -1).all()
    assert np.isneginf(scores[0, 3:]).all()


def test_bad_input_raises_value_error():
    index = VectorIndex.build(caller_ids(10), unit_vectors(10), use_gpu=False)
    with pytest.raises(ValueError, match="shape"):
        index.add([1], unit_vectors(1, dim=DIM + 1))
    with pytest.raises(ValueError, match="shape"):
        index.search(unit_vectors(1, dim=DIM - 1), k=1)
    with pytest.raises(ValueError, match="already in the index"):
        index.add(caller_ids(1), unit_vectors(1))
    with pytest.raises(ValueError, match="nprobe"):
        index.set_search_params(nprobe=8)


def test_untrained_ivf_trains_on_add_only_with_enough_vectors():
    index = VectorIndex(DIM, "IVF16,Flat", use_gpu=False)
    assert not index.is_trained

    with pytest.raises(ValueError, match="at least 624"):
        index.add(caller_ids(100), unit_vectors(100))

    index.add(caller_ids(700), unit_vectors(700))
    assert index.is_trained and index.ntotal == 700


def test_an_ivf_trained_on_float16_keeps_separate_clusters_in_separate_lists():
    rng = np.random.default_rng(3)
    centres = rng.normal(size=(4, DIM))
    labels = np.repeat(np.arange(4), 200)
    x = (centres[labels] + 0.05 * rng.normal(size=(len(labels), DIM))).astype(np.float16)
    index = VectorIndex(DIM, "IVF16,SQ8", use_gpu=False)
    index.train(x * 7)  # any norm: rows are normalised before k-means
    assert index.is_trained
    lists = faiss.extract_index_ivf(index._index).quantizer.assign(unit_vectors_of(x), 1).ravel()
    assert all(len(set(labels[lists == used].tolist())) == 1 for used in set(lists.tolist()))
    assert len(set(lists.tolist())) > 4  # the 16 centroids spread over the clusters, not one each


def test_training_rejects_vectors_that_are_not_finite():
    x = unit_vectors(700).astype(np.float16)
    x[350, 3] = np.nan
    index = VectorIndex(DIM, "IVF16,Flat", use_gpu=False)
    with pytest.raises(ValueError, match="NaN"):
        index.train(x)
    assert not index.is_trained


def unit_vectors_of(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.mark.parametrize("share", [1.0, 0.1, 0.01, 0.001])
def test_subset_search_is_brute_force_over_the_subset(filled, share):
    """Removed ids (HNSW tombstones) and ids never held may be in the subset: neither comes back."""
    index, ids, vectors = filled
    removed = ids[1::9]
    index.remove(removed)
    rng = np.random.default_rng(2)
    chosen = np.sort(rng.choice(len(ids), max(1, int(share * len(ids))), replace=False))
    asked = np.concatenate([ids[chosen], [5, 10**9]])  # plus ids never held
    live = chosen[~np.isin(ids[chosen], removed)]
    queries = unit_vectors(20, seed=3)

    scores, found = index.search(queries, 10, subset=asked)

    dots = queries @ vectors[live].T
    for row, d in enumerate(dots):
        best = np.argsort(-d)[:10]
        np.testing.assert_array_equal(found[row][: len(best)], ids[live][best])
        np.testing.assert_allclose(scores[row][: len(best)], d[best], atol=1e-5)
        assert (found[row][len(best) :] == -1).all()


def test_subset_keeps_the_live_ids_held_and_scores_their_vectors(filled):
    index, ids, vectors = filled
    index.remove(ids[:5])
    subset = index.subset([ids[7], ids[3], ids[7], 1, ids[-1]])
    q = unit_vectors(1, seed=9)[0]

    assert subset.ids.tolist() == [ids[7], ids[-1]] and len(subset) == 2
    scores = index.scores(q, subset)
    if index.factory.startswith("IVF"):
        assert scores is None  # codes only
    else:
        np.testing.assert_allclose(scores, vectors[[7, -1]] @ q, atol=1e-6)


def test_a_changed_index_prepares_an_old_subset_again():
    vectors, ids = unit_vectors(300), caller_ids(300)
    index = VectorIndex.build(ids, vectors, factory="Flat", use_gpu=False)
    subset, state = index.subset(ids[:50]), index.state
    index.remove(ids[:10])
    assert index.state != state
    _, found = index.search(vectors[:20], 1, subset=subset)
    assert (found[:10, 0] != ids[:10]).all() and np.isin(found, ids[10:50]).all()
    np.testing.assert_array_equal(found[10:, 0], ids[10:20])
    # ids[:10] are gone from the subset, prepared again
    np.testing.assert_allclose(index.scores(vectors[0], subset), vectors[10:50] @ vectors[0], atol=1e-6)


def _storage_addresses(index: VectorIndex) -> list[int]:
    """Where the index keeps its codes (every IVF list's, or the flat storage's) and links."""
    ivf = faiss.try_extract_index_ivf(index._index)
    if ivf is not None:
        lists = faiss.downcast_InvertedLists(ivf.invlists)
        return [int(lists.get_codes(n)) for n in range(ivf.nlist)] + [int(lists.get_ids(n)) for n in range(ivf.nlist)]
    base = faiss.downcast_index(index._index.index)
    storage = faiss.downcast_index(base.storage) if isinstance(base, faiss.IndexHNSW) else base
    graph = [int(base.hnsw.neighbors.data())] if isinstance(base, faiss.IndexHNSW) else []
    return [int(storage.codes.data())] + graph


@pytest.mark.parametrize("factory", ["IVF16,Flat", "IVF16,SQ8", "IVF8,PQ4x4", "HNSW16,Flat", "Flat"])
def test_reserved_storage_takes_every_vector_without_moving(factory):
    vectors, ids = unit_vectors(2000), caller_ids(2000)
    index = VectorIndex(DIM, factory, use_gpu=False)
    index.train(vectors)
    raw, x = index._index, as_vectors(vectors, DIM)
    ivf = fillable_ivf(raw)
    if ivf is not None:
        lists = centroid_finder(ivf).assign(x, 1).ravel()
        reserve_lists(ivf, np.bincount(lists, minlength=ivf.nlist))
    else:
        reserve_storage(raw, 2000)
    reserved = _storage_addresses(index)

    for rows in (slice(i, i + 300) for i in range(0, 2000, 300)):
        if ivf is not None:
            add_to_lists(ivf, ids[rows], x[rows], lists[rows])
        else:
            raw.add_with_ids(x[rows], ids[rows])

    assert raw.ntotal == 2000
    assert _storage_addresses(index) == reserved  # allocated once, at its size: nothing grew by copying


@pytest.mark.parametrize(
    "factory", ["IVF16,Flat", "IVF16_HNSW32,Flat", "IVF16,SQ8", "IVF8,PQ4x4", "HNSW16,Flat", "Flat"]
)
def test_a_filled_index_answers_as_one_grown_by_adds_and_stays_changeable(factory):
    vectors, ids = unit_vectors(2000), caller_ids(2000)
    grown = VectorIndex.build(ids, vectors, factory=factory, use_gpu=False)
    index = VectorIndex(DIM, factory, use_gpu=False)
    index.train(vectors)
    batches = [(ids[i : i + 300], vectors[i : i + 300]) for i in range(0, 2000, 300)]

    index.fill(2000, lambda: iter(batches))

    for built in (grown, index):
        if "IVF" in factory or "HNSW" in factory:
            built.set_search_params(**({"nprobe": 16} if factory.startswith("IVF") else {"ef_search": 256}))
    queries = unit_vectors(40, seed=1)
    if factory != "IVF8,PQ4x4":  # PQ codebooks trained apart differ
        np.testing.assert_array_equal(index.search(queries, k=10)[1], grown.search(queries, k=10)[1])
    assert sorted(index.ids()) == sorted(ids) and index.watermark == ids.max()
    assert index.remove(ids[:5]) == 5
    index.add([1], unit_vectors(1, seed=2))
    assert index.ntotal == 1996 and 1 in index.search(unit_vectors(1, seed=2), k=10)[1][0]


def test_rows_changed_between_the_fill_passes_go_to_their_own_lists():
    vectors, ids = unit_vectors(2000), np.arange(2000)
    index = VectorIndex(DIM, "IVF16,Flat", use_gpu=False)
    index.train(vectors)
    calls = []

    def batches():  # the pass adding sees other rows than the pass sizing the lists
        calls.append(1)
        rows = slice(0, 1000) if len(calls) == 1 else slice(1000, 2000)
        return iter([(ids[rows], vectors[rows])])

    index.fill(1000, batches)
    index.set_search_params(nprobe=1)

    assert sorted(index.ids().tolist()) == list(range(1000, 2000))
    # each vector in its nearest centroid's list: one probe finds it first
    assert index.search(vectors[1000:], k=1)[1][:, 0].tolist() == list(range(1000, 2000))
