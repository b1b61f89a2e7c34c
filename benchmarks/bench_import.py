"""`mmsearch import clip-retrieval` at scale, measured: memory, speed and served recall.

A clip-retrieval folder of random clustered unit vectors (float16, as LAION ships them) is
written file by file (img_emb/img_emb_N.npy beside metadata/metadata_N.parquet, each row's
image_path a URL naming its file and row), imported by the CLI in a process of its own (its
peak RSS read from the kernel once it exits), then served by `mmsearch serve`. Queries are
fresh vectors near the cluster centres, sent as `POST /search {"vector": ...}`; recall@10 is
measured against exact search (numpy brute force over the folder's vectors, as imported).

    python benchmarks/bench_import.py [--vectors 500000] [--files 5] [--dim 512] [--queries 200]
        [--work DIR] [--write]

Run from the repository root with mmsearch installed (make venv). Loopback only.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import httpx
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from bench_load import free_port, start_server
from report import device_description, publish

K = 10
NOISE = 0.05  # per-dimension noise around a centre: at 512-d a neighbour's cosine is about 0.45


def write_folder(folder: Path, vectors: int, files: int, dim: int, clusters: int, seed: int = 0) -> np.ndarray:
    """The clip-retrieval folder; returns the cluster centres (the queries are drawn near them)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, dim)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    (folder / "img_emb").mkdir(parents=True, exist_ok=True)
    (folder / "metadata").mkdir(parents=True, exist_ok=True)
    per_file = -(-vectors // files)
    for n in range(files):
        rows = min(per_file, vectors - n * per_file)
        x = centres[rng.integers(0, clusters, rows)] + NOISE * rng.standard_normal((rows, dim)).astype(np.float32)
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        np.save(folder / "img_emb" / f"img_emb_{n}.npy", x.astype(np.float16))
        paths = [f"https://example.com/{n}/{i}.jpg" for i in range(rows)]
        pq.write_table(
            pa.table({"image_path": paths, "caption": [f"item {n}/{i}" for i in range(rows)]}),
            folder / "metadata" / f"metadata_{n}.parquet",
        )
    return centres


def exact_top(folder: Path, queries: np.ndarray, k: int = K) -> list[set[str]]:
    """Each query's k nearest rows, named by their paths, by brute force file by file."""
    best_scores = np.full((len(queries), k), -np.inf, np.float32)
    best_names = np.empty((len(queries), k), dtype=object)
    for emb in sorted((folder / "img_emb").glob("img_emb_*.npy"), key=lambda p: int(p.stem.split("_")[-1])):
        n = int(emb.stem.split("_")[-1])
        x = np.load(emb, mmap_mode="r")
        for start in range(0, len(x), 65_536):
            block = np.asarray(x[start : start + 65_536], np.float32)
            block /= np.linalg.norm(block, axis=1, keepdims=True)
            scores = queries @ block.T
            top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
            names = np.array([f"https://example.com/{n}/{start + i}.jpg" for i in range(len(block))], dtype=object)
            all_scores = np.concatenate([best_scores, np.take_along_axis(scores, top, 1)], axis=1)
            all_names = np.concatenate([best_names, names[top]], axis=1)
            keep = np.argsort(-all_scores, axis=1)[:, :k]
            best_scores, best_names = np.take_along_axis(all_scores, keep, 1), np.take_along_axis(all_names, keep, 1)
    return [set(row) for row in best_names]


def run_import(folder: Path, library: Path) -> tuple[float, int, str]:
    """(seconds, peak RSS in bytes, the CLI's last lines) of the import, in a process of its own."""
    env = {k: v for k, v in os.environ.items() if k != "MMSEARCH_MODEL"}
    cmd = [sys.executable, "-m", "mmsearch", "import", "clip-retrieval", str(folder), "--library", str(library)]
    t0 = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if done.returncode != 0:
        raise RuntimeError(f"the import failed ({done.returncode}): {done.stderr[-2000:]}")
    # The largest resident set of any child waited for: the import (nothing else ran before it).
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    return seconds, peak, done.stderr.strip().splitlines()[-2] if done.stderr.strip() else ""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--vectors", type=int, default=500_000)
    ap.add_argument("--files", type=int, default=5)
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--clusters", type=int, default=1000)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--work", type=Path, default=None, help="folder for the data and library (default: a temp one)")
    ap.add_argument("--write", action="store_true", help="append the table to BENCHMARKS.md")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp)
        folder, library = work / "clip-retrieval", work / "lib"
        t0 = time.perf_counter()
        centres = write_folder(folder, args.vectors, args.files, args.dim, args.clusters)
        written_s = time.perf_counter() - t0
        seconds, peak, last = run_import(folder, library)

        rng = np.random.default_rng(1)
        queries = centres[rng.integers(0, len(centres), args.queries)]
        queries = queries + NOISE * rng.standard_normal(queries.shape).astype(np.float32)
        queries /= np.linalg.norm(queries, axis=1, keepdims=True)
        truth = exact_top(folder, queries)

        port = free_port()
        server = start_server(library, port, {"MMSEARCH_GENERATOR": "none"})
        recalls, latencies = [], []
        try:
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120) as client:
                factory = client.get("/models").json()
                for q, exact in zip(queries, truth):
                    t = time.perf_counter()
                    r = client.post("/search", json={"vector": q.tolist(), "k": K, "generate": "never"})
                    latencies.append((time.perf_counter() - t) * 1000)
                    r.raise_for_status()
                    recalls.append(len({h["path"] for h in r.json()["results"]} & exact) / K)
        finally:
            server.terminate()
            server.wait(30)

    index_bytes = factory[0]["index_bytes"] if isinstance(factory, list) and factory else 0
    lines = [
        f"\n## Import of a clip-retrieval folder ({date.today()}, {device_description()})\n",
        f"{args.vectors} random clustered unit vectors ({args.dim}-d float16, {args.clusters} clusters, "
        f"{args.files} files), imported by `mmsearch import clip-retrieval` without a model (an external "
        f"space), served by `mmsearch serve`; {args.queries} vector queries near the centres through "
        f"`POST /search`, recall@{K} against numpy brute force. Folder written in {written_s:.0f} s.\n",
        "| vectors | import s | rows/s | peak RSS GiB | index MB | recall@10 | search p50 ms | search p99 ms |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
        f"| {args.vectors} | {seconds:.0f} | {args.vectors / seconds:,.0f} | {peak / 2**30:.2f} | "
        f"{index_bytes / 1e6:.0f} | {statistics.mean(recalls):.3f} | {statistics.median(latencies):.1f} | "
        f"{statistics.quantiles(latencies, n=100)[98]:.1f} |",
        f"\nThe import's last word: {last}",
    ]
    publish(lines, write=args.write)
    return 0


if __name__ == "__main__":
    sys.exit(main())
