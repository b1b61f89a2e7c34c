"""Changing a served library's model without downtime, measured.

A synthetic library indexed with `mini` is served by `mmsearch serve` on 127.0.0.1. A client
searches every 0.2 s: first for a while alone, then for the whole of `POST /models` embedding
the library with a second model (mini's weights perturbed, saved as a local checkpoint), then
after `POST /models/use` switches to it. Reported: searches answered, errors, empty answers,
answers naming media the library did not hold before, p50/p99 latency in each phase, the
re-embed's rate, the switch's time, and what `POST /models/drop` removed.

    python benchmarks/bench_model_switch.py [--images 400] [--videos 8] [--no-write]

Run from the repository root with mmsearch installed (make venv). Loopback only.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from datetime import date
from pathlib import Path

import httpx
from bench_load import free_port, start_server
from report import device_description, publish

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the tests' model maker

from mmsearch.config import Settings  # noqa: E402
from mmsearch.datasets import synth  # noqa: E402
from mmsearch.library import Library  # noqa: E402
from tests.helpers import perturbed_mini  # noqa: E402

KEY = "bench-model-switch-key"
BODY = {"text": "a red circle", "k": 10}


class Searcher:
    """Searches every 0.2 s on a thread of its own; a phase is what it saw between marks."""

    def __init__(self, url: str, known: set[int]):
        self.url, self.known = url, known
        self.seen: list[tuple[float, int, int, bool]] = []  # ms, status, hits, all known
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run)

    def _run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=60) as client:
            while not self._stop.is_set():
                t0 = time.perf_counter()
                try:
                    r = client.post("/search", json=BODY)
                    ids = [h["id"] for h in r.json().get("results", [])] if r.status_code == 200 else []
                    status = r.status_code
                except httpx.HTTPError:
                    ids, status = [], 0
                self.seen.append(((time.perf_counter() - t0) * 1000, status, len(ids), set(ids) <= self.known))
                time.sleep(0.2)

    def __enter__(self) -> "Searcher":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def phase(self, since: int, until: int | None = None) -> dict:
        rows = self.seen[since:until]
        ms = sorted(r[0] for r in rows)
        return {
            "searches": len(rows),
            "errors": sum(r[1] != 200 for r in rows),
            "empty": sum(r[1] == 200 and r[2] == 0 for r in rows),
            "unknown": sum(not r[3] for r in rows),
            "p50": statistics.median(ms) if ms else float("nan"),
            "p99": statistics.quantiles(ms, n=100)[98] if len(ms) > 1 else (ms[0] if ms else float("nan")),
        }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=400)
    parser.add_argument("--videos", type=int, default=8)
    parser.add_argument("--alone-s", type=float, default=10.0, help="seconds of searches before the re-embed")
    parser.add_argument("--no-write", action="store_true", help="print the table only")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        synth.generate(base / "media", args.images, args.videos, seed=21, split="train")
        settings = Settings(library_dir=base / "lib", model="mini", decode_workers=0, generator="none")
        with Library.open(settings=settings) as lib:
            lib.index([base / "media"])
        model_b = str(perturbed_mini(base / "mini-b"))
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        server = start_server(base / "lib", port, {"MMSEARCH_API_KEYS": KEY, "MMSEARCH_GENERATOR": "none"})
        try:
            with httpx.Client(base_url=url, timeout=600, headers={"X-API-Key": KEY}) as client:
                known = {h["id"] for h in client.post("/search", json={**BODY, "k": 1000}).json()["results"]}
                with Searcher(url, known) as searcher:
                    time.sleep(args.alone_s)
                    mark = len(searcher.seen)
                    alone = searcher.phase(0, mark)
                    t0 = time.monotonic()
                    job = client.post("/models", json={"spec": model_b}).json()
                    while (job := client.get(f"/jobs/{job['id']}").json())["state"] in ("pending", "running"):
                        time.sleep(0.2)
                    add_s = time.monotonic() - t0
                    during = searcher.phase(mark)
                    t0 = time.monotonic()
                    switched = client.post("/models/use", json={"spec": model_b})
                    use_ms = (time.monotonic() - t0) * 1000
                    mark = len(searcher.seen)
                    time.sleep(args.alone_s)
                    after = searcher.phase(mark)
                space = client.get("/health").json()["space"]
                dropped = client.post("/models/drop", json={"spec": "mini"}).json()
        finally:
            server.terminate()
            server.wait(30)

    media = args.images + args.videos
    lines = [
        "",
        f"## Model switch under searches ({date.today()}, {device_description()})",
        "",
        f"`benchmarks/bench_model_switch.py`: {args.images} images + {args.videos} videos indexed with mini, served "
        "by `mmsearch serve`; one client searching every 0.2 s; `POST /models` adds mini's weights perturbed "
        "(a local checkpoint), `POST /models/use` switches, `POST /models/drop` removes mini.",
        "",
        "| phase | searches | errors | empty answers | unknown media | p50 ms | p99 ms |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, row in (("before", alone), ("during the re-embed", during), ("after the switch", after)):
        lines.append(
            f"| {name} | {row['searches']} | {row['errors']} | {row['empty']} | {row['unknown']} "
            f"| {row['p50']:.1f} | {row['p99']:.1f} |"
        )
    lines += [
        "",
        f"Re-embed: job {job['state']}, {job['done']} of {media} media in {add_s:.1f} s "
        f"({job['done'] / add_s:.1f} media/s beside the searches), {job['errors']} errors. "
        f"`model use`: {switched.status_code} in {use_ms:.0f} ms; then searching space `{space}`. "
        f"`model drop mini`: {dropped.get('vectors')} vectors and {dropped.get('files')} index files removed.",
    ]
    publish(lines, write=not args.no_write)
    ok = job["state"] == "done" and during["errors"] == during["empty"] == during["unknown"] == 0
    return 0 if ok and switched.status_code == 200 else 1


if __name__ == "__main__":
    raise SystemExit(main())
