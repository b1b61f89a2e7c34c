"""Duplicate groups: how well they find planted copies, and how their time grows with the library.

Quality: draws --images photo-like scenes (mmsearch/datasets/photos.py: each distinct by
construction; the shapes corpus holds look-alikes of its own), plants --copies copies of as
many of them (each cropped by up to 5% per side, scaled to 55-90% and re-encoded as JPEG at
quality 55-90), indexes all with the built-in mini model, and asks Library.duplicates. A copy and its original
are a true pair; every pair inside a group is a found pair. Precision and recall are over
pairs. A grid of thresholds is printed beside the defaults (the calibration).

Scale: stores --sizes libraries of clustered random 512-d vectors (1% planted copies, their
hashes a few bits apart) straight into SQL and times services.duplicates.find_duplicates on
each, beside comparing every pair (search.near_pairs' exact path, forced).

    python benchmarks/bench_duplicates.py [--images 10000] [--copies 200] [--sizes 10000,100000] [--write]
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from pathlib import Path

import numpy as np
from report import device_description, publish
from sqlalchemy import insert

from mmsearch.config import Settings
from mmsearch.datasets.photos import write_copy, write_scenes
from mmsearch.library import Library
from mmsearch.perceptual_hash import hash_distance
from mmsearch.search import near_pairs
from mmsearch.services.duplicates import find_duplicates
from mmsearch.storage.store import Media, Store, Vector, encode_embedding

GRID_SIMILARITY = (0.8, 0.85, 0.9, 0.95)
GRID_DISTANCE = (8, 10, 12, 14, 16, 18)


def plant_copy(source: Path, target: Path, rng: random.Random) -> None:
    crop = tuple(rng.uniform(0, 0.05) for _ in range(4))
    write_copy(source, target, crop, rng.uniform(0.55, 0.9), rng.randint(55, 90))


def quality(args, tmp: Path) -> list[str]:
    root = tmp / "photos"
    rng = random.Random(args.seed)
    sources = rng.sample(write_scenes(root / "scenes", args.images, args.seed), args.copies)
    (root / "copies").mkdir()
    truth = set()
    for i, source in enumerate(sources):
        target = root / "copies" / f"copy_{i:04d}.jpg"
        plant_copy(source, target, rng)
        truth.add(frozenset((str(source.resolve()), str(target.resolve()))))
    lib = Library.open(settings=Settings(library_dir=tmp / "lib", model="mini", decode_workers=0))
    started = time.perf_counter()
    lib.index([root])
    index_s = time.perf_counter() - started
    lines = [
        f"\n### Duplicate groups: {args.images} photo-like scenes with {args.copies} planted copies, mini "
        f"({time.strftime('%Y-%m-%d')}, {device_description()}; indexing took {index_s:.0f} s)\n",
        "| min similarity | max hash distance | groups | found pairs | precision | recall | keeper is the original |"
        " search s |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    report = lib.duplicates()
    lines.append(_quality_row(report, truth, sources, "(default)"))
    grid = _grid(lib, truth)
    lib.close()
    lines += [
        "\nCalibration: precision / recall of the pairs over thresholds (same library)\n",
        "| similarity \\ distance | " + " | ".join(str(d) for d in GRID_DISTANCE) + " |",
        "| --- |" + " --- |" * len(GRID_DISTANCE),
        *grid,
    ]
    return lines


def _pairs(report) -> set[frozenset]:
    found = set()
    for group in report.groups:
        paths = [m.hit.path for m in group.members]
        found |= {frozenset((a, b)) for i, a in enumerate(paths) for b in paths[i + 1 :]}
    return found


def _quality_row(report, truth: set[frozenset], sources: list[Path], label: str) -> str:
    found = _pairs(report)
    right = len(found & truth)
    originals = {str(s.resolve()) for s in sources}
    keepers = sum(g.keeper.path in originals for g in report.groups)
    settings = report.settings
    return (
        f"| {settings['min_similarity']} {label} | {settings['max_distance']} | {len(report.groups)} | {len(found)} | "
        f"{right / max(1, len(found)):.4f} | {right / len(truth):.4f} | {keepers}/{len(report.groups)} | "
        f"{report.took_ms / 1000:.2f} |"
    )


def _grid(lib: Library, truth: set[frozenset]) -> list[str]:
    # Every pair at the lowest similarity, once; each cell keeps those meeting its thresholds.
    parts = list(lib.store.iter_vectors(lib.encoder.space, ("image",)))
    ids, vectors = np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
    first, second, sims = near_pairs.near_pairs(vectors, min(GRID_SIMILARITY))
    media_of = lib.store.media_of_vectors(ids.tolist())
    rows = lib.media_many(sorted(set(media_of.values())))
    path = {vid: rows[mid].path for vid, mid in media_of.items()}
    phash = {vid: rows[mid].phash for vid, mid in media_of.items()}
    pairs = [
        (s, hash_distance(phash[a], phash[b]), frozenset((path[a], path[b])))
        for a, b, s in zip(ids[first].tolist(), ids[second].tolist(), sims.tolist())
    ]
    out = []
    for sim in GRID_SIMILARITY:
        cells = []
        for dist in GRID_DISTANCE:
            found = {p for s, d, p in pairs if s >= sim and d <= dist}
            right = len(found & truth)
            cells.append(f"{right / max(1, len(found)):.3f} / {right / len(truth):.3f}")
        out.append(f"| {sim} | " + " | ".join(cells) + " |")
    return out


def scale(args, tmp: Path) -> list[str]:
    lines = [
        f"\n### Duplicate groups against library size: clustered random 512-d vectors, 1% planted copies "
        f"({time.strftime('%Y-%m-%d')}, {device_description()})\n",
        "| vectors | groups found / planted | find_duplicates s | every pair compared s |",
        "| --- | --- | --- | --- |",
    ]
    for n in args.sizes:
        store = Store(f"sqlite:///{tmp}/scale-{n}.db")
        planted = _store_random_library(store, n, args.seed)
        started = time.perf_counter()
        report = find_duplicates(store, "bench|512", 0.9, 10)
        took = time.perf_counter() - started
        found = sum(len(g.members) == 2 for g in report.groups)
        vectors = np.concatenate([v for _, v in store.iter_vectors("bench|512", ("image",))])
        store.close()
        exact = "-"
        if n <= args.exact_up_to:
            started = time.perf_counter()
            near_pairs._exact_pairs(vectors, 0.9, near_pairs.K)
            exact = f"{time.perf_counter() - started:.2f}"
        lines.append(f"| {n:,} | {found} / {planted} | {took:.2f} | {exact} |")
        print(lines[-1], flush=True)
    return lines


def _store_random_library(store: Store, n: int, seed: int) -> int:
    """n images with clustered unit vectors and random hashes; 1% of them copies of others."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((max(1, n // 100), 512)).astype(np.float32)
    x = centres[rng.integers(0, len(centres), n)] + 0.9 * rng.standard_normal((n, 512)).astype(np.float32)
    hashes = rng.integers(0, 2**63, n, dtype=np.int64)
    copies = n // 100
    src, dst = rng.permutation(n)[: 2 * copies].reshape(2, copies)
    noise = rng.standard_normal((copies, 512)).astype(np.float32)
    x[dst] = x[src] / np.linalg.norm(x[src], axis=1, keepdims=True) + 0.3 * noise / np.linalg.norm(
        noise, axis=1, keepdims=True
    )
    hashes[dst] = hashes[src] ^ (1 << rng.integers(0, 63, copies))  # one bit apart
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    with store.session() as s:
        s.execute(
            insert(Media),
            [
                {
                    "id": i + 1,
                    "path": f"/bench/{i}.jpg",
                    "kind": "image",
                    "width": 640,
                    "height": 480,
                    "phash": f"{h:016x}",
                }
                for i, h in enumerate(hashes.tolist())
            ],
        )
        s.execute(
            insert(Vector),
            [
                {"media_id": i + 1, "kind": "image", "space": "bench|512", "dim": 512, "embedding": encode_embedding(v)}
                for i, v in enumerate(x)
            ],
        )
    return copies


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=10000)
    ap.add_argument("--copies", type=int, default=200)
    ap.add_argument("--sizes", type=lambda s: [int(x) for x in s.split(",")], default=[10000, 100000])
    ap.add_argument("--exact-up-to", type=int, default=100000, help="largest size also compared pair by pair")
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--skip-quality", action="store_true", help="the scale tables only")
    ap.add_argument("--skip-scale", action="store_true", help="the quality tables only")
    ap.add_argument("--write", action="store_true")
    args = ap.parse_args()
    lines: list[str] = []
    with tempfile.TemporaryDirectory(prefix="bench_duplicates_") as tmp:
        if not args.skip_quality:
            lines += quality(args, Path(tmp))
            print("\n".join(lines), flush=True)
        if not args.skip_scale:
            lines += scale(args, Path(tmp))
    publish(lines, args.write)


if __name__ == "__main__":
    main()
