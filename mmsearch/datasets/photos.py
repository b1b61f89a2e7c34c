"""Busy, photo-like scenes, each distinct from every other by construction: the corpus that
duplicate finding is measured on (benchmarks/bench_duplicates.py, tests/services/test_duplicates.py).

The shapes corpus (synth.py) is the wrong one for that: a small red triangle on green, drawn
twice, is two near-identical pictures, so copies planted in it cannot be told from the
corpus's own look-alikes. Here every image is a smooth random backdrop in two octaves, a few
dozen random ellipses, polygons and lines over it, and a little grain, drawn from its own
seeded random stream.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw


def scene(seed: int, width: int = 320, height: int = 240) -> Image.Image:
    rng = np.random.default_rng([seed, 7])
    backdrop = _field(rng, 4, 5, width, height, 1.0) + _field(rng, 12, 16, width, height, 0.35)
    backdrop -= backdrop.min()
    backdrop *= 255 / max(1e-6, float(backdrop.max()))
    im = Image.fromarray(backdrop.astype(np.uint8))
    draw = ImageDraw.Draw(im)
    for _ in range(int(rng.integers(20, 40))):
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        x, y = rng.uniform(-0.1, 1.1, 2) * (width, height)
        r = rng.uniform(0.02, 0.2) * min(width, height)
        kind = rng.integers(3)
        if kind == 0:
            draw.ellipse((x - r, y - r * rng.uniform(0.4, 1.6), x + r, y + r), fill=colour)
        elif kind == 1:
            angles = np.sort(rng.uniform(0, 2 * np.pi, int(rng.integers(3, 7))))
            draw.polygon([(x + r * np.cos(a), y + r * np.sin(a)) for a in angles], fill=colour)
        else:
            x2, y2 = rng.uniform(0, 1, 2) * (width, height)
            draw.line((x, y, x2, y2), fill=colour, width=int(rng.integers(1, 6)))
    grain = rng.normal(0, 6, (height, width, 3))
    return Image.fromarray(np.clip(np.asarray(im, np.float64) + grain, 0, 255).astype(np.uint8))


def _field(rng: np.random.Generator, rows: int, cols: int, width: int, height: int, weight: float) -> np.ndarray:
    """A smooth colour field: a coarse grid of random colours resized up bicubically."""
    coarse = Image.fromarray(rng.integers(0, 256, (rows, cols, 3)).astype(np.uint8))
    return weight * np.asarray(coarse.resize((width, height), Image.Resampling.BICUBIC), np.float64)


def write_scenes(folder: str | Path, count: int, seed: int = 0) -> list[Path]:
    """count scenes as JPEGs named scene-NNNNNN.jpg, of a few photo shapes; their paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    sizes = ((320, 240), (240, 320), (360, 240), (288, 288))
    paths = []
    for i in range(count):
        path = folder / f"scene-{i:06d}.jpg"
        scene(seed * 1_000_003 + i, *sizes[i % len(sizes)]).save(path, "JPEG", quality=92)
        paths.append(path)
    return paths


def write_copy(
    source: str | Path, target: str | Path, crop: tuple[float, float, float, float], scale: float, quality: int
):
    """A near-duplicate of an image as apps make them: cropped by the given fractions of its
    (left, top, right, bottom), scaled, and saved as JPEG at the given quality."""
    im = Image.open(source).convert("RGB")
    w, h = im.size
    left, top, right, bottom = crop
    im = im.crop((round(w * left), round(h * top), w - round(w * right), h - round(h * bottom)))
    size = (max(8, round(im.width * scale)), max(8, round(im.height * scale)))
    im.resize(size, Image.Resampling.BICUBIC).save(target, "JPEG", quality=quality)
