"""End-to-end indexing throughput next to the encoder's raw throughput, in one run.

raw:        encoder.embed_pixels on tensors decoded and preprocessed beforehand (the ceiling)
end-to-end: `Library.index` on the same files (scan, decode workers, preprocess, embed,
            SQL writes, FAISS adds, index saves), with the local runner and the Ray runner
            (a local Ray on this machine's CPUs, started before the timing: its start is shown apart)
The ratio says how much of the encoder's speed the pipeline delivers.

    python benchmarks/bench_ingest.py --images 2000 --workers 0 1 2 [--ray] [--model mini] [--no-write]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

from report import device_description, publish

from mmsearch.config import Settings
from mmsearch.datasets import synth
from mmsearch.encoders import load_encoder
from mmsearch.library import Library


def raw_images_per_s(encoder, files: list[Path], batch_size: int) -> float:
    pixels = encoder.preprocess_images(files)
    encoder.embed_pixels(pixels[:batch_size])  # warm up
    t0 = time.perf_counter()
    encoder.embed_pixels(pixels)
    return len(files) / (time.perf_counter() - t0)


def end_to_end_images_per_s(
    encoder, corpus: Path, lib_dir: Path, workers: int, batch_size: int, runner: str = "local"
) -> float:
    settings = Settings(library_dir=lib_dir, batch_size=batch_size, decode_workers=workers, runner=runner)
    with Library.open(settings=settings, encoder=encoder) as lib:
        t0 = time.perf_counter()
        job = lib.index([corpus])
        seconds = time.perf_counter() - t0
    return job["new"] / seconds


def started_ray() -> float:
    """Seconds a local Ray takes to start (the Ray runner's first job pays them once per process)."""
    from mmsearch.indexer.ray_runner import connect

    t0 = time.perf_counter()
    connect(None)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=2000)
    ap.add_argument("--model", default="mini")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--ray", action="store_true", help="Also index with the Ray runner (needs mmsearch[ray]).")
    ap.add_argument("--no-write", action="store_true", help="Do not append to BENCHMARKS.md.")
    args = ap.parse_args()

    encoder = load_encoder(args.model, batch_size=args.batch_size)
    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp) / "corpus"
        synth.generate(corpus, args.images, 0, seed=123, workers=2)
        files = sorted(p for p in (corpus / "images").iterdir())
        raw = raw_images_per_s(encoder, files, args.batch_size)
        rows = [
            ("local", w, end_to_end_images_per_s(encoder, corpus, Path(tmp) / f"lib-{w}", w, args.batch_size))
            for w in args.workers
        ]
        if args.ray:
            ray_start = started_ray()
            ips = end_to_end_images_per_s(encoder, corpus, Path(tmp) / "lib-ray", 0, args.batch_size, "ray")
            rows.append((f"Ray (local Ray, started in {ray_start:.1f} s before)", "Ray tasks", ips))

    device = device_description()
    lines = [
        f"### Ingest: {args.images} synthetic images, model `{args.model}`, batch {args.batch_size} "
        f"({date.today()}, {device})",
        "",
        "| pipeline | runner | decode workers | images/s | ratio to raw encoder |",
        "| --- | --- | --- | --- | --- |",
        f"| raw encoder (pre-decoded tensors) | - | - | {raw:.1f} | 1.00 |",
        *[f"| end-to-end `Library.index` | {r} | {w} | {ips:.1f} | {ips / raw:.2f} |" for r, w, ips in rows],
        "",
    ]
    publish(lines, write=not args.no_write)


if __name__ == "__main__":
    sys.exit(main())
