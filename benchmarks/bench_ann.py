"""mmsearch's automatic vector index beside hnswlib and usearch, on clustered vectors with
image-like and text-like queries: recall@10 against exact search, QPS, build time, memory.

Data: --n unit vectors of --dim in clusters of ~100 (a random centre plus gaussian noise of
norm ~1, renormalised), made chunk by chunk from seeds (never all float32 at once beyond
what an index itself holds). Queries, held out from the index: image-like, new vectors of the
same clusters; text-like, the same moved off the data along one fixed random direction (a
unit step: cosine ~0.7 to where they came from), as CLIP text queries sit apart from images.

mmsearch: what a library does with no parameter given: each factory candidate_factories
allows for the size (and --budget) built from the chunks and tuned by storage.index_tuning on
its own sample (not these queries) for recall@10 >= the target; the fastest one reaching it
kept (storage.index_selection.build_measured). Its build time includes every candidate's.
An index of codes (SQ8, PQ: what a budget too small for float32 gets) is searched as a library
serves it, its candidates re-scored from float16 vectors (here a memory-mapped file, in a
library SQL). Peers: hnswlib (M 16, ef_construction 200) and usearch (its defaults), each at
its default search setting and at the cheapest ef reaching 0.95 for each query kind.
--scale 10M: mmsearch alone within --budget (default 2GiB); latency is single queries' p50/p99.

    python benchmarks/bench_ann.py [--n 1000000 | --scale 10M] [--dim 512] [--queries 1000]
        [--budget 2GiB] [--peers hnswlib usearch] [--work DIR] [--write]

Needs the benchmark extra: pip install -e '.[bench]'.
"""

from __future__ import annotations

import argparse
import importlib
import os
import statistics
import tempfile
import time

import numpy as np
from report import device_description, publish

from mmsearch.config import parse_bytes
from mmsearch.storage.code_rerank import as_served, holds_codes, search_depth
from mmsearch.storage.index_choice import candidate_factories, estimate_memory_bytes
from mmsearch.storage.index_selection import build_measured
from mmsearch.storage.index_tuning import EF_LADDER, Tuning, exact_top_k_of, probe_queries, recall_at_k, tune
from mmsearch.storage.vector_index import VectorIndex

CHUNK = 100_000
PER_CLUSTER = 100
QUERY_GAP_SEED = 424242  # not the tuner's direction: the benchmark's text-like queries are its own
K = 10
SINGLE_QUERIES = 200
SCALE_BUDGET = "2GiB"


def parse_count(text: str) -> int:
    """10M, 500k or 1000000."""
    units = {"k": 1_000, "m": 1_000_000}
    text = text.strip().lower()
    return int(float(text[:-1]) * units[text[-1]]) if text[-1:] in units else int(text)


class Data:
    """Clustered unit vectors, reproducible chunk by chunk."""

    def __init__(self, n: int, dim: int, seed: int = 0):
        self.n, self.dim, self.seed = n, dim, seed
        rng = np.random.default_rng(seed)
        self.centres = rng.normal(size=(max(1, n // PER_CLUSTER), dim)).astype(np.float32)
        self.centres /= np.linalg.norm(self.centres, axis=1, keepdims=True)

    def rows(self, rng: np.random.Generator, m: int) -> np.ndarray:
        x = self.centres[rng.integers(0, len(self.centres), m)]
        x = x + rng.normal(size=(m, self.dim)).astype(np.float32) / np.sqrt(self.dim)
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    def chunks(self, every: int = 1):
        """(ids, vectors) per chunk; with every > 1, only the rows whose id is a multiple of it."""
        for start in range(0, self.n, CHUNK):
            m = min(CHUNK, self.n - start)
            ids = np.arange(start, start + m, dtype=np.int64)
            x = self.rows(np.random.default_rng((self.seed, 0, start)), m)
            keep = ids % every == 0
            yield ids[keep], x[keep]

    def queries(self, m: int) -> dict[str, np.ndarray]:
        held_out = self.rows(np.random.default_rng((self.seed, 1, 0)), m)
        gap = np.random.default_rng(QUERY_GAP_SEED).normal(size=self.dim).astype(np.float32)
        text = held_out + gap / np.linalg.norm(gap)
        return {"image-like": held_out, "text-like": text / np.linalg.norm(text, axis=1, keepdims=True)}


def rss_bytes(part: str = "RssAnon") -> int:
    """Resident memory of this process: anonymous (what indexes hold) by default; RssFile is the
    pages of mapped files (the float16 vectors read for re-scoring: page cache the kernel may
    drop, which a library reading SQL does not map at all)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(part + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {part} in /proc/self/status")


def measure(search_batch, search_one, queries: dict, truth: dict) -> dict:
    """recall@10 and QPS (all queries in one call) per query kind, single-query p50 ms."""
    out = {}
    for kind, q in queries.items():
        started = time.perf_counter()
        found = search_batch(q)
        qps = len(q) / (time.perf_counter() - started)
        times = []
        for row in q[:SINGLE_QUERIES]:
            t0 = time.perf_counter()
            search_one(row)
            times.append(1000 * (time.perf_counter() - t0))
        out[kind] = {
            "recall": recall_at_k(found, truth[kind]),
            "qps": qps,
            "p50_ms": statistics.median(times),
            "p99_ms": float(np.percentile(times, 99)),
        }
    return out


class Served:
    """mmsearch's index searched as a library serves it: an index of codes (SQ8, PQ: chosen
    under a budget) re-scored exactly from float16 vectors, which a library reads from SQL and
    this benchmark from a memory-mapped file (pages read, not held)."""

    def __init__(self, index: VectorIndex, stored: np.ndarray | None):
        self.index, self.stored = index, stored
        self.factory = index.factory

    @property
    def ntotal(self) -> int:
        return self.index.ntotal

    def set_search_params(self, **params) -> None:
        self.index.set_search_params(**params)

    def fetch(self, ids) -> dict[int, np.ndarray]:
        return {i: np.asarray(self.stored[i], np.float32) for i in ids}

    def search(self, queries, k: int):
        queries = np.atleast_2d(queries)
        return as_served(
            self.factory, self.fetch, queries, self.index.search(queries, search_depth(self.factory, k)), k
        )


def stored_float16(data: Data, path: str) -> np.ndarray:
    """The vectors as float16 in a file (written chunk by chunk), mapped read-only."""
    with open(path, "wb") as f:
        for _, x in data.chunks():
            f.write(x.astype(np.float16).tobytes())
    return np.memmap(path, np.float16, "r", shape=(data.n, data.dim))


def mmsearch_system(data: Data, budget: int | None, work: str):
    candidates = candidate_factories(data.n, data.dim, budget)
    stored = stored_float16(data, os.path.join(work, "vectors.f16")) if any(map(holds_codes, candidates)) else None
    started, before, before_file = time.perf_counter(), rss_bytes(), rss_bytes("RssFile")
    # 200 of the first chunk's rows (random draws from every cluster, as the whole is): a step
    # of n // 200 left the first chunk 2 rows at 10M, and tuning judged on 2 queries.
    sample = next(data.chunks(every=max(1, min(data.n, CHUNK) // 200)))[1][:200]
    own = probe_queries(sample)  # what a library tunes on: its own vectors, not the benchmark's queries
    own_truth = exact_top_k_of(own, data.chunks)  # one pass over the data for every query kind
    index = build_measured(
        data.dim,
        candidates,
        data.chunks,
        data.n,
        lambda candidate: tune(Served(candidate, stored), own, own_truth),
        use_gpu=False,
    )
    return Served(index, stored), {
        "factory": index.factory,
        "build_s": time.perf_counter() - started,
        "memory": rss_bytes() - before,
        "file_pages": rss_bytes("RssFile") - before_file,
        "estimate": estimate_memory_bytes(index.factory, data.n, data.dim),
        "tuning": Tuning.from_meta(index.meta_extra.get("tuning")),
        "compared": index.meta_extra.get("compared", []),
    }


def hnswlib_system(data: Data):
    import hnswlib

    started, before = time.perf_counter(), rss_bytes()
    index = hnswlib.Index(space="ip", dim=data.dim)
    index.init_index(max_elements=data.n, M=16, ef_construction=200)
    index.set_num_threads(os.cpu_count() or 1)
    for ids, x in data.chunks():
        index.add_items(x, ids)
    return index, {"build_s": time.perf_counter() - started, "memory": rss_bytes() - before}


def usearch_system(data: Data):
    from usearch.index import Index

    started, before = time.perf_counter(), rss_bytes()
    index = Index(ndim=data.dim, metric="ip", dtype="f32")
    for ids, x in data.chunks():
        index.add(ids, x, threads=os.cpu_count() or 1)
    return index, {"build_s": time.perf_counter() - started, "memory": rss_bytes() - before}


def sweep(name: str, default_ef: int, set_ef, search_batch, search_one, queries, truth) -> list[dict]:
    """Rows at the default ef, then at the cheapest ef reaching 0.95 for each query kind."""
    set_ef(default_ef)
    at_default = measure(search_batch, search_one, queries, truth)
    rows = [{"system": name, "setting": f"ef {default_ef} (default)", **at_default}]
    print(rows[-1], flush=True)
    for kind in queries:
        for ef in EF_LADDER:
            set_ef(ef)
            got = measure(search_batch, search_one, {kind: queries[kind]}, {kind: truth[kind]})[kind]
            if got["recall"] >= 0.95 or ef == EF_LADDER[-1]:
                rows.append({"system": name, "setting": f"ef {ef} (cheapest for {kind})", kind: got})
                print(rows[-1], flush=True)
                break
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument(
        "--scale",
        type=parse_count,
        default=None,
        help="e.g. 10M: that many vectors, mmsearch alone within --budget (default 2GiB), no peers",
    )
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--budget", default=None, help="index memory budget for mmsearch (e.g. 1GiB)")
    ap.add_argument("--peers", nargs="*", default=["hnswlib", "usearch"])
    ap.add_argument("--work", default=None, help="where to keep the float16 vectors an index of codes re-scores from")
    ap.add_argument("--write", action="store_true", help="append the table to BENCHMARKS.md")
    args = ap.parse_args()
    work = tempfile.TemporaryDirectory(prefix="bench_ann_", dir=args.work)  # removed at exit

    if args.scale:
        args.n, args.peers = args.scale, []
        args.budget = args.budget or SCALE_BUDGET
    budget = parse_bytes(args.budget) if args.budget else None
    for peer in args.peers:  # a missing one fails now, not after mmsearch's build
        importlib.import_module(peer)
    data = Data(args.n, args.dim)
    queries = data.queries(args.queries)
    truth = exact_top_k_of(queries, data.chunks)

    rows, builds = [], []
    auto, built = mmsearch_system(data, budget, work.name)
    tuning = built["tuning"]
    rows.append(
        {
            "system": "mmsearch auto",
            "setting": f"{built['factory']} {tuning.params or ''} (tuned, no parameter given)",
            **measure(lambda q: auto.search(q, K)[1], lambda r: auto.search(r[None], K), queries, truth),
        }
    )
    print(rows[-1], flush=True)  # a long run shows each system as it is measured
    measured = "; ".join(
        f"{c['factory']} {c['params']}: recall {c['recall']}, p50 {c['p50_ms']} ms" for c in built["compared"]
    )
    builds.append(
        f"mmsearch: {built['factory']} chosen, built and tuned in {built['build_s']:.0f} s "
        f"(its own sample: recall {tuning.recall}, {'reached' if tuning.reached else 'NOT reached'}"
        + f"; settings tried, with the worst query kind's recall: {tuning.tried}"
        + (f"; candidates measured: {measured}" if measured else "")
        + f"), RSS +{built['memory'] / 2**20:,.0f} MiB anonymous (estimate {built['estimate'] / 2**20:,.0f} MiB)"
        + (f", +{built['file_pages'] / 2**20:,.0f} MiB of float16 file mapped" if holds_codes(built["factory"]) else "")
    )
    auto = None  # its memory back before the peers build
    if "hnswlib" in args.peers:
        peer, built = hnswlib_system(data)
        rows += sweep(
            "hnswlib M16 efC200",
            10,
            peer.set_ef,
            lambda q: peer.knn_query(q, k=K)[0],
            lambda r: peer.knn_query(r[None], k=K, num_threads=1),
            queries,
            truth,
        )
        builds.append(f"hnswlib: built in {built['build_s']:.0f} s, RSS +{built['memory'] / 2**20:,.0f} MiB")
        del peer
    if "usearch" in args.peers:
        peer, built = usearch_system(data)

        def set_expansion(ef: int) -> None:
            peer.expansion_search = ef

        rows += sweep(
            "usearch (defaults)",
            peer.expansion_search,
            set_expansion,
            lambda q: peer.search(q, K, threads=os.cpu_count() or 1).keys,
            lambda r: peer.search(r, K),
            queries,
            truth,
        )
        builds.append(f"usearch: built in {built['build_s']:.0f} s, RSS +{built['memory'] / 2**20:,.0f} MiB")

    lines = [
        f"\n### ANN: mmsearch's automatic index{' beside ' + ' and '.join(args.peers) if args.peers else ''} "
        f"({args.n:,} x {args.dim} clustered vectors{', index memory budget ' + args.budget if args.budget else ''}, "
        f"{args.queries} queries per kind, {time.strftime('%Y-%m-%d')}, {device_description()})\n",
        "| system | setting | image-like recall@10 | QPS | p50 ms | p99 ms "
        "| text-like recall@10 | QPS | p50 ms | p99 ms |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in rows:
        cells = []
        for kind in ("image-like", "text-like"):
            got = row.get(kind)
            cells += (
                [f"{got['recall']:.3f}", f"{got['qps']:,.0f}", f"{got['p50_ms']:.2f}", f"{got['p99_ms']:.2f}"]
                if got
                else [""] * 4
            )
        lines.append(f"| {row['system']} | {row['setting']} | " + " | ".join(cells) + " |")
    lines += ["", *[f"- {b}" for b in builds]]
    publish(lines, args.write)


if __name__ == "__main__":
    main()
