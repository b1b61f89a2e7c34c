"""keep_distinct keeps exactly the results the reference rule keeps: a result goes iff its
similarity to an earlier KEPT result reaches the threshold."""

from __future__ import annotations

import numpy as np
import pytest

from mmsearch.api.clip_retrieval import DEDUP_SIMILARITY, _deduplicate
from mmsearch.search.dedup import BLOCK, keep_distinct, keep_distinct_reference

T = DEDUP_SIMILARITY


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def rotated(a: np.ndarray, rng: np.random.Generator, cos: float) -> np.ndarray:
    """A unit vector at the given cosine from unit vector a."""
    u = rng.standard_normal(a.shape)
    u = unit(u - (u @ a) * a)
    return np.cos(np.arccos(cos)) * a + np.sin(np.arccos(cos)) * u


def planted(n: int, dim: int, seed: int) -> np.ndarray:
    """n random unit vectors (float32) with near copies, near misses, chains a ~ b ~ c (b close
    to a, c close to b but not to a) and the members of each planted group scattered over the
    ranking, across block boundaries too."""
    rng = np.random.default_rng(seed)
    v = unit(rng.standard_normal((n, dim)))
    free = list(rng.permutation(n))
    for _ in range(n // 6):  # half the results in groups of three
        a, b, c = sorted(free.pop() for _ in range(3))
        shape = rng.integers(4)
        if shape == 0:  # a chain a ~ b ~ c: b goes, c stays (b is no kept result)
            step = np.arccos(0.95)
            u = rng.standard_normal(dim)
            u = unit(u - (u @ v[a]) * v[a])
            v[b] = np.cos(step) * v[a] + np.sin(step) * u
            v[c] = np.cos(2 * step) * v[a] + np.sin(2 * step) * u
        elif shape == 1:  # near copies of a
            v[b], v[c] = rotated(v[a], rng, 0.99), rotated(v[a], rng, 0.97)
        elif shape == 2:  # at the threshold, within float32 rounding either side
            v[b], v[c] = rotated(v[a], rng, T + 1e-7), rotated(v[a], rng, T - 1e-7)
        else:  # near misses
            v[b], v[c] = rotated(v[a], rng, 0.93), rotated(v[b], rng, 0.9)
    return v.astype(np.float32)


@pytest.mark.parametrize(
    "n", [0, 1, 2, 3, 17, 300, BLOCK - 1, BLOCK, BLOCK + 1, 1100, pytest.param(2000, marks=pytest.mark.slow)]
)
@pytest.mark.parametrize("seed", [0, 1])
def test_keeps_what_the_reference_keeps(n, seed):
    v = planted(n, 64, seed)
    assert keep_distinct(v, T) == keep_distinct_reference(v, T)


def test_a_chain_keeps_its_ends_when_the_middle_goes():
    rng = np.random.default_rng(3)
    a = unit(rng.standard_normal(32))
    u = rng.standard_normal(32)
    u = unit(u - (u @ a) * a)
    step = np.arccos(0.95)
    chain = np.stack([np.cos(k * step) * a + np.sin(k * step) * u for k in range(5)]).astype(np.float32)
    # a ~ b ~ c ~ d ~ e, consecutive ones at 0.95 and every second one at 0.805:
    # b goes (a is kept), c stays (b is not kept), d goes, e stays.
    assert keep_distinct(chain, T) == keep_distinct_reference(chain, T) == [0, 2, 4]
    assert _deduplicate(chain) == [0, 2, 4]
    # The chain spread over two blocks, among unrelated results.
    filler = unit(rng.standard_normal((2 * BLOCK, 32))).astype(np.float32)
    spread = filler.copy()
    at = [5, BLOCK - 1, BLOCK, BLOCK + 7, 2 * BLOCK - 1]
    spread[at] = chain
    kept = keep_distinct(spread, T)
    assert kept == keep_distinct_reference(spread, T)
    assert [p for p in at if p in kept] == [at[0], at[2], at[4]]


def test_many_copies_of_one_result_keep_the_first():
    rng = np.random.default_rng(4)
    a = unit(rng.standard_normal(48))
    copies = np.stack([rotated(a, rng, 0.999) for _ in range(1500)]).astype(np.float32)
    assert keep_distinct(copies, T) == keep_distinct_reference(copies, T) == [0]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_other_inputs_agree_with_the_reference(dtype):
    rng = np.random.default_rng(5)
    v = planted(400, 24, 5).astype(dtype)
    assert keep_distinct(v, T) == keep_distinct_reference(v, T)
    scaled = (v * rng.uniform(0.5, 2.0, (len(v), 1))).astype(dtype)  # not unit: raw inner products
    assert keep_distinct(scaled, T) == keep_distinct_reference(scaled, T)
    with_nan = v.copy()
    with_nan[300, 3] = np.nan  # the reference drops everything after a kept NaN vector
    assert keep_distinct(with_nan, T) == keep_distinct_reference(with_nan, T)
