"""storage.index_selection: of the index types that fit, the one serving the target recall at
the lowest latency is built and kept, with what each candidate measured."""

import os
import subprocess

import faiss
import numpy as np
import pytest

from mmsearch.storage.faiss_parts import new_faiss_index
from mmsearch.storage.index_choice import candidate_factories, estimate_memory_bytes, quickest_to_build, still_suits
from mmsearch.storage.index_selection import _better, build_index, build_measured
from mmsearch.storage.index_tuning import Tuning, exact_top_k_of, probe_queries, tune

from .test_index_tuning import batches, clustered


def _case(n: int, batch: int = 700):
    """n clustered 32-d vectors (ids 0..n-1): tuning's query sets, their exact top 10, and the
    vectors' batches(every=) as an index build streams them."""
    x, ids = clustered(n, 32, per_cluster=50), np.arange(n)
    queries = probe_queries(x[:: n // 100])
    truth = exact_top_k_of(queries, lambda: batches(ids, x, batch))

    def chunks(every=1):
        return batches(ids[::every], x[::every], batch)

    return queries, truth, chunks


def _tuning(reached: bool, p50_ms: float, recall: float) -> Tuning:
    return Tuning("X", {}, {"image-like": recall, "text-like": 1.0}, p50_ms, 0.95, reached, vectors=10)


def test_reaching_the_target_wins_then_speed_then_recall():
    assert _better(_tuning(True, 9.0, 0.95), _tuning(False, 0.1, 0.94))
    assert not _better(_tuning(False, 0.1, 0.94), _tuning(True, 9.0, 0.95))
    assert _better(_tuning(True, 1.0, 0.96), _tuning(True, 2.0, 0.99))
    assert _better(_tuning(False, 5.0, 0.90), _tuning(False, 1.0, 0.80))
    assert not _better(_tuning(True, 2.0, 0.99), _tuning(True, 2.0, 0.96))  # a tie keeps the first built


def test_both_float32_types_are_candidates_where_they_fit_and_codes_only_where_neither_does():
    assert candidate_factories(99_999, 512) == ["Flat"]
    assert candidate_factories(1_000_000, 512) == ["HNSW32,Flat", "IVF4096,Flat"]
    between = estimate_memory_bytes("IVF4096,Flat", 1_000_000, 512) + 2**20  # IVF lists fit, a graph does not
    assert candidate_factories(1_000_000, 512, between) == ["IVF4096,Flat"]
    assert candidate_factories(1_000_000, 512, 2**30) == ["IVF4096,SQ8"]
    [pq] = candidate_factories(1_000_000, 512, 200 * 2**20)
    assert pq.startswith("IVF4096,PQ") and estimate_memory_bytes(pq, 1_000_000, 512) <= 200 * 2**20
    with pytest.raises(ValueError, match="no index fits"):
        candidate_factories(1_000_000, 512, 10 * 2**20)
    # lists found by comparing with every centroid, however many; 10M: the most precise 4-bit
    # codes that fit 2 GiB
    assert candidate_factories(3_000_000, 512) == ["HNSW32,Flat", "IVF8192,Flat"]
    assert candidate_factories(10_000_000, 512, 2 * 2**30) == ["IVF8192,PQ128x4fs"]  # lists capped
    assert candidate_factories(100_000_000, 512, 20 * 2**30) == ["IVF8192,PQ128x4fs"]
    assert candidate_factories(10_000_000, 512, 2**29) == ["IVF8192,PQ32x4fs"]
    # an index of the graph form built by sessions 17-19 is still understood
    graph = estimate_memory_bytes("IVF16384_HNSW32,PQ128", 10_000_000, 512) - estimate_memory_bytes(
        "IVF16384,PQ128", 10_000_000, 512
    )
    assert graph == 16384 * (8 * 32 + 16)


def test_ivf_is_built_first_when_searches_wait_for_an_index():
    assert quickest_to_build(["HNSW32,Flat", "IVF4096,Flat"]) == "IVF4096,Flat"
    assert quickest_to_build(["HNSW32,Flat"]) == "HNSW32,Flat"
    assert quickest_to_build(["Flat"]) == "Flat"


def test_ivf_lists_made_for_a_near_size_go_on_serving():
    # nlist steps from 1024 to 2048 just past 131k vectors: the index built at 100k stays
    assert candidate_factories(140_000, 512) == ["HNSW32,Flat", "IVF2048,Flat"]
    assert still_suits("IVF1024,Flat", candidate_factories(140_000, 512))
    assert still_suits("HNSW32,Flat", candidate_factories(140_000, 512))
    # lists made for a quarter of the size, other codes, or a type that no longer fits: rebuilt
    assert not still_suits("IVF1024,Flat", candidate_factories(1_000_000, 512))
    assert not still_suits("IVF4096,Flat", candidate_factories(1_000_000, 512, 2**30))
    assert not still_suits("HNSW32,Flat", candidate_factories(1_000_000, 512, 2**30))
    assert not still_suits("Flat", candidate_factories(140_000, 512))
    # lists found through a graph over the centroids (sessions 17-19): rebuilt with a flat quantizer
    assert still_suits("IVF16384,PQ128", ["IVF16384,PQ128"])
    assert not still_suits("IVF16384_HNSW32,PQ128", candidate_factories(10_000_000, 512, 2 * 2**30))


@pytest.mark.parametrize("on_disk", [False, True])
def test_the_candidate_reaching_the_target_fastest_is_kept_with_every_measurement(on_disk, tmp_path):
    scratch = tmp_path if on_disk else None
    queries, truth, chunks = _case(4000)
    tuned, on_disk_meanwhile = [], []

    def measure(index):
        tuned.append(index.factory)
        on_disk_meanwhile.append(len(list(tmp_path.iterdir())))
        return tune(index, queries, truth)

    best = build_measured(32, ["HNSW16,Flat", "IVF64,Flat"], chunks, 4000, measure, use_gpu=False, scratch=scratch)
    assert tuned == ["HNSW16,Flat", "IVF64,Flat"] and best.ntotal == 4000
    # with a scratch folder the first (the best so far) waits there, index and sidecar, while
    # the second is measured; nothing is left behind
    assert on_disk_meanwhile == ([0, 2] if on_disk else [0, 0]) and not list(tmp_path.iterdir())
    compared = best.meta_extra["compared"]
    assert [c["factory"] for c in compared] == tuned and all(c["reached"] and c["vectors"] == 4000 for c in compared)
    assert best.factory == min(compared, key=lambda c: c["p50_ms"])["factory"]
    tuning = Tuning.from_meta(best.meta_extra["tuning"])
    assert (
        tuning.factory == best.factory
        and tuning.params == next(c for c in compared if c["factory"] == best.factory)["params"]
    )
    # the kept index serves at its tuned setting
    found = best.search(queries["image-like"], 10)[1]
    assert np.mean([len(set(f) & set(t)) / 10 for f, t in zip(found.tolist(), truth["image-like"].tolist())]) >= 0.95


def test_a_best_candidate_waiting_on_disk_comes_back_at_its_tuned_setting(tmp_path):
    queries, truth, chunks = _case(4000)
    slower = {"HNSW16,Flat": 1.0, "IVF64,Flat": 2.0}  # what each is said to measure: the first wins

    def measure(index):
        measured = tune(index, queries, truth)
        measured.p50_ms = slower[index.factory]
        return measured

    best = build_measured(32, list(slower), chunks, 4000, measure, use_gpu=False, scratch=tmp_path)

    assert best.factory == "HNSW16,Flat" and best.ntotal == 4000 and not list(tmp_path.iterdir())
    tuned_ef = best.meta_extra["tuning"]["params"]["efSearch"]
    assert faiss.downcast_index(best._index.index).hnsw.efSearch == tuned_ef
    assert [c["p50_ms"] for c in best.meta_extra["compared"]] == [1.0, 2.0]


def test_candidates_left_on_disk_by_a_killed_build_are_deleted_by_the_next(tmp_path):
    gone = subprocess.Popen(["true"])
    gone.wait()
    left = [tmp_path / f".candidate-{gone.pid}-1.index", tmp_path / f".candidate-{gone.pid}-1.index.meta.json"]
    building = tmp_path / f".candidate-{os.getpid()}-2.index"  # this process's own, in use
    for path in [*left, building]:
        path.write_bytes(b"x")
    queries, truth, chunks = _case(4000)

    build_measured(32, ["HNSW16,Flat", "IVF64,Flat"], chunks, 4000, lambda i: tune(i, queries, truth), False, tmp_path)

    assert list(tmp_path.iterdir()) == [building]


def test_lists_past_4096_are_found_through_a_graph_over_the_centroids():
    queries, truth, chunks = _case(6000, batch=1000)

    index = build_index(32, "IVF64_HNSW32,Flat", chunks, 6000, use_gpu=False)
    tuning = tune(index, queries, truth)

    assert index.ntotal == 6000 and sorted(index.ids().tolist()) == list(range(6000))
    assert tuning.reached and tuning.params["nprobe"] < 64  # not a scan of every list


@pytest.mark.parametrize("factory", ["IVF16,PQ8", "IVF16_HNSW32,PQ8"])
def test_pq_codes_are_trained_without_ordering_them_for_hamming_search(factory):
    # polysemous training (simulated annealing per sub-quantizer) took 15+ minutes of a 10M
    # PQ128 build, for a Hamming-distance search that is never used
    index = new_faiss_index(32, factory)
    ivf = faiss.downcast_index(faiss.extract_index_ivf(index))
    assert isinstance(ivf, faiss.IndexIVFPQ) and not ivf.do_polysemous_training


def test_an_exact_or_empty_index_is_built_without_measuring():
    x = clustered(300, 8)
    ids = np.arange(300)

    def never(index):
        raise AssertionError("an exact index needs no tuning")

    flat = build_measured(8, ["Flat"], lambda every=1: batches(ids, x, 100), 300, never, use_gpu=False)
    assert flat.factory == "Flat" and flat.ntotal == 300 and "compared" not in flat.meta_extra
    empty = build_measured(8, ["HNSW32,Flat", "IVF1,Flat"], lambda every=1: [], 0, never, use_gpu=False)
    assert empty.factory == "HNSW32,Flat" and empty.ntotal == 0


def test_a_streamed_build_trains_on_a_sample_and_holds_every_row():
    x = clustered(10_000, 16)
    ids = np.arange(10, 10_010)
    seen = []

    def chunks(every=1):
        seen.append(every)
        return batches(ids[::every], x[::every], 512)

    index = build_index(16, "IVF32,Flat", chunks, len(x), use_gpu=False)
    assert index.ntotal == 10_000 and sorted(index.ids().tolist()) == ids.tolist()
    # a training sample of every 2nd row (128 a list), then every row twice: sizing the lists, filling them
    assert seen == [10_000 // (128 * 32), 1, 1]
