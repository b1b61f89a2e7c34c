"""Benchmark /knn-service's deduplicate: the blocked keep_distinct against the reference rule
(each result against every kept one, in Python), on the same ranked vectors.

Vectors: seeded random unit vectors (dim 512 by default) with near copies planted: a tenth of
the results are copies (cosine 0.97 to 0.995) of an earlier result. Each time is the best
of --repeat runs; the reference runs once (it is the slow one). Both must keep the same positions, or the script fails.

    python benchmarks/bench_dedup.py                     # 2000 and 10000 vectors
    python benchmarks/bench_dedup.py --sizes 1914 --dim 768

Run it from the repository root with mmsearch installed (make venv), or with PYTHONPATH=. set.

Measured on the 2-core development machine (shared with other jobs, load ~3.5; numpy's
OpenBLAS; dim 512; 2026-12-03):

     vectors   kept  reference ms  keep_distinct ms  speed-up
        2000   1813         2,952                87       34x
       10000   9052        77,447             1,030       75x

keep_distinct's time is the matrix products (n x kept x dim multiply-adds, ~2.3e10 at
10,000): its Python work is linear, so it scales with the machine's BLAS.
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np

from mmsearch.search.dedup import keep_distinct, keep_distinct_reference

THRESHOLD = 0.94  # mmsearch.api.clip_retrieval.DEDUP_SIMILARITY (the API is not imported here)


def ranked_vectors(n: int, dim: int, seed: int, copies: float = 0.1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    v = rng.standard_normal((n, dim)).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    for i in rng.choice(np.arange(1, n), size=int(copies * n), replace=False):
        a = v[rng.integers(i)]
        u = rng.standard_normal(dim).astype(np.float32)
        u -= (u @ a) * a
        u /= np.linalg.norm(u)
        cos = rng.uniform(0.97, 0.995)
        v[i] = cos * a + np.sqrt(1 - cos**2) * u
    return v


def best_ms(fn, repeat: int) -> tuple[float, list[int]]:
    times, out = [], []
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return 1000 * min(times), out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[2000, 10_000])
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(f"dedup at similarity {THRESHOLD}, dim {args.dim}, {platform.processor() or platform.machine()}")
    print(f"{'vectors':>8} {'kept':>6} {'reference ms':>13} {'keep_distinct ms':>17} {'speed-up':>9}")
    for n in args.sizes:
        v = ranked_vectors(n, args.dim, args.seed)
        new_ms, kept = best_ms(lambda: keep_distinct(v, THRESHOLD), args.repeat)
        old_ms, reference = best_ms(lambda: keep_distinct_reference(v, THRESHOLD), 1)
        if kept != reference:
            raise SystemExit(f"{n} vectors: keep_distinct kept {len(kept)}, the reference {len(reference)}")
        print(f"{n:>8} {len(kept):>6} {old_ms:>13,.0f} {new_ms:>17,.0f} {old_ms / new_ms:>8,.0f}x")


if __name__ == "__main__":
    main()
