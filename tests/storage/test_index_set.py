"""IndexSet keeps a saved FAISS index in step with SQL, the source of truth: opening an index
saved with a watermark catches it up (rows added since appear, rows deleted since vanish), so a
search never misses a committed row nor returns a deleted one, even after a crash between the
SQL commit and the index save.

Rows are written as the index job writes them (one Media row and one float16 Vector row per
image) into a real SQLite store."""

import os

import numpy as np
import pytest

from mmsearch.storage.index_set import IndexSet
from mmsearch.storage.store import Media, Store, Vector, encode_embedding
from mmsearch.storage.vector_index import VectorIndex

DIM = 8
SPACE = "test-model@1"


@pytest.fixture
def store(tmp_path):
    s = Store(f"sqlite:///{tmp_path / 'library.db'}")
    yield s
    s.close()


def _unit(seed: int, dim: int = DIM) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal(dim).astype(np.float32)
    return v / np.linalg.norm(v)


def _add(store: Store, seeds, kind: str = "image", space: str = SPACE, dim: int = DIM) -> list[int]:
    """Media and vector rows for the given seeds, as the index job writes them; the vector ids."""
    ids = []
    with store.session() as s:
        for seed in seeds:
            media = Media(path=f"/photos/{kind}-{space}-{seed}.png", root="/photos", kind="image", size=1, mtime=0.0)
            s.add(media)
            s.flush()
            v = Vector(media_id=media.id, kind=kind, space=space, dim=dim, embedding=encode_embedding(_unit(seed, dim)))
            s.add(v)
            s.flush()
            ids.append(v.id)
    return ids


def _media_of(store: Store, vector_ids: list[int]) -> list[int]:
    by_vector = store.media_of_vectors(vector_ids)
    return [by_vector[v] for v in vector_ids]


def _open(store: Store, directory) -> IndexSet:
    return IndexSet(store, directory, SPACE, DIM, use_gpu=False)


def _held(index_set: IndexSet) -> set[int]:
    return set(index_set.get("image").ids().tolist())


def _top(index_set: IndexSet, seed: int) -> tuple[int, float]:
    scores, ids = index_set.search("image", _unit(seed)[None], 1)
    return int(ids[0, 0]), float(scores[0, 0])


def _saved(tmp_path, store) -> tuple[IndexSet, list[int]]:
    """An index of three images, saved to disk (its watermark: the highest of their ids)."""
    ids = _add(store, [1, 2, 3])
    first = _open(store, tmp_path / "indexes")
    assert first.size("image") == 3  # built from SQL and saved (no file yet)
    assert first.path("image").is_file()
    assert VectorIndex.load(first.path("image"), use_gpu=False).watermark == max(ids)
    return first, ids


def test_rows_added_after_the_save_appear_on_open(tmp_path, store):
    first, old = _saved(tmp_path, store)
    saved_bytes = first.path("image").read_bytes()
    new = _add(store, [4, 5])
    assert min(new) > max(old)

    reopened = _open(store, tmp_path / "indexes")
    assert reopened.size("image") == 5
    assert _held(reopened) == set(old + new)
    for seed, vid in zip([4, 5], new):
        top, score = _top(reopened, seed)
        assert top == vid
        assert score == pytest.approx(1.0, abs=1e-3)
    # Caught up from the saved file (a rebuild from SQL would have rewritten it at once).
    assert first.path("image").read_bytes() == saved_bytes


def test_rows_deleted_in_sql_disappear_on_open(tmp_path, store):
    _, ids = _saved(tmp_path, store)
    with store.session() as s:
        removed = store.delete_media(s, _media_of(store, [ids[1]]))
    assert removed == [ids[1]]

    reopened = _open(store, tmp_path / "indexes")
    assert reopened.size("image") == 2
    assert _held(reopened) == {ids[0], ids[2]}
    scores, found = reopened.search("image", _unit(2)[None], 3)
    assert ids[1] not in found[0].tolist()
    assert found[0, 2] == -1  # only two vectors left to return


def test_additions_and_deletions_together_and_the_caught_up_index_saves(tmp_path, store):
    _, ids = _saved(tmp_path, store)
    with store.session() as s:
        store.delete_media(s, _media_of(store, [ids[0], ids[2]]))
    new = _add(store, [6, 7, 8])

    reopened = _open(store, tmp_path / "indexes")
    assert _held(reopened) == {ids[1], *new}
    reopened.checkpoint(force=True)
    assert VectorIndex.load(reopened.path("image"), use_gpu=False).watermark == max(new)

    third = _open(store, tmp_path / "indexes")
    assert _held(third) == {ids[1], *new}
    assert _top(third, 7)[0] == new[1]


def test_catch_up_takes_only_rows_of_its_own_space_and_kind(tmp_path, store):
    _, ids = _saved(tmp_path, store)
    other_space = _add(store, [10], space="another-model@2")
    frames = _add(store, [11], kind="frame")
    mine = _add(store, [12])
    assert min(other_space + frames) > max(ids)

    reopened = _open(store, tmp_path / "indexes")
    assert _held(reopened) == set(ids + mine)
    assert _top(reopened, 10)[0] not in other_space
    assert _top(reopened, 11)[0] not in frames


def test_every_row_deleted_leaves_an_empty_index(tmp_path, store):
    _, ids = _saved(tmp_path, store)
    with store.session() as s:
        store.delete_media(s, _media_of(store, ids))

    reopened = _open(store, tmp_path / "indexes")
    assert reopened.size("image") == 0
    scores, found = reopened.search("image", _unit(1)[None], 2)
    assert found.tolist() == [[-1, -1]]
    assert np.isneginf(scores).all()


def test_rows_committed_by_another_process_show_up_in_the_next_search(tmp_path, store):
    _, ids = _saved(tmp_path, store)
    reopened = _open(store, tmp_path / "indexes")
    assert reopened.size("image") == 3
    # Another process (a CLI index job beside the server) commits through its own connection.
    other = Store(store.url)
    try:
        new = _add(other, [20])
    finally:
        other.close()
    assert _top(reopened, 20) == (new[0], pytest.approx(1.0, abs=1e-3))
    assert reopened.size("image") == 4


def test_searches_count_the_vectors_in_sql_again_only_after_a_commit(tmp_path, store):
    _, ids = _saved(tmp_path, store)
    reopened = _open(store, tmp_path / "indexes")
    counted = []
    count = store.vector_stats
    store.vector_stats = lambda *args: counted.append(args) or count(*args)  # the real query, counted

    def search_a_second_later(seed: int) -> tuple[int, float]:
        reopened._last_refresh = {kind: (0.0, seen) for kind, (_, seen) in reopened._last_refresh.items()}
        return _top(reopened, seed)

    assert _top(reopened, 1)[0] == ids[0]  # the first search looks
    looked = len(counted)
    for _ in range(3):
        assert search_a_second_later(2)[0] == ids[1]
    assert len(counted) == looked  # nothing committed: no count over the vectors
    other = Store(store.url)
    try:
        new = _add(other, [21])
    finally:
        other.close()
    assert search_a_second_later(21)[0] == new[0]  # committed: looked, caught up
    assert len(counted) > looked


def test_adding_rows_the_catch_up_already_took_is_harmless(tmp_path, store):
    """The index job feeds the index after its commit; a catch-up in between may have taken the rows."""
    _saved(tmp_path, store)
    new = _add(store, [30, 31])
    reopened = _open(store, tmp_path / "indexes")
    assert reopened.size("image") == 5
    reopened.add("image", np.asarray(new, np.int64), np.stack([_unit(30), _unit(31)]))
    assert reopened.size("image") == 5
    assert _held(reopened) >= set(new)


def test_an_unreadable_index_file_is_rebuilt_from_sql(tmp_path, store):
    first, ids = _saved(tmp_path, store)
    new = _add(store, [40])
    first.path("image").write_bytes(b"not a faiss index")

    reopened = _open(store, tmp_path / "indexes")
    assert _held(reopened) == set(ids + new)
    assert VectorIndex.load(reopened.path("image"), use_gpu=False).ntotal == 4  # rewritten, readable


def test_a_missing_index_file_is_rebuilt_from_sql(tmp_path, store):
    first, ids = _saved(tmp_path, store)
    os.remove(first.path("image"))
    reopened = _open(store, tmp_path / "indexes")
    assert _held(reopened) == set(ids)
    assert first.path("image").is_file()


def test_searches_read_at_once_and_an_add_waits_for_them(tmp_path, store):
    """Searches share the index set (no global lock on reads); an index job's add goes alone."""
    import threading

    from mmsearch.storage.rwlock import LockTimeout

    index_set, ids = _saved(tmp_path, store)
    found = []
    with index_set.lock.read():  # a search in flight
        t = threading.Thread(target=lambda: found.append(_top(index_set, 2)), daemon=True)
        t.start()
        t.join(5)
        assert found and found[0][0] == ids[1]  # a second search ran beside it
        with pytest.raises(LockTimeout):
            with index_set.lock.write(timeout=0.05):  # what an add needs: it waits for the search
                pass
    new = _add(store, [9])
    index_set.add("image", np.asarray(new), _unit(9)[None])
    assert _top(index_set, 9)[0] == new[0]
