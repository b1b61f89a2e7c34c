"""IndexSet upkeep: an index whose size calls for another type is rebuilt beside the searches
and swapped in caught up; approximate indexes are tuned by measured recall, and the tuning is
kept with the index file."""

import threading

import numpy as np
import pytest

from mmsearch.storage import index_choice
from mmsearch.storage.index_set import IndexSet
from mmsearch.storage.store import Store
from tests.helpers import store_url

from .test_index_set import DIM, SPACE, _add, _unit


@pytest.fixture
def store(tmp_path):
    s = Store(store_url(tmp_path))
    yield s
    s.close()


@pytest.fixture
def small_flat(monkeypatch):
    """Approximate indexes from 300 vectors (not 100k), so a test library can reach them."""
    monkeypatch.setattr(index_choice, "FLAT_MAX_VECTORS", 300)


def _top(index_set: IndexSet, seed: int) -> int:
    return int(index_set.search("image", _unit(seed)[None], 1)[1][0, 0])


def _hold_measured_builds(index_set: IndexSet) -> tuple[threading.Event, threading.Event]:
    """Make the set's measured builds wait: (set when one starts, set to let it go on)."""
    building, release = threading.Event(), threading.Event()
    build = index_set._build

    def held_build(kind):
        building.set()
        assert release.wait(30)
        return build(kind)

    index_set._build = held_build
    return building, release


def test_a_grown_index_is_rebuilt_beside_the_searches_and_swapped_in_caught_up(tmp_path, store, small_flat):
    ids = _add(store, list(range(200)))
    index_set = IndexSet(store, tmp_path / "indexes", SPACE, DIM, use_gpu=False)
    assert index_set.get("image").factory == "Flat"
    more = _add(store, list(range(200, 600)))
    index_set.add("image", np.asarray(more), np.stack([_unit(s) for s in range(200, 600)]))

    building, release = _hold_measured_builds(index_set)
    index_set.checkpoint(force=True)  # queues the rebuild; returns at once
    assert building.wait(10)
    # The rebuild is under way: searches go on with the Flat index, and an index job adds a row.
    assert index_set.get("image").factory == "Flat" and _top(index_set, 7) == ids[7]
    late = _add(store, [999])
    index_set.add("image", np.asarray(late), _unit(999)[None])
    release.set()
    assert index_set.wait_upkeep(60)

    index = index_set.get("image")
    # Both types that fit were built and measured; the faster at the target recall was kept.
    assert index_choice.candidate_factories(601, DIM) == ["HNSW32,Flat", "IVF8,Flat"]
    compared = index.meta_extra["compared"]
    assert [c["factory"] for c in compared] == ["HNSW32,Flat", "IVF8,Flat"] and all(c["reached"] for c in compared)
    assert index.factory == min(compared, key=lambda c: c["p50_ms"])["factory"]
    assert index.ntotal == 601 and _top(index_set, 999) == late[0]  # the row added meanwhile was caught up
    [info] = index_set.info()
    assert info["kind"] == "image" and info["vectors"] == 601 and info["upkeep"] == "idle"
    tuning = info["tuning"]
    assert tuning["factory"] == index.factory and tuning["reached"] and tuning["vectors"] == 601
    assert set(tuning["recall"]) == {"image-like", "text-like"} and min(tuning["recall"].values()) >= 0.95
    assert info["params"] == tuning["params"] and ("efSearch" in info["params"] or "nprobe" in info["params"])


def test_an_index_built_on_open_serves_at_once_and_the_measured_choice_follows(tmp_path, store, small_flat):
    ids = _add(store, list(range(400)))
    index_set = IndexSet(store, tmp_path / "indexes", SPACE, DIM, use_gpu=False)
    building, release = _hold_measured_builds(index_set)
    opened = index_set.get("image")  # no index file: built from SQL while searches wait
    # Searches wait only for the type quickest to build; the measured choice is made beside them.
    assert opened.factory == "IVF8,Flat" and opened.ntotal == 400
    assert building.wait(10)
    assert _top(index_set, 7) == ids[7]
    release.set()
    assert index_set.wait_upkeep(60)

    index = index_set.get("image")
    compared = index.meta_extra["compared"]
    assert [c["factory"] for c in compared] == ["HNSW32,Flat", "IVF8,Flat"]
    assert index.factory == min(compared, key=lambda c: c["p50_ms"])["factory"] and index.ntotal == 400


def test_an_index_nothing_searches_yet_is_built_as_the_measured_choice_at_once(tmp_path, store, small_flat):
    ids = _add(store, list(range(400)))
    index_set = IndexSet(store, tmp_path / "indexes", SPACE, DIM, use_gpu=False)

    index = index_set.rebuild("image", searched=False)  # an import's own set

    compared = index.meta_extra["compared"]
    assert [c["factory"] for c in compared] == ["HNSW32,Flat", "IVF8,Flat"]
    assert index.factory == min(compared, key=lambda c: c["p50_ms"])["factory"] and index.ntotal == 400
    assert not index_set.upkeep.busy()  # no quick build to replace, nothing left to tune
    assert sorted(p.name for p in (tmp_path / "indexes").iterdir()) == [
        index_set.path("image").name,
        index_set.path("image").name + ".meta.json",
    ]  # saved; no candidate left behind
    assert _top(index_set, 7) == ids[7]


def test_a_tuned_index_keeps_its_setting_across_a_reopen(tmp_path, store, small_flat):
    _add(store, list(range(400)))
    first = IndexSet(store, tmp_path / "indexes", SPACE, DIM, use_gpu=False)
    first.get("image")  # built at once as the type quickest to build; the measured choice follows
    assert first.wait_upkeep(60)
    built = first.get("image").factory  # the faster of HNSW and IVF, by measurement
    assert built in index_choice.candidate_factories(400, DIM)
    first.checkpoint(force=True)
    tuned = first.info()[0]["tuning"]
    assert tuned is not None and tuned["vectors"] == 400

    again = IndexSet(store, tmp_path / "indexes", SPACE, DIM, use_gpu=False)
    assert again.get("image").factory == built
    assert not again.upkeep.busy()  # nothing to tune: the file carries its tuning
    assert again.info()[0]["tuning"] == tuned


def test_a_lower_target_recall_is_a_reason_to_tune_again(tmp_path, store, small_flat):
    _add(store, list(range(400)))
    first = IndexSet(store, tmp_path / "indexes", SPACE, DIM, use_gpu=False)
    first.get("image")
    assert first.wait_upkeep(60)
    first.checkpoint(force=True)
    again = IndexSet(store, tmp_path / "indexes", SPACE, DIM, use_gpu=False, target_recall=0.5)
    again.get("image")
    assert again.wait_upkeep(60)
    assert again.info()[0]["tuning"]["target"] == 0.5


def test_the_memory_budget_is_shared_by_the_kinds_in_proportion_to_their_vectors(tmp_path, store):
    _add(store, list(range(30)))
    _add(store, list(range(10)), kind="segment")
    index_set = IndexSet(store, tmp_path / "indexes", SPACE, DIM, use_gpu=False, memory_budget=4000)
    assert index_set.memory_share("image", 30) == 3000 and index_set.memory_share("segment", 10) == 1000
    assert IndexSet(store, tmp_path / "other", SPACE, DIM, use_gpu=False).memory_share("image", 30) is None


def test_a_budget_too_small_for_float32_gets_codes_whose_hits_are_rescored_exactly(tmp_path, store, small_flat):
    ids = np.asarray(_add(store, list(range(2000))))
    index_set = IndexSet(store, tmp_path / "indexes", SPACE, DIM, use_gpu=False, memory_budget=50_000)
    # float32 vectors would take ~81 kB in IVF lists, ~720 kB in an HNSW graph
    assert index_set.get("image").factory == "IVF32,SQ8"
    assert index_set.wait_upkeep(60)
    stored = np.concatenate([v for _, v in store.iter_vectors(SPACE, ("image",))])
    queries = np.stack([_unit(10_000 + s) for s in range(50)])
    scores, found = index_set.search("image", queries, 5)
    # scores are the stored vectors' exact inner products, not the codes' estimates
    by_id = dict(zip(ids.tolist(), stored))
    exact = np.array([[by_id[i] @ q for i in row] for row, q in zip(found.tolist(), queries)])
    assert np.allclose(scores, exact, atol=1e-6) and np.all(np.diff(scores, axis=1) <= 0)
    truth = ids[np.argsort(-(queries @ stored.T), axis=1)[:, :5]]
    recall = np.mean([len(set(a) & set(b)) / 5 for a, b in zip(found.tolist(), truth.tolist())])
    tuning = index_set.info()[0]["tuning"]
    assert tuning["reached"] and recall >= 0.95, (recall, tuning)
