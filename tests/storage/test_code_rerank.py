"""storage.code_rerank: a compressed index's candidates re-scored from the stored vectors."""

import numpy as np

from mmsearch.storage.code_rerank import candidates_for, holds_codes, rerank_exact
from mmsearch.storage.store import Store
from tests.helpers import store_url

from .test_index_set import SPACE, _add, _unit


def test_only_indexes_of_codes_are_rescored_and_deep_reads_are_not_widened():
    assert holds_codes("IVF1024,SQ8") and holds_codes("IVF256,PQ64") and holds_codes("IVF256,PQ32x8")
    assert not holds_codes("HNSW32,Flat") and not holds_codes("Flat") and not holds_codes("IVF1024,Flat")
    assert candidates_for(10) == 100 and candidates_for(5000) == 5000


def test_candidates_are_ordered_by_exact_score_and_deleted_rows_drop_out(tmp_path):
    store = Store(store_url(tmp_path))
    ids = _add(store, [1, 2, 3, 4])
    stored = {i: v for i, v in zip(ids, np.concatenate([v for _, v in store.iter_vectors(SPACE, ("image",))]))}
    q = _unit(3)
    candidates = np.array([[ids[0], ids[2], 999_999, -1, ids[1]], [-1, -1, -1, -1, -1]])
    scores, best = rerank_exact(store.vectors_by_id, np.stack([q, q]), candidates, 2)
    expected = sorted((ids[0], ids[2], ids[1]), key=lambda i: -(stored[i] @ q))[:2]
    assert best.tolist() == [expected, [-1, -1]] and best[0, 0] == ids[2]  # the query's own vector first
    assert np.allclose(scores[0], [stored[i] @ q for i in expected]) and np.isneginf(scores[1]).all()
    store.close()
