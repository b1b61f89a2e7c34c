"""Benchmark VectorIndex types: build time, QPS (batched and one query at a time), recall@10.

Database: seeded random unit vectors (dim 512 by default), generated in chunks. Queries: a
database vector plus gaussian noise, renormalised, so each query has a true neighbourhood.
Recall@10 is measured against exact inner-product search (Flat). Memory is the estimate
mmsearch.storage.index_choice uses to choose a factory.

    python benchmarks/bench_search.py                      # sizes 100000 1000000, all types
    python benchmarks/bench_search.py --sizes 20000 --types flat hnsw --no-write

The table is printed and appended, with the date and machine, to BENCHMARKS.md. Run it from
the repository root with mmsearch installed (make venv), or with PYTHONPATH=. set.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np

from mmsearch.storage.index_choice import estimate_memory_bytes, ivf_nlist
from mmsearch.storage.vector_index import VectorIndex

REPO_ROOT = Path(__file__).resolve().parents[1]
CHUNK = 100_000


@dataclass(frozen=True)
class IndexType:
    """One index to build, searched once per setting in `settings`."""

    name: str
    factory: str
    settings: tuple[dict, ...] = ({},)


def index_types(n_vectors: int, dim: int, max_nlist: int = 1 << 30) -> dict[str, IndexType]:
    nlist = min(ivf_nlist(n_vectors), max_nlist)
    nprobes = tuple({"nprobe": p} for p in (16, 64))
    return {
        "flat": IndexType("Flat", "Flat"),
        "hnsw": IndexType("HNSW32", "HNSW32,Flat", tuple({"ef_search": ef} for ef in (64, 128))),
        "ivf-flat": IndexType("IVF", f"IVF{nlist},Flat", nprobes),
        "ivf-sq8": IndexType("IVF+SQ8", f"IVF{nlist},SQ8", nprobes),
        "ivf-pq": IndexType("IVF+PQ", f"IVF{nlist},PQ{dim // 8}", nprobes),
    }


def unit_vectors(n: int, dim: int, seed: int, per_cluster: int = 100, spread: float = 1.0) -> np.ndarray:
    """n seeded random unit vectors, made CHUNK rows at a time to bound temporaries.

    Clustered like real embeddings (per_cluster > 0): each vector is one of n / per_cluster
    random centres plus gaussian noise of norm ~spread, renormalised. Uniform random vectors
    in 512-d are all nearly orthogonal: their top-10 beyond the first is a set of near-ties
    that no ANN index (nor any use) cares about, which makes recall@10 meaningless."""
    out = np.empty((n, dim), dtype=np.float32)
    centres = None
    if per_cluster > 0:
        centres = np.random.default_rng([seed, 2]).standard_normal((max(1, n // per_cluster), dim), dtype=np.float32)
        faiss.normalize_L2(centres)
    for chunk_no, start in enumerate(range(0, n, CHUNK)):
        rng = np.random.default_rng([seed, chunk_no])
        stop = min(start + CHUNK, n)
        out[start:stop] = rng.standard_normal((stop - start, dim), dtype=np.float32)
        if centres is not None:
            out[start:stop] *= spread / np.sqrt(dim)
            out[start:stop] += centres[rng.integers(len(centres), size=stop - start)]
    faiss.normalize_L2(out)
    return out


def perturbed_queries(database: np.ndarray, n: int, noise: float, seed: int) -> np.ndarray:
    """Database rows plus gaussian noise of norm ~`noise`, renormalised."""
    rng = np.random.default_rng([seed, 1])
    rows = rng.choice(len(database), size=n, replace=False)
    jitter = rng.standard_normal((n, database.shape[1]), dtype=np.float32) * float(noise / np.sqrt(database.shape[1]))
    queries = database[rows] + jitter
    faiss.normalize_L2(queries)
    return queries


def queries_per_second(index: VectorIndex, queries: np.ndarray, k: int, single_queries: int) -> tuple[float, float]:
    """(batched QPS over all queries, single-query QPS over the first `single_queries`)."""
    start = time.perf_counter()
    index.search(queries, k)
    batched = len(queries) / (time.perf_counter() - start)
    singles = queries[:single_queries]
    start = time.perf_counter()
    for query in singles:
        index.search(query[None, :], k)
    single = len(singles) / (time.perf_counter() - start)
    return batched, single


def recall_at_k(found: np.ndarray, truth: np.ndarray) -> float:
    hits = sum(len(np.intersect1d(f[f >= 0], t)) for f, t in zip(found, truth))
    return hits / truth.size


def bench_size(n: int, args, wanted: list[str]) -> list[dict]:
    print(f"\nN = {n:,}: generating {n:,} x {args.dim} vectors ...", flush=True)
    database = unit_vectors(n, args.dim, args.seed, args.per_cluster, args.spread)
    ids = np.arange(1, n + 1, dtype=np.int64)
    queries = perturbed_queries(database, args.queries, args.noise, args.seed)
    exact = VectorIndex.build(ids, database, factory="Flat", use_gpu=args.use_gpu)
    _, truth = exact.search(queries, args.k)

    rows = []
    for key in wanted:
        kind = index_types(n, args.dim, args.max_nlist)[key]
        start = time.perf_counter()
        index = VectorIndex.build(ids, database, factory=kind.factory, use_gpu=args.use_gpu)
        build_s = time.perf_counter() - start
        for setting in kind.settings:
            if setting:
                index.set_search_params(**setting)
            batched, single = queries_per_second(index, queries, args.k, args.single_queries)
            _, found = index.search(queries, args.k)
            rows.append(
                {
                    "N": n,
                    "index": kind.name,
                    "factory": kind.factory,
                    "params": " ".join(f"{name}={value}" for name, value in setting.items()) or "-",
                    "build s": build_s,
                    "QPS batch": batched,
                    "QPS single": single,
                    f"recall@{args.k}": recall_at_k(found, truth),
                    "mem MB (est.)": estimate_memory_bytes(kind.factory, n, args.dim) / 2**20,
                    "GPU": index.uses_gpu,
                }
            )
            if len(rows) == 1:
                print(" | ".join(rows[0]))
            print(format_row(rows[-1]), flush=True)
        del index
    return rows


def bench_api(n_images: int, n_requests: int, k: int) -> list[dict]:
    """p50/p99 of POST /search over loopback to a `mmsearch serve` process (as users run it)
    on a real library, next to its parts: encoding the query text, and the raw FAISS search.
    (An in-process server thread shares the client's GIL and adds ~40 ms per request.)"""
    import socket
    import subprocess
    import sys
    import tempfile

    import httpx

    from mmsearch.config import Settings
    from mmsearch.datasets import synth
    from mmsearch.library import Library

    queries = [
        f"a {size} {color} {shape}"
        for size in ("small", "large")
        for color in ("red", "blue", "green", "yellow")
        for shape in ("circle", "square", "star")
    ]
    with tempfile.TemporaryDirectory() as tmp:
        lib_dir = Path(tmp) / "lib"
        synth.generate(Path(tmp) / "media", n_images, 0, seed=5, workers=2)
        with Library.open(settings=Settings(library_dir=lib_dir, model="mini", decode_workers=0)) as lib:
            lib.index([Path(tmp) / "media"])
            encode_ms, faiss_ms, api_ms = [], [], []
            for i in range(n_requests):
                t0 = time.perf_counter()
                q = lib.encoder.embed_texts([queries[i % len(queries)]])
                encode_ms.append((time.perf_counter() - t0) * 1000)
                t0 = time.perf_counter()
                lib.indexes.search("image", q, k)
                faiss_ms.append((time.perf_counter() - t0) * 1000)
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        server = subprocess.Popen(
            [sys.executable, "-m", "mmsearch", "serve", "--library", str(lib_dir), "--port", str(port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
                deadline = time.monotonic() + 120
                while True:
                    try:
                        client.post("/search", json={"text": "warm up", "k": k}).raise_for_status()
                        break
                    except httpx.TransportError:
                        if time.monotonic() > deadline or server.poll() is not None:
                            raise RuntimeError("mmsearch serve did not start") from None
                        time.sleep(0.2)
                for i in range(n_requests):
                    t0 = time.perf_counter()
                    client.post("/search", json={"text": queries[i % len(queries)], "k": k}).raise_for_status()
                    api_ms.append((time.perf_counter() - t0) * 1000)
        finally:
            server.terminate()
            server.wait(30)

    def pct(xs, p: float) -> float:
        return float(np.percentile(xs, p))

    return [
        {"measure": name, "vectors": n_images, "p50 ms": pct(xs, 50), "p99 ms": pct(xs, 99)}
        for name, xs in (
            ("text encode (mini)", encode_ms),
            ("raw FAISS search", faiss_ms),
            ("POST /search end to end", api_ms),
        )
    ]


def format_cell(value) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.3f}" if value < 10 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def format_row(row: dict) -> str:
    return " | ".join(format_cell(row[column]) for column in row)


def markdown_table(rows: list[dict]) -> str:
    columns = list(rows[0])
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + format_row(row) + " |" for row in rows]
    return "\n".join(lines)


def machine_description() -> str:
    gpus = faiss.get_num_gpus() if hasattr(faiss, "StandardGpuResources") else 0
    return (
        f"{platform.platform()}, {platform.machine()}, {os.cpu_count()} CPUs, "
        f"faiss {faiss.__version__}, {f'{gpus} GPU(s)' if gpus else 'no GPU'}"
    )


def header(args) -> str:
    return (
        f"Database: seeded random unit vectors, dim {args.dim}"
        + (
            f", in clusters of ~{args.per_cluster} (centre + noise of norm ~{args.spread}, renormalised)"
            if args.per_cluster
            else ", uniform"
        )
        + f". Queries: {args.queries} database "
        f"vectors plus gaussian noise (norm ~{args.noise}), renormalised. Recall@{args.k} against "
        f"exact inner-product search (Flat). QPS at k={args.k}: batched over all queries, "
        f"and one query per call over the first {args.single_queries}. "
        f"IVF lists capped at {args.max_nlist}; k-means trains on 64 points per list."
    )


def append_markdown(path: Path, rows: list[dict], args, api_rows: list[dict]) -> None:
    when = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    section = f"\n## bench_search, {when}\n\nMachine: {machine_description()}\n"
    if rows:
        section += f"\n{header(args)}\n\n{markdown_table(rows)}\n"
    if api_rows:
        section += (
            f"\nAPI latency: {args.api_requests} sequential POST /search text queries over loopback "
            f"to a `mmsearch serve` process, k={args.k}, on a synthetic library indexed with mini; "
            f"its parts measured alone beside it.\n\n{markdown_table(api_rows)}\n"
        )
    if not path.exists():
        section = "# Benchmarks\n\nResults appended by the scripts in benchmarks/.\n" + section
    with open(path, "a", encoding="utf-8") as f:
        f.write(section)
    print(f"\nappended to {path}")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sizes", type=int, nargs="*", default=[100_000, 1_000_000], help="database sizes (none: only the API part)"
    )
    parser.add_argument(
        "--types", nargs="+", choices=list(index_types(100_000, 512)), default=list(index_types(100_000, 512))
    )
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument(
        "--single-queries", type=int, default=100, help="queries timed one per call (exact search on 1M is slow)"
    )
    parser.add_argument(
        "--max-nlist", type=int, default=1024, help="cap on IVF lists (k-means on 2 CPU cores is the bottleneck)"
    )
    parser.add_argument("--per-cluster", type=int, default=100, help="vectors per cluster (0: uniform on the sphere)")
    parser.add_argument("--spread", type=float, default=1.0, help="norm of the noise around each cluster centre")
    parser.add_argument(
        "--noise", type=float, default=0.5, help="norm of the gaussian noise added to each query's source vector"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--cpu", dest="use_gpu", action="store_const", const=False, default="auto", help="never use a GPU"
    )
    parser.add_argument("--output", type=Path, default=REPO_ROOT / "BENCHMARKS.md")
    parser.add_argument("--no-write", action="store_true", help="print only; do not append to BENCHMARKS.md")
    parser.add_argument(
        "--api-images", type=int, default=500, help="library size for the API latency part (0 skips it)"
    )
    parser.add_argument("--api-requests", type=int, default=200)
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    print(header(args))
    print(f"Machine: {machine_description()}")
    rows = []
    for n in args.sizes:
        rows += bench_size(n, args, args.types)
    if rows:
        print("\n" + markdown_table(rows))
    api_rows = bench_api(args.api_images, args.api_requests, args.k) if args.api_images else []
    if api_rows:
        print("\n" + markdown_table(api_rows))
    if not args.no_write:
        append_markdown(args.output, rows, args, api_rows)


if __name__ == "__main__":
    main()
