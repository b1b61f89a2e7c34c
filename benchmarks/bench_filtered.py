"""Filtered search: p50 latency of single engine searches, unfiltered and with path filters
leaving 100%, 10%, 1% and 0.01% of a library, and the cost of each way to search a subset
(the measurement behind search/prefilter.py's EXACT_MAX_FROM_INDEX and EXACT_MAX_FROM_SQL).

Library: n media rows with one image vector each (seeded clustered random unit vectors, as
bench_search.py makes them), written straight into SQLite, in folders p10 (10%), p1 (1%),
p001 (0.01%) and rest, drawn at random; the index is the one the library builds for n (the
fastest of the types that fit, tuned for the target recall: IndexSet.rebuild). Both are kept
in --library and reused (building the candidates over 1M vectors takes ~15 minutes on 2
cores). Queries: database vectors plus gaussian noise.

    python benchmarks/bench_filtered.py [--n 1000000] [--library /tmp/mmsearch-bench-filtered] [--write]

Warm: the filter's subsets already resolved (a filter repeated while the library does not
change); cold: the resolution in SQL (prefilter.vector_ids_of_media + VectorIndex.subset) alone.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from datetime import date
from pathlib import Path

import numpy as np
from bench_search import perturbed_queries, unit_vectors
from report import device_description, publish

from mmsearch.search.engine import QueryVectors, SearchEngine
from mmsearch.search.prefilter import Prefilter, exact_top_k
from mmsearch.search.query import SearchRequest
from mmsearch.storage.index_set import IndexSet
from mmsearch.storage.store import Store

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the tests' library writer
from tests.helpers import write_folder_library  # noqa: E402

SPACE = "bench"
FILTERS = {"none": None, "100%": "/lib/", "10%": "/lib/p10/", "1%": "/lib/p1/", "0.01%": "/lib/p001/"}


def open_library(args) -> tuple[Store, IndexSet, np.ndarray]:
    """(store, index set, queries), built into args.library on first use."""
    directory = Path(args.library)
    directory.mkdir(parents=True, exist_ok=True)
    fresh = not (directory / "library.db").exists()
    store = Store(f"sqlite:///{directory / 'library.db'}")
    vectors = unit_vectors(args.n, args.dim, args.seed)
    if fresh:
        print(f"writing {args.n:,} vectors to SQL ...", flush=True)
        write_folder_library(store, vectors, SPACE, args.seed)
    indexes = IndexSet(store, directory / "indexes", SPACE, args.dim, use_gpu=False)
    path = indexes.path("image")
    if not path.exists():
        print(f"building the index of {args.n:,} vectors ...", flush=True)
        indexes.rebuild("image")
        assert indexes.wait_upkeep(3600)
        indexes.checkpoint(force=True)
    indexes = IndexSet(store, directory / "indexes", SPACE, args.dim, use_gpu=False)
    indexes.get("image")  # opened with its tuned setting
    assert not indexes.upkeep.busy(), "tuning or a rebuild would run beside the timings"
    return store, indexes, perturbed_queries(vectors, args.queries, 0.5, args.seed)


def p50_ms(fn, queries) -> float:
    times = []
    for q in queries:
        start = time.perf_counter()
        fn(q)
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def engine_rows(store: Store, indexes: IndexSet, queries: np.ndarray, k: int) -> list[dict]:
    engine = SearchEngine(store, encoder=None, indexes=indexes)
    for q in queries:  # first touches of the freshly loaded index and of SQL's pages, untimed
        engine.search_vectors(QueryVectors.single(q, "image"), SearchRequest(terms=[], k=k, kind="image"))
    rows = []
    for name, prefix in FILTERS.items():
        req = SearchRequest(terms=[], k=k, kind="image", path_prefix=prefix)
        engine.search_vectors(QueryVectors.single(queries[0], "image"), req)  # resolve (warm) once
        warm = p50_ms(lambda q: engine.search_vectors(QueryVectors.single(q, "image"), req), queries)
        cold = None
        if prefix:
            cold = p50_ms(lambda q: Prefilter(store, indexes).subsets(req, ("image",)), queries[:5])
        subset = engine.prefilter.subsets(req, ("image",))
        rows.append(
            {
                "filter": name,
                "vectors passing": len(subset["image"]) if subset else indexes.size("image"),
                "p50 ms (warm)": warm,
                "SQL resolution p50 ms (cold)": cold,
            }
        )
        print(rows[-1], flush=True)
    return rows


def crossover_rows(store: Store, indexes: IndexSet, queries: np.ndarray, k: int) -> list[dict]:
    """Per-query cost of each way to search a random subset of each size."""
    index, rng, rows = indexes.get("image"), np.random.default_rng(7), []
    for size in (s for s in (1_000, 2_000, 5_000, 10_000, 20_000, 50_000, 100_000) if s < index.ntotal):
        subset = index.subset(rng.choice(index.ntotal, size, replace=False) + 1)
        sample = queries[:10]
        from_index = None  # an IVF index's lists do not give vectors back by id
        if index.scores(sample[0], subset) is not None:
            from_index = p50_ms(lambda q: exact_top_k(index.scores(q, subset), subset.ids, 4 * k), sample)
        from_sql = None
        if size <= 20_000:
            from_sql = p50_ms(
                lambda q: exact_top_k(
                    np.stack(list(store.vectors_by_id(subset.ids.tolist()).values())) @ q, subset.ids, 4 * k
                ),
                sample[:3],
            )
        selector = p50_ms(lambda q: index.search(q[None], 4 * k, subset=subset), sample)
        rows.append(
            {
                "subset": size,
                "exact, index vectors ms": from_index,
                "exact, SQL vectors ms": from_sql,
                "ANN + selector ms": selector,
            }
        )
        print(rows[-1], flush=True)
    return rows


def table(rows: list[dict]) -> list[str]:
    def cell(v):
        return "-" if v is None else f"{v:,.2f}" if isinstance(v, float) else f"{v:,}" if isinstance(v, int) else str(v)

    columns = list(rows[0])
    return ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)] + [
        "| " + " | ".join(cell(r[c]) for c in columns) + " |" for r in rows
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--library", default="/tmp/mmsearch-bench-filtered")
    parser.add_argument("--write", action="store_true", help="append the tables to BENCHMARKS.md")
    args = parser.parse_args()
    store, indexes, queries = open_library(args)
    index = indexes.get("image")
    factory = f"{index.factory} {index.meta_extra.get('tuning', {}).get('params', '')}"
    engine = engine_rows(store, indexes, queries, args.k)
    crossover = crossover_rows(store, indexes, queries, args.k)
    lines = [
        f"\n## Filtered search ({date.today()}, {device_description()})\n",
        f"{args.n:,} x {args.dim} clustered random unit vectors in SQLite, {factory}; one image vector per "
        f"media row; path filters drawn at random. Engine search_vectors, k={args.k}, kind=image, "
        f"{args.queries} single queries each; warm: the filter's subset resolved before.\n",
        *table(engine),
        f"\nCost of one search (k={4 * args.k}, the engine's first round) within a random subset, by way:\n",
        *table(crossover),
    ]
    publish(lines, args.write)
    store.close()


if __name__ == "__main__":
    main()
