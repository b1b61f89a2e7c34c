"""Hybrid search against vector-only search, in one run on one library: the synthetic eval
set's attribute queries (P@10: does fusing in the keyword side cost the vector side
anything?) and file-name queries (top-1: what the keyword side adds), and the latency of both.

Renders --images heldout synthetic images, indexes them with the built-in mini model, then
asks every attribute query of mmsearch.evaluation.encoder_eval (with at least 10 matching
images) and the stems of --names files, each in mode vector and in mode hybrid.

    python benchmarks/bench_hybrid.py [--images 1000] [--names 100] [--seed 3] [--write]
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from pathlib import Path

from report import device_description, publish

from mmsearch.config import Settings
from mmsearch.datasets import synth
from mmsearch.datasets.captions import spec_matches
from mmsearch.evaluation.encoder_eval import attribute_queries
from mmsearch.library import Library
from mmsearch.search.query import SearchRequest, parse_text

K = 10
MODES = ("vector", "hybrid")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=1000)
    ap.add_argument("--names", type=int, default=100)
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--write", action="store_true")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench_hybrid_") as tmp:
        root = Path(tmp) / "images"
        manifest = synth.generate(root, args.images, 0, seed=args.seed, split="heldout")
        lib = Library.open(settings=Settings(library_dir=Path(tmp) / "lib", model="mini", decode_workers=0))
        lib.index([root])
        by_path = {str((root / item["file"]).resolve()): item for item in manifest["items"]}
        precision: dict[str, list[float]] = {m: [] for m in MODES}
        found_by_words = 0
        times: dict[str, list[float]] = {m: [] for m in MODES}
        queries = [(text, spec) for group in attribute_queries().values() for text, spec in group]
        asked = 0
        for text, spec in queries:
            if sum(spec_matches(spec, item) for item in by_path.values()) < K:
                continue  # too few matching images for P@10 to mean anything
            asked += 1
            for mode in MODES:
                started = time.perf_counter()
                hits = lib.search(SearchRequest(terms=parse_text(text), k=K, kind="image", mode=mode))
                times[mode].append(1000 * (time.perf_counter() - started))
                precision[mode].append(sum(spec_matches(spec, by_path[h.path]) for h in hits) / K)
                found_by_words += mode == "hybrid" and any(h.found_by != "vector" for h in hits)
        names = random.Random(args.seed).sample(sorted(by_path), min(args.names, len(by_path)))
        top1 = {m: 0 for m in MODES}
        for path in names:
            for mode in MODES:
                (hit,) = lib.search(SearchRequest(terms=parse_text(Path(path).stem), k=1, mode=mode))
                top1[mode] += hit.path == path
        lib.close()
    lines = [
        f"\n### Hybrid search beside vector-only search ({args.images} heldout synthetic images, mini, "
        f"{time.strftime('%Y-%m-%d')}, {device_description()})\n",
        "| mode | attribute queries P@10 | queries | found by words | search p50 ms | file-name queries top-1 |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for mode in MODES:
        lines.append(
            f"| {mode} | {statistics.mean(precision[mode]):.4f} | {asked} | "
            f"{found_by_words if mode == 'hybrid' else '-'} | {statistics.median(times[mode]):.1f} | "
            f"{top1[mode]}/{len(names)} |"
        )
    publish(lines, args.write)


if __name__ == "__main__":
    main()
