"""The similarity self-join behind duplicate groups: each vector's nearest others above a
threshold, exactly (small sets) or through k-means lists (large ones) at near-linear cost."""

from __future__ import annotations

import numpy as np
import pytest

from mmsearch.search import near_pairs as np_module
from mmsearch.search.near_pairs import near_pairs


def clustered(n: int, dim: int, copies: int, seed: int = 0) -> tuple[np.ndarray, set[tuple[int, int]]]:
    """Unit vectors around n / 50 centres, with `copies` planted near copies (cosine ~0.95)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n // 50, dim))
    x = centres[rng.integers(0, len(centres), n)] + rng.standard_normal((n, dim))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    src, dst = rng.permutation(n)[: 2 * copies].reshape(2, copies)
    noise = rng.standard_normal((copies, dim))
    x[dst] = x[src] + 0.3 * noise / np.linalg.norm(noise, axis=1, keepdims=True)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x.astype(np.float32), {(min(a, b), max(a, b)) for a, b in zip(src.tolist(), dst.tolist())}


def reference(x: np.ndarray, threshold: float, k: int) -> set[tuple[int, int]]:
    sims = x.astype(np.float64) @ x.T.astype(np.float64)
    np.fill_diagonal(sims, -np.inf)
    pairs = set()
    for i in range(len(x)):
        for j in np.argsort(-sims[i], kind="stable")[:k]:
            if sims[i, j] >= threshold:
                pairs.add((min(i, int(j)), max(i, int(j))))
    return pairs


def test_the_exact_path_finds_exactly_each_vectors_nearest_above_the_threshold():
    x, planted = clustered(600, 32, 20)
    first, second, sims = near_pairs(x, 0.5, k=3)
    got = set(zip(first.tolist(), second.tolist()))
    assert got == reference(x, 0.5, 3)
    assert planted <= got
    assert (first < second).all() and list(zip(first, second)) == sorted(zip(first, second))
    assert np.allclose(sims, np.einsum("ij,ij->i", x[first], x[second]), atol=1e-5)


def test_a_model_that_finds_everything_alike_pairs_each_vector_with_at_most_k_others():
    x = np.ones((300, 8), np.float32) / np.sqrt(8)  # every similarity is 1
    first, second, _ = near_pairs(x, 0.9, k=4)
    assert 300 * 4 / 2 <= len(first) <= 300 * 4


@pytest.mark.parametrize("n", [9000])
def test_the_clustered_path_finds_the_planted_copies_and_only_true_pairs(n, monkeypatch):
    assert n >= np_module.EXACT_BELOW  # the k-means lists, not every pair
    monkeypatch.setattr(np_module, "LIST_SIZE", 256)  # 35 lists: the 8 probed leave most unseen
    x, planted = clustered(n, 64, 150, seed=3)
    first, second, sims = near_pairs(x, 0.9)
    got = set(zip(first.tolist(), second.tolist()))
    # A pair can fall between lists (these clusters are broad: each vector is as far from its
    # centre as the centres are apart); planted copies are still found at least 98 times in 100.
    assert len(planted & got) >= 0.98 * len(planted)
    assert (sims >= 0.9).all()
    assert np.allclose(sims, np.einsum("ij,ij->i", x[first], x[second]), atol=1e-5)


def test_nothing_and_one_vector_have_no_pairs():
    for n in (0, 1):
        first, second, sims = near_pairs(np.zeros((n, 4), np.float32), 0.5)
        assert len(first) == len(second) == len(sims) == 0
