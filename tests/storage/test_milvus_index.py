"""The Milvus backend against a real Milvus Lite (in this process, a folder per test): it keeps
its collections in step with SQL, the source of truth, as the FAISS IndexSet keeps its files
(rows added while it was closed appear, rows deleted vanish), its filtered searches answer as
exact filtered search does, and a library searched through it answers as the FAISS one."""

import socket
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from tests.helpers import make_corpus, open_library
from tests.storage.test_index_set import _add as add_vector_rows
from tests.storage.test_index_set import _unit as unit_vector

pytest.importorskip("pymilvus")

from mmsearch.config import Settings  # noqa: E402
from mmsearch.search.prefilter import Prefilter  # noqa: E402
from mmsearch.search.query import SearchRequest, build_terms  # noqa: E402
from mmsearch.storage import index_choice  # noqa: E402
from mmsearch.storage.index_backends import drop_collections, open_index_set  # noqa: E402
from mmsearch.storage.index_set import IndexSet  # noqa: E402
from mmsearch.storage.milvus_collection import HeldSubset  # noqa: E402
from mmsearch.storage.milvus_connect import (  # noqa: E402
    MISSING_PYMILVUS,
    MilvusLockedError,
    MilvusUnavailableError,
    connect,
    pymilvus,
    release_lite,
    resolve_uri,
)
from mmsearch.storage.milvus_index import MilvusIndexSet  # noqa: E402
from mmsearch.storage.store import Store  # noqa: E402

DIM = 16
SPACE = "test-model@1|mean"
# Text queries of the synthetic corpus's vocabulary (shapes, colours, sizes), some filtered.
LIBRARY_QUERIES = [
    ("a red circle", {}),
    ("a blue square", {}),
    ("a small green triangle", {}),
    ("a large yellow star", {}),
    ("a purple shape on a white background", {}),
    ("two orange circles", {}),
    ("a red circle", {"kind": "image", "min_score": 0.1}),
    ("a blue square", {"path_prefix": "PHOTOS/"}),
]


@pytest.fixture
def store(tmp_path):
    s = Store(f"sqlite:///{tmp_path / 'library.db'}")
    yield s
    s.close()


@pytest.fixture
def uri(tmp_path):
    path = str(tmp_path / "milvus.db")
    yield path
    release_lite(path)  # the folder's server and lock go with the test


def _unit(seed: int) -> np.ndarray:
    return unit_vector(seed, DIM)


def _add(store: Store, seeds, kind: str = "image") -> list[int]:
    """Media and vector rows for the given seeds in this file's space and dimension; the vector ids."""
    return add_vector_rows(store, seeds, kind, SPACE, DIM)


def _open(store: Store, uri: str, **kwargs) -> MilvusIndexSet:
    return MilvusIndexSet(store, uri, SPACE, DIM, **kwargs)


def _reopen(indexes: MilvusIndexSet, store: Store, uri: str) -> MilvusIndexSet:
    """The set as a process started anew finds it: the Lite server stopped (its data on disk)."""
    indexes.close()
    release_lite(uri)
    return _open(store, uri)


def _exact(store: Store, q: np.ndarray, k: int, allowed=None) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k (scores, ids) by inner product over SQL's vectors (those in `allowed`), best
    first, ties by id."""
    ids, vectors = map(np.concatenate, zip(*store.iter_vectors(SPACE, ("image",))))
    if allowed is not None:
        keep = np.isin(ids, allowed)
        ids, vectors = ids[keep], vectors[keep]
    scores = vectors @ (q / np.linalg.norm(q))
    order = np.lexsort((ids, -scores))[:k]
    return scores[order], ids[order]


def test_add_search_remove(store, uri):
    ids = _add(store, range(40))
    indexes = _open(store, uri)
    assert indexes.size("image") == 40  # created and filled from SQL on first use
    q = _unit(1000)
    scores, found = indexes.search("image", q[None], 10)
    want_scores, want = _exact(store, q, 10)
    assert found[0].tolist() == want.tolist()
    np.testing.assert_allclose(scores[0], want_scores, atol=1e-5)
    # a row committed to SQL, then handed to the set (as an index job does)
    new = _add(store, [2000])
    indexes.add("image", np.asarray(new), _unit(2000)[None])
    indexes.add("image", np.asarray(new), _unit(2000)[None])  # again: held once
    assert indexes.size("image") == 41
    top_scores, top = indexes.search("image", _unit(2000)[None], 1)
    assert top[0, 0] == new[0] and top_scores[0, 0] == pytest.approx(1.0, abs=1e-3)
    indexes.remove([new[0], ids[0]])
    assert indexes.size("image") == 39
    _, found = indexes.search("image", _unit(2000)[None], 40)
    assert new[0] not in found[0] and ids[0] not in found[0]
    assert found[0, 39] == -1  # 39 vectors: the 40th slot is empty
    assert indexes.sizes() == {"image": 39}
    [entry] = indexes.info()
    assert (entry["backend"], entry["factory"], entry["index_type"], entry["vectors"]) == ("milvus", "FLAT", "FLAT", 39)
    assert entry["space"] == SPACE and entry["kind"] == "image" and entry["collection"].startswith("mms_")
    indexes.close()


def test_a_collection_behind_sql_catches_up_on_open(store, uri):
    _add(store, range(20))
    first = _open(store, uri)
    assert first.size("image") == 20
    first.checkpoint(force=True)
    later = _add(store, range(100, 130))  # committed while the set was closed: never told
    indexes = _reopen(first, store, uri)
    assert indexes.size("image") == 50
    assert indexes.get("image").contains(np.asarray(later)).all()
    _, found = indexes.search("image", _unit(117)[None], 1)
    assert found[0, 0] == later[17]
    # a gap below the collection's newest row (a crash between SQL's commit and Milvus's write)
    indexes.remove([later[3]])
    indexes = _reopen(indexes, store, uri)
    assert indexes.size("image") == 50
    _, found = indexes.search("image", _unit(103)[None], 1)
    assert found[0, 0] == later[3]
    indexes.close()


def test_a_collection_ahead_of_sql_drops_the_extra_ids_on_open(store, uri):
    ids = _add(store, range(30))
    first = _open(store, uri)
    assert first.size("image") == 30
    gone = ids[5:10] + [ids[-1]]  # the newest among them: below no watermark
    with store.session() as s:  # media deleted while the collection was not told
        store.delete_media(s, list(store.media_of_vectors(gone).values()))
    indexes = _reopen(first, store, uri)
    assert indexes.size("image") == 24
    assert not indexes.get("image").contains(np.asarray(gone)).any()
    assert indexes.get("image").all_ids().tolist() == sorted(set(ids) - set(gone))  # Milvus itself holds none
    for seed in (5, 7, 29):
        _, found = indexes.search("image", _unit(seed)[None], 30)
        assert not set(found[0].tolist()) & set(gone)
    indexes.close()


def test_rows_another_process_committed_are_caught_up_by_a_search(store, uri):
    _add(store, range(10))
    indexes = _open(store, uri)
    assert indexes.size("image") == 10
    new = _add(store, [500, 501])  # as a job in another process commits, not telling this set
    time.sleep(1.05)  # searches look at most once a second
    _, found = indexes.search("image", _unit(501)[None], 1)
    assert found[0, 0] == new[1] and indexes.size("image") == 12
    indexes.close()


@pytest.mark.parametrize("share", [0.003, 0.05, 0.3, 0.9])
def test_filtered_search_equals_exact_filtered_search(store, uri, share):
    ids = np.asarray(_add(store, range(1500)))
    indexes = _open(store, uri)
    rng = np.random.default_rng(int(share * 1000))
    allowed = np.sort(rng.choice(ids, max(1, int(share * len(ids))), replace=False))
    subset = indexes.get("image").subset(np.concatenate([allowed, allowed[:3], [10**9]]))  # repeats, a stranger
    assert isinstance(subset, HeldSubset) and subset.ids.tolist() == allowed.tolist()
    prefilter = Prefilter(store, indexes)
    for seed in range(5):
        q = _unit(9000 + seed)
        want_scores, want = _exact(store, q, 20, allowed)
        scores, found = indexes.search("image", q[None], 20, subset=subset)
        live = found[0] >= 0
        assert found[0][live].tolist() == want.tolist()
        np.testing.assert_allclose(scores[0][live], want_scores, atol=1e-5)
        # the prefilter's choice: exact from SQL (small subsets) or the filtered Milvus search
        pf_scores, pf = prefilter.search("image", q, 20, subset)
        assert pf.tolist() == want.tolist()
        np.testing.assert_allclose(pf_scores, want_scores, atol=1e-3)  # SQL's float16 copies
    indexes.close()


def test_an_approximate_index_is_chosen_tuned_and_kept(store, uri, monkeypatch):
    monkeypatch.setattr(index_choice, "FLAT_MAX_VECTORS", 500)  # the line, lowered for a small collection
    ids = np.asarray(_add(store, range(3000)))
    indexes = _open(store, uri, target_recall=0.95)
    assert indexes.size("image") == 3000
    assert indexes.wait_upkeep(120)
    [entry] = indexes.info()
    assert (entry["index_type"], entry["build_params"]) == ("HNSW", {"M": 32, "efConstruction": 200})
    tuning = entry["tuning"]
    assert tuning["reached"] and min(tuning["recall"].values()) >= 0.95 and tuning["factory"] == "HNSW32,Flat"
    assert entry["params"] == {"ef": tuning["params"]["efSearch"]}
    # a filtered search through the graph: the beam widened by the subset's share
    allowed = ids[::50]
    q = _unit(4242)
    _, found = indexes.search("image", q[None], 10, subset=allowed)
    assert found[0].tolist() == _exact(store, q, 10, allowed)[1].tolist()
    # reopened: the index and its tuning are read back from the collection, nothing to tune
    indexes = _reopen(indexes, store, uri)
    assert indexes.size("image") == 3000 and not indexes.upkeep.busy()
    [again] = indexes.info()
    assert (again["index_type"], again["params"], again["tuning"]) == ("HNSW", entry["params"], tuning)
    indexes.close()


def test_a_collection_grown_past_the_line_is_reindexed_at_a_forced_checkpoint(store, uri, monkeypatch):
    monkeypatch.setattr(index_choice, "FLAT_MAX_VECTORS", 500)
    _add(store, range(300))
    indexes = _open(store, uri)
    assert indexes.size("image") == 300 and indexes.info()[0]["index_type"] == "FLAT"
    new = _add(store, range(1000, 1400))
    indexes.add("image", np.asarray(new), np.stack([_unit(s) for s in range(1000, 1400)]))
    indexes.checkpoint(force=True)  # a job's end: 700 vectors call for HNSW
    assert indexes.wait_upkeep(120)
    [entry] = indexes.info()
    assert entry["index_type"] == "HNSW" and entry["vectors"] == 700 and entry["tuning"]["reached"]
    _, found = indexes.search("image", _unit(1399)[None], 1)
    assert found[0, 0] == new[-1]
    indexes.close()


def test_the_other_kinds_and_spaces_have_collections_of_their_own(store, uri):
    images, segments = _add(store, range(5)), _add(store, range(5), kind="segment")
    indexes = _open(store, uri)
    assert (indexes.size("image"), indexes.size("segment"), indexes.size("video")) == (5, 5, 0)
    assert len({indexes.collection_name(k) for k in ("image", "segment", "video")}) == 3
    _, found = indexes.search("segment", _unit(3)[None], 1)
    assert found[0, 0] == segments[3]
    _, found = indexes.search("video", _unit(3)[None], 3)
    assert found.tolist() == [[-1, -1, -1]]
    other = MilvusIndexSet(store, uri, "another-model@2", DIM)
    assert other.size("image") == 0 and other.collection_name("image") != indexes.collection_name("image")
    assert images[0] not in indexes.search("segment", _unit(0)[None], 5)[1][0]
    other.close()
    indexes.close()


def test_rows_another_replica_wrote_to_the_shared_collection_are_not_written_again(store, uri):
    first, second = _open(store, uri), _open(store, uri)  # two servers on one Milvus
    assert (first.size("image"), second.size("image")) == (0, 0)
    ids = _add(store, range(5))
    first.add("image", np.asarray(ids), np.stack([_unit(i) for i in range(5)]))
    counts = second._sync("image", second.get("image"), store.vector_ids(SPACE, ("image",)))
    assert counts == {"added": 0, "removed": 0}  # held already: only its mirror learns of them
    assert second.size("image") == 5 and second.search("image", _unit(3)[None], 1)[1][0, 0] == ids[3]
    first.close()
    second.close()


def test_an_import_brings_the_live_collection_up_to_date_without_dropping_it(store, uri):
    from mmsearch.indexer.clip_retrieval import build_index

    _add(store, range(4))
    indexes = _open(store, uri)
    assert indexes.size("image") == 4  # opened: the collection a server searches
    name = indexes.collection_name("image")
    before = indexes.client.describe_collection(name)["collection_id"]
    added = _add(store, range(4, 9))  # what an import writes to SQL
    assert build_index(indexes) == "FLAT"
    assert indexes.client.describe_collection(name)["collection_id"] == before  # the same collection
    assert indexes.size("image") == 9
    assert indexes.search("image", _unit(6)[None], 1)[1][0, 0] == added[2]
    indexes.close()


def test_a_dropped_models_collections_are_dropped_and_no_others(store, uri, tmp_path):
    _add(store, range(3))
    _add(store, range(3), kind="segment")
    indexes, other = _open(store, uri), MilvusIndexSet(store, uri, "another-model@2", DIM)
    names = [indexes.collection_name(k) for k in ("image", "segment")]
    assert (indexes.size("image"), indexes.size("segment"), other.size("image")) == (3, 3, 0)
    indexes.close()
    settings = Settings(library_dir=tmp_path, vector_backend="milvus", milvus_uri=uri)
    pairs = [(SPACE, "image"), (SPACE, "segment"), (SPACE, "video")]  # no video collection was made
    assert drop_collections(Settings(library_dir=tmp_path), store, tmp_path, pairs) == 0  # FAISS: not ours
    assert drop_collections(settings, store, tmp_path, pairs) == 2
    client = connect(uri)
    try:
        assert [client.has_collection(n) for n in names] == [False, False]
        assert client.has_collection(other.collection_name("image"))
    finally:
        client.close()
        other.close()


def test_open_index_set_follows_the_settings(store, tmp_path):
    faiss_set = open_index_set(Settings(library_dir=tmp_path), store, tmp_path, SPACE, DIM)
    assert isinstance(faiss_set, IndexSet)
    settings = Settings(library_dir=tmp_path, vector_backend="milvus", target_recall=0.9)
    milvus_set = open_index_set(settings, store, tmp_path, SPACE, DIM, kind_spaces={"video": "v"})
    try:
        assert isinstance(milvus_set, MilvusIndexSet)
        assert milvus_set.uri == str((tmp_path / "milvus.db").resolve())  # the default: in the library folder
        assert (milvus_set.target_recall, milvus_set.space_of("video")) == (0.9, "v")
    finally:
        milvus_set.close()
        release_lite(milvus_set.uri)


def test_uris_resolve(tmp_path):
    assert resolve_uri(None, tmp_path) == str((tmp_path / "milvus.db").resolve())
    assert resolve_uri("vectors.db", tmp_path) == str((tmp_path / "vectors.db").resolve())
    assert resolve_uri("http://milvus:19530", tmp_path) == "http://milvus:19530"
    with pytest.raises(MilvusUnavailableError, match="must end in .db"):
        resolve_uri("vectors", tmp_path)


def test_a_missing_pymilvus_is_named(monkeypatch):
    monkeypatch.setitem(sys.modules, "pymilvus", None)  # as if not installed: import raises
    with pytest.raises(MilvusUnavailableError) as e:
        pymilvus()
    assert str(e.value) == MISSING_PYMILVUS == "the milvus backend needs pymilvus: pip install 'mmsearch[milvus]'"


def test_a_server_that_does_not_answer_fails_within_the_timeout():
    with socket.socket() as listener:  # accepts connections (the kernel's backlog), never speaks gRPC
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        started = time.monotonic()
        with pytest.raises(MilvusUnavailableError, match="could not open Milvus at http://127.0.0.1"):
            connect(f"http://127.0.0.1:{listener.getsockname()[1]}", timeout=2)
        assert time.monotonic() - started < 10


def test_a_lite_file_another_process_holds_is_refused_with_a_reason(store, uri):
    indexes = _open(store, uri)  # this process holds the Lite folder
    indexes.size("image")
    child = textwrap.dedent(
        f"""
        from mmsearch.storage.milvus_connect import MilvusLockedError, connect
        try:
            connect({uri!r}, timeout=5)
        except MilvusLockedError as e:
            print("LOCKED", e)
        """
    )
    out = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, timeout=60)
    assert "LOCKED" in out.stdout and "Milvus Lite allows one process per file" in out.stdout, out.stderr[-2000:]
    indexes.close()
    # released, the folder opens in this process again
    release_lite(uri)
    connect(uri).close()
    assert MilvusLockedError.__mro__[1] is MilvusUnavailableError


def test_searches_deeper_than_a_servers_top_k_limit_are_paged(store, uri, monkeypatch):
    from mmsearch.storage import milvus_collection

    monkeypatch.setattr(milvus_collection, "MAX_TOPK", 7)  # a server's 16,384, lowered
    ids = np.asarray(_add(store, range(60)))
    indexes = _open(store, uri)
    q = np.stack([_unit(77), _unit(78)])
    _, found = indexes.search("image", q, 25)
    assert [row.tolist() for row in found] == [_exact(store, qi, 25)[1].tolist() for qi in q]
    allowed = ids[::3]
    _, found = indexes.search("image", q[:1], 15, subset=allowed)
    assert found[0].tolist() == _exact(store, q[0], 15, allowed)[1].tolist()
    indexes.close()


@pytest.mark.slow
def test_a_library_on_milvus_answers_as_the_faiss_library(tmp_path, mini_encoder):
    """The synthetic corpus indexed twice, once per backend: every text query's top 5 (media
    paths, in order) and their scores are the same."""
    make_corpus(tmp_path / "photos", n=90, seed=11)
    photos = str((tmp_path / "photos").resolve())
    answers = {}
    for backend in ("faiss", "milvus"):
        with open_library(tmp_path / backend, encoder=mini_encoder, vector_backend=backend) as lib:
            lib.index([tmp_path / "photos"])
            assert type(lib.indexes) is {"faiss": IndexSet, "milvus": MilvusIndexSet}[backend]
            answers[backend] = []
            for text, options in LIBRARY_QUERIES:
                options = {k: v.replace("PHOTOS", photos) if isinstance(v, str) else v for k, v in options.items()}
                hits = lib.search(SearchRequest(terms=build_terms(text), k=5, **options))
                answers[backend].append([(h.path, round(h.score, 4)) for h in hits])
            assert lib.indexes.sizes()["image"] == 90
        release_lite(str(tmp_path / backend / "milvus.db"))
    assert all(len(page) == 5 for page in answers["faiss"])
    assert answers["milvus"] == answers["faiss"]
