"""Video indexing throughput (sampled frames/s) end to end, next to decode-only and
encode-only throughput on the same videos, in one run; and the peak memory of indexing one
long video.

decode-only: `sample_video` (decord, shot detection, frame sampling) over every video
encode-only: the encoder on the frames decode-only produced
end-to-end:  `Library.index` on the folder (scan, decode workers, embed, pool, keyframes,
             SQL writes, FAISS adds)
long video:  a fresh process indexes one synthetic video of --long-minutes; its peak RSS
             (and its decode worker's) is reported.

    python benchmarks/bench_video.py --videos 60 --long-minutes 10 [--model mini] [--no-write]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

from PIL import Image
from report import device_description, publish

from mmsearch.config import Settings
from mmsearch.datasets import synth
from mmsearch.datasets.synth_video import render_long_video
from mmsearch.encoders import load_encoder
from mmsearch.encoders.video import SamplingConfig, sample_video
from mmsearch.library import Library

LONG_VIDEO_JOB = """
import resource, sys, time
from mmsearch.config import Settings
from mmsearch.library import Library
settings = Settings(library_dir=sys.argv[2], model=sys.argv[3], decode_workers=int(sys.argv[4]))
t0 = time.perf_counter()
with Library.open(settings=settings) as lib:
    job = lib.index([sys.argv[1]])
print(job["state"], job["errors"], round(time.perf_counter() - t0, 1),
      resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
"""


def decode_only(files: list[Path], sampling: SamplingConfig) -> tuple[list, float]:
    t0 = time.perf_counter()
    sampled = [sample_video(str(f), sampling) for f in files]
    return sampled, sum(len(s.times) for s in sampled) / (time.perf_counter() - t0)


def encode_only(encoder, sampled: list) -> float:
    images = [Image.fromarray(f) for s in sampled for f in s.frames]
    encoder.embed_images(images[:64])  # warm up
    t0 = time.perf_counter()
    encoder.embed_images(images)
    return len(images) / (time.perf_counter() - t0)


def end_to_end(encoder, corpus: Path, lib_dir: Path, workers: int, frames: int) -> float:
    settings = Settings(library_dir=lib_dir, model="mini", decode_workers=workers, pooling="mean")
    with Library.open(settings=settings, encoder=encoder) as lib:
        t0 = time.perf_counter()
        job = lib.index([corpus])
        seconds = time.perf_counter() - t0
    assert job["errors"] == 0, job
    return frames / seconds


def long_video_peak_rss(minutes: float, model: str, workers: int, tmp: Path) -> dict:
    folder = tmp / "long"
    t0 = time.perf_counter()
    render_long_video(folder / "long.mp4", minutes * 60, seed=5)
    render_s = time.perf_counter() - t0
    out = subprocess.run(
        [sys.executable, "-c", LONG_VIDEO_JOB, str(folder), str(tmp / "long-lib"), model, str(workers)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    state, errors, seconds, self_kib, child_kib = out[-5:]
    return {
        "state": state,
        "errors": int(errors),
        "seconds": float(seconds),
        "render_s": render_s,
        "main_mib": int(self_kib) / 1024,
        "worker_mib": int(child_kib) / 1024,
        "mp4_mib": (folder / "long.mp4").stat().st_size / 2**20,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--videos", type=int, default=60)
    ap.add_argument("--model", default="mini")
    ap.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    ap.add_argument("--long-minutes", type=float, default=10.0, help="0 skips the long-video memory run.")
    ap.add_argument("--no-write", action="store_true", help="Do not append to BENCHMARKS.md.")
    args = ap.parse_args()

    encoder = load_encoder(args.model)
    sampling = SamplingConfig()
    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp) / "corpus"
        synth.generate(corpus, 0, args.videos, seed=321, workers=2)
        files = sorted((corpus / "videos").iterdir())
        sampled, decode_fps = decode_only(files, sampling)
        frames = sum(len(s.times) for s in sampled)
        encode_fps = encode_only(encoder, sampled)
        rows = [(w, end_to_end(encoder, corpus, Path(tmp) / f"lib-{w}", w, frames)) for w in args.workers]
        long = long_video_peak_rss(args.long_minutes, args.model, 1, Path(tmp)) if args.long_minutes > 0 else None

    ceiling = min(decode_fps, encode_fps)
    device = device_description()
    lines = [
        f"### Video ingest: {args.videos} synthetic videos ({frames} sampled frames, "
        f"`{sampling.strategy}` sampling at {sampling.fps} fps), "
        f"model `{args.model}` ({date.today()}, {device})",
        "",
        "| stage | decode workers | sampled frames/s | ratio to the slower of decode and encode |",
        "| --- | --- | --- | --- |",
        f"| decode only (`sample_video`) | - | {decode_fps:.1f} | {decode_fps / ceiling:.2f} |",
        f"| encode only (frames decoded beforehand) | - | {encode_fps:.1f} | {encode_fps / ceiling:.2f} |",
        *[f"| end-to-end `Library.index` | {w} | {fps:.1f} | {fps / ceiling:.2f} |" for w, fps in rows],
        "",
    ]
    if long:
        lines += [
            f"Long video: {args.long_minutes:g} min, 320x240 at 10 fps ({long['mp4_mib']:.1f} MiB mp4) "
            f"indexed in {long['seconds']:.1f} s by a fresh process with 1 decode worker: "
            f"peak RSS {long['main_mib']:.0f} MiB (main), {long['worker_mib']:.0f} MiB (decode worker); "
            f"job {long['state']}, {long['errors']} errors.",
            "",
        ]
    publish(lines, write=not args.no_write)


if __name__ == "__main__":
    sys.exit(main())
