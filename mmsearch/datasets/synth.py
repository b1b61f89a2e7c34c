"""Deterministic procedural media with captions: the corpus for the demo, training, tests and eval.

`generate(out_dir, n_images, n_videos, seed, split)` writes images/, videos/ and
manifest.json. Each item is drawn from its own random stream seeded by (seed, split, kind,
index), so the output does not depend on worker count or order, and a rerun with the same
arguments writes identical files.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from ..storage.captions import MANIFEST
from ..storage.files import atomic_write
from .captions import canonical_caption, manifest_captions
from .render import ObjectGeom, draw_scene, jitter_rgb, sample_style
from .vocab import COLOR_NAMES, HELDOUT_PAIRS, RELATIONS, SHAPES, SIMILAR_COLORS, SIZES, position_name

log = logging.getLogger(__name__)

SPLITS = {"train": 0, "heldout": 1}
KIND_IMAGE, KIND_VIDEO = 0, 1
ALL_PAIRS = [(c, s) for c in COLOR_NAMES for s in SHAPES]
TRAIN_PAIRS = [p for p in ALL_PAIRS if p not in HELDOUT_PAIRS]


def item_rng(seed: int, split: str, kind: int, index: int) -> np.random.Generator:
    return np.random.default_rng([seed, SPLITS[split], kind, index])


def sample_pair(rng: np.random.Generator, split: str, prefer_heldout: bool = False) -> tuple[str, str]:
    """A (colour, shape) pair allowed in the split; heldout pairs never appear in train."""
    if split == "train":
        pool = TRAIN_PAIRS
    elif prefer_heldout:
        pool = sorted(HELDOUT_PAIRS)
    else:
        pool = ALL_PAIRS
    return pool[int(rng.integers(len(pool)))]


def sample_background(rng: np.random.Generator, object_colors: list[str]) -> str:
    banned = set(object_colors)
    for c in object_colors:
        banned |= SIMILAR_COLORS[c]
    options = [c for c in COLOR_NAMES if c not in banned]
    return options[int(rng.integers(len(options)))]


def sample_canvas(rng: np.random.Generator) -> tuple[int, int]:
    side = float(rng.uniform(64, 320))
    aspect = float(rng.uniform(0.75, 1.33))
    return int(round(side * np.sqrt(aspect))), int(round(side / np.sqrt(aspect)))


def place(
    rng: np.random.Generator, width: int, height: int, cell: tuple[int, int], size: str, jitter: float = 0.05
) -> tuple[float, float, float]:
    """Centre (x, y) and radius for an object of a size class in a 3x3 cell."""
    lo, hi = SIZES[size]
    radius = float(rng.uniform(lo, hi)) * min(width, height) / 2
    row, col = cell
    cx = (col + 0.5) / 3 * width + rng.uniform(-jitter, jitter) * width
    cy = (row + 0.5) / 3 * height + rng.uniform(-jitter, jitter) * height
    cx = float(np.clip(cx, radius + 1, width - radius - 1))
    cy = float(np.clip(cy, radius + 1, height - radius - 1))
    return cx, cy, radius


def _two_object_cells(rng: np.random.Generator, relation: str) -> tuple[tuple[int, int], tuple[int, int]]:
    """Cells for A and B such that "A <relation> B" holds on the grid."""
    lo_hi = [(0, 1), (0, 2), (1, 2)][int(rng.integers(3))]
    other = (int(rng.integers(3)), int(rng.integers(3)))
    if rng.random() < 0.6:
        other = (other[0], other[0])  # aligned: same row (or column)
    if relation in ("to the left of", "to the right of"):
        a_col, b_col = lo_hi if relation == "to the left of" else lo_hi[::-1]
        return (other[0], a_col), (other[1], b_col)
    a_row, b_row = lo_hi if relation == "above" else lo_hi[::-1]
    return (a_row, other[0]), (b_row, other[1])


def sample_image_scene(rng: np.random.Generator, split: str) -> tuple[dict, list[ObjectGeom], tuple[int, int]]:
    """Attributes (manifest) and geometry (renderer) of one image."""
    width, height = sample_canvas(rng)
    two = rng.random() < 0.3
    heldout_first = split == "heldout" and rng.random() < 0.5
    if two:
        relation = RELATIONS[int(rng.integers(len(RELATIONS)))]
        cells = _two_object_cells(rng, relation)
        sizes = [["small", "medium"][int(rng.integers(2))] for _ in range(2)]
        pairs = [sample_pair(rng, split, heldout_first), sample_pair(rng, split)]
        while pairs[1] == pairs[0]:
            pairs[1] = sample_pair(rng, split)
    else:
        relation = None
        cells = [(int(rng.integers(3)), int(rng.integers(3)))]
        sizes = [list(SIZES)[int(rng.integers(3))]]
        pairs = [sample_pair(rng, split, heldout_first)]
    background = sample_background(rng, [c for c, _ in pairs])
    placed = [place(rng, width, height, cell, size) for cell, size in zip(cells, sizes)]
    if two and np.hypot(placed[0][0] - placed[1][0], placed[0][1] - placed[1][1]) < placed[0][2] + placed[1][2] + 2:
        # Neighbouring cells can make two objects touch: shrink both and centre them in their cells.
        sizes = ["small", "small"]
        placed = [place(rng, width, height, cell, "small", jitter=0.0) for cell in cells]
    objects, geoms = [], []
    for (color, shape), cell, size, (cx, cy, r) in zip(pairs, cells, sizes, placed):
        angle = float(rng.uniform(-20, 20)) if shape != "circle" else 0.0
        geoms.append(ObjectGeom(shape, jitter_rgb(rng, color), cx, cy, r, angle))
        objects.append(
            {
                "shape": shape,
                "color": color,
                "size": size,
                "position": position_name(*cell),
                "center": [round(cx, 2), round(cy, 2)],
                "radius": round(r, 2),
            }
        )
    scene = {"width": width, "height": height, "background": background, "objects": objects, "relation": relation}
    return scene, geoms, (width, height)


def render_image(args: tuple[int, str, int, str]) -> dict:
    """Draw image `index` and write it under out_dir; returns its manifest entry."""
    seed, split, index, out_dir = args
    rng = item_rng(seed, split, KIND_IMAGE, index)
    scene, geoms, (w, h) = sample_image_scene(rng, split)
    style = sample_style(rng)
    bg_rgb = jitter_rgb(rng, scene["background"], amount=10)
    img = draw_scene(w, h, bg_rgb, geoms, style)
    fmt = "jpg" if rng.random() < 0.3 else "png"
    rel = f"images/{split}-{index:06d}.{fmt}"
    path = Path(out_dir) / rel
    if fmt == "jpg":
        img.save(path, format="JPEG", quality=int(rng.integers(80, 96)))
    else:
        img.save(path, format="PNG")
    return {
        "id": f"{split}-img-{index:06d}",
        "file": rel,
        "kind": "image",
        **scene,
        "caption": canonical_caption(scene),
        "captions": manifest_captions(scene),
        "style": {
            "background": style.background,
            "fill": style.fill,
            "supersample": style.supersample,
            "blur": round(style.blur_radius, 2),
            "noise": round(style.noise_sigma, 2),
            "jpeg": style.jpeg_quality,
        },
    }


def generate(
    out_dir: str | Path,
    n_images: int,
    n_videos: int = 0,
    seed: int = 0,
    split: str = "train",
    workers: int = 1,
    progress=None,
) -> dict:
    """Write the corpus and its manifest; returns the manifest."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {sorted(SPLITS)}, not {split!r}")
    if n_images < 0 or n_videos < 0:
        raise ValueError("--images and --videos must be >= 0")
    out = Path(out_dir)
    (out / "images").mkdir(parents=True, exist_ok=True)
    items: list[dict] = []
    jobs = [(seed, split, i, str(out)) for i in range(n_images)]
    if workers > 1 and n_images > 64:
        # spawn: the caller may run torch threads, and forking those can deadlock
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            for entry in pool.map(render_image, jobs, chunksize=64):
                items.append(entry)
                if progress:
                    progress(1)
    else:
        for job in jobs:
            items.append(render_image(job))
            if progress:
                progress(1)
    if n_videos:
        from .synth_video import render_video  # PyAV is only needed when videos are asked for

        (out / "videos").mkdir(parents=True, exist_ok=True)
        for i in range(n_videos):
            items.append(render_video((seed, split, i, str(out))))
            if progress:
                progress(1)
    manifest = {"format": "mmsearch-synth/1", "split": split, "seed": seed, "items": items}
    atomic_write(out / MANIFEST, json.dumps(manifest, indent=1))
    return manifest


def load_manifest(data_dir: str | Path) -> dict:
    path = Path(data_dir) / MANIFEST
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: create the corpus with `mmsearch synth {data_dir}`")
    return json.loads(path.read_text())
