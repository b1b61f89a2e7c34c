"""Query latency over loopback HTTP, per endpoint, on an indexed library.

Each request is a text query from QUERIES, sent one at a time to a uvicorn server on
127.0.0.1 (the real app, the real library); after one warm-up round each endpoint is timed
over --rounds rounds of all queries:

/search         text -> hits (the work every endpoint below shares)
/knn-service    the clip-retrieval call: the same search, plus image_path, url and caption
                for each of num_images results (captions from sidecars or a synth manifest)
/metadata       clip-retrieval's metadata for 10 ids

    python benchmarks/bench_api.py --library LIB [--rounds 3] [--no-write]

Run from the repository root with mmsearch installed (make venv).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from datetime import date
from pathlib import Path

import httpx
from report import device_description, publish

from mmsearch.api.app import create_app
from mmsearch.api.background import BackgroundServer
from mmsearch.config import Settings
from mmsearch.library import Library
from mmsearch.storage.store import Media

QUERIES = [
    "a red circle",
    "a large blue square in the center",
    "yellow star, top right",
    "a purple hexagon",
    "two shapes on a white background",
    "a small green cross at the bottom",
]
K = 10


def time_requests(client: httpx.Client, send, rounds: int) -> list[float]:
    """Milliseconds per request, after one untimed round."""
    for q in QUERIES:
        send(client, q).raise_for_status()
    times = []
    for _ in range(rounds):
        for q in QUERIES:
            t0 = time.perf_counter()
            send(client, q).raise_for_status()
            times.append((time.perf_counter() - t0) * 1000)
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--library", type=Path, required=True)
    parser.add_argument("--model", default="mini")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-write", action="store_true", help="print the table only")
    args = parser.parse_args()

    with Library.open(settings=Settings(library_dir=args.library, model=args.model)) as lib:
        media = lib.store.count(Media)
        with BackgroundServer(create_app(lib)) as server, httpx.Client(base_url=server.url, timeout=300) as client:
            ids = [h["id"] for h in client.post("/search", json={"text": QUERIES[0], "k": K}).json()["results"]]
            endpoints = {
                "/search": lambda c, q: c.post("/search", json={"text": q, "k": K}),
                "/knn-service": lambda c, q: c.post(
                    "/knn-service", json={"text": q, "modality": "image", "num_images": K}
                ),
                "/metadata": lambda c, q: c.post("/metadata", json={"ids": ids}),
            }
            results = {name: time_requests(client, send, args.rounds) for name, send in endpoints.items()}

    base = statistics.median(results["/search"])
    lines = [
        f"### API latency over loopback: library `{args.library}` ({media} media), model `{args.model}`, "
        f"k={K}, {len(QUERIES)} queries x {args.rounds} rounds one at a time ({date.today()}, {device_description()})",
        "",
        "| endpoint | median ms | p90 ms | median / /search |",
        "| --- | --- | --- | --- |",
        *[
            f"| {name} | {statistics.median(t):.1f} | {statistics.quantiles(t, n=10)[-1]:.1f} "
            f"| {statistics.median(t) / base:.2f} |"
            for name, t in results.items()
        ],
        "",
    ]
    publish(lines, write=not args.no_write)
    return 0


if __name__ == "__main__":
    sys.exit(main())
