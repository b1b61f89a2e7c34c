"""Search throughput and latency under concurrent clients, alone and beside long work.

`mmsearch serve [--workers N]` runs on 127.0.0.1 in processes of its own; this process runs 1, 4, 16 and
64 client threads, each sending POST /search {"text": ..., "k": 10} back to back for
--seconds, and reports requests/s, p50, p99 and max latency, and errors. Then the same
while a POST /generate {"n": 8, "sampler": "ddpm"} draws, and while an index job runs (a
folder of fresh synthetic images).

    python benchmarks/bench_load.py [--library LIB] [--workers 2] [--seconds 10] [--clients 1,4,16,64] [--alone]
                                    [--no-write]

Without --library, a 400-image synthetic library is built in a temporary folder. Run from
the repository root with mmsearch installed (make venv). Loopback only.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import date
from pathlib import Path

import httpx
from report import device_description, publish

from mmsearch.config import Settings
from mmsearch.datasets import synth
from mmsearch.library import Library

QUERIES = ["a red circle", "a large blue square", "yellow star, top right", "a purple hexagon", "a green cross"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(library: Path, port: int, env: dict[str, str], workers: int = 1) -> subprocess.Popen:
    """`mmsearch serve` of the library in a process of its own, with these MMSEARCH_* settings
    (the library's own model: MMSEARCH_MODEL is not passed on); back once /health answers."""
    env = {k: v for k, v in os.environ.items() if k != "MMSEARCH_MODEL"} | env
    cmd = [sys.executable, "-m", "mmsearch", "serve", "--library", str(library), "--port", str(port)]
    cmd += ["--workers", str(workers)]
    server = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                return server
        except httpx.HTTPError:
            time.sleep(0.5)
    server.kill()
    raise RuntimeError("the server did not answer /health within 120 s")


def load(url: str, clients: int, seconds: float) -> dict:
    """Each client sends searches back to back until the time is up."""
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    stop_at = time.monotonic() + seconds

    def client(n: int) -> None:
        with httpx.Client(base_url=url, timeout=300) as c:
            i = n
            while time.monotonic() < stop_at:
                t0 = time.perf_counter()
                try:
                    ok = c.post("/search", json={"text": QUERIES[i % len(QUERIES)], "k": 10}).status_code == 200
                except httpx.HTTPError:
                    ok = False
                took = (time.perf_counter() - t0) * 1000
                with lock:
                    latencies.append(took)
                    errors[0] += not ok
                i += 1

    started = time.monotonic()
    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - started
    cuts = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else latencies * 99
    return {
        "clients": clients,
        "rps": len(latencies) / elapsed,
        "p50": statistics.median(latencies),
        "p99": cuts[98],
        "max": max(latencies),
        "errors": errors[0],
    }


def beside(url: str, start_work, clients: int, seconds: float) -> tuple[dict, str]:
    """The load while long work runs; the work's outcome."""
    outcome: list[str] = []
    work = threading.Thread(target=lambda: outcome.append(start_work()))
    work.start()
    time.sleep(1.0)  # let it get going
    result = load(url, clients, seconds)
    work.join()
    return result, outcome[0] if outcome else "?"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--library", type=Path)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--clients", default="1,4,16,64")
    parser.add_argument("--workers", type=int, default=1, help="server processes (mmsearch serve --workers)")
    parser.add_argument("--alone", action="store_true", help="only the rows without long work beside them")
    parser.add_argument("--no-write", action="store_true", help="print the table only")
    args = parser.parse_args()
    levels = [int(c) for c in args.clients.split(",")]

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        library = args.library
        if library is None:
            library = tmp / "lib"
            synth.generate(tmp / "media", 400, 0, seed=3, split="train")
            with Library.open(settings=Settings(library_dir=library, model="mini", decode_workers=0)) as lib:
                lib.index([tmp / "media"])
        fresh = tmp / "fresh"
        synth.generate(fresh, 300, 0, seed=4, split="train")
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        env = {"MMSEARCH_GENERATOR": "mini", "MMSEARCH_INDEX_ROOTS": str(fresh)}
        server = start_server(library, port, env, args.workers)
        try:
            rows = [("alone", load(url, n, args.seconds), "") for n in levels]
            gen_clients = 16 if 16 in levels else levels[-1]

            def generate() -> str:
                t0 = time.perf_counter()
                r = httpx.post(
                    url + "/generate", json={"prompt": "a green star", "n": 8, "sampler": "ddpm"}, timeout=900
                )
                return f"generate n=8 ddpm: {r.status_code} in {time.perf_counter() - t0:.0f} s"

            def index_job() -> str:
                t0 = time.perf_counter()
                job = httpx.post(url + "/jobs", json={"roots": [str(fresh)]}, timeout=60).json()
                while httpx.get(f"{url}/jobs/{job['id']}", timeout=60).json()["state"] in ("pending", "running"):
                    time.sleep(0.5)
                return f"index job of 300 images: {time.perf_counter() - t0:.0f} s"

            works = (("beside a generation", generate), ("beside an index job", index_job))
            for name, work in () if args.alone else works:
                result, outcome = beside(url, work, gen_clients, args.seconds)
                rows.append((name, result, outcome))
        finally:
            server.terminate()
            server.wait(30)

    one = rows[0][1]["rps"]
    lines = [
        f"### Search under load: POST /search k=10 over loopback, `mmsearch serve --workers {args.workers}` "
        f"beside the clients ({date.today()}, {device_description()}, {os.cpu_count()} cores, "
        f"{args.seconds:g} s per row)",
        "",
        "| while | clients | req/s | x 1 client | p50 ms | p99 ms | max ms | errors | the work |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        *[
            f"| {name} | {r['clients']} | {r['rps']:.1f} | {r['rps'] / one:.2f} | {r['p50']:.0f} | {r['p99']:.0f} "
            f"| {r['max']:.0f} | {r['errors']} | {outcome} |"
            for name, r, outcome in rows
        ],
        "",
    ]
    publish(lines, write=not args.no_write)
    return 0


if __name__ == "__main__":
    sys.exit(main())
