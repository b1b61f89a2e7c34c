"""How much hand-drawn wobble the attribute judge of eval-generation tolerates.

The judge learnt exact polygons (with blur, noise and small affine changes) and a "none"
class of blobs and scribbles, so a fair question is whether it refuses shapes a person would
accept. This draws one-object images like the corpus (canvases, colours, backgrounds, fills,
degradations, shapes upright within 20 degrees) but with each corner moved at random and the
edges made wavy, at several wobble levels, and prints the judge's shape accuracy per level,
size and shape, with the share it calls none.

    python benchmarks/bench_judge.py [--images 240] [--write]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from report import device_description, publish

from mmsearch.datasets.render import ObjectGeom, draw_scene, jitter_rgb, sample_style, unit_shape
from mmsearch.datasets.synth import place, sample_background, sample_canvas
from mmsearch.datasets.vocab import COLOR_NAMES, SHAPES
from mmsearch.evaluation.attribute_classifier import NONE, AttributeClassifier

# (corner offset std, edge wave std), in units of the shape's radius.
WOBBLE_LEVELS = ((0.0, 0.0), (0.04, 0.02), (0.08, 0.04), (0.12, 0.06))


def wobbly_outline(shape: str, rng: np.random.Generator, corner: float, wave: float) -> list[tuple[float, float]]:
    """The unit polygon with its corners moved (std `corner`) and its edges subdivided and
    bent by a few low harmonics (std `wave`), as a hand would draw it."""
    points = np.array(unit_shape(shape))
    if shape != "circle":  # a circle has no corners; its 64 points only wave
        points = points + rng.normal(0, corner, points.shape)
        points = np.concatenate(
            [
                [a + f * (b - a) for f in np.linspace(0, 1, 6, endpoint=False)]
                for a, b in zip(points, np.roll(points, -1, axis=0))
            ]
        )
    along = np.linspace(0, 2 * np.pi, len(points), endpoint=False)
    radial = sum(rng.normal(0, wave) * np.sin(k * along + rng.uniform(0, 2 * np.pi)) for k in (2, 3, 5, 7))
    return [(float(x), float(y)) for x, y in points * (1 + radial)[:, None]]


def wobbly_image(index: int, size: str, corner: float, wave: float):
    rng = np.random.default_rng([index, 11])  # the same scene at every level: only the outline changes
    shape, color = SHAPES[index % len(SHAPES)], COLOR_NAMES[int(rng.integers(len(COLOR_NAMES)))]
    width, height = sample_canvas(rng)
    cx, cy, r = place(rng, width, height, (int(rng.integers(3)), int(rng.integers(3))), size)
    angle = float(rng.uniform(-20, 20)) if shape != "circle" else 0.0
    style, background = sample_style(rng), jitter_rgb(rng, sample_background(rng, [color]), amount=10)
    outline = wobbly_outline(shape, np.random.default_rng([index, 12]), corner, wave)
    geom = ObjectGeom(shape, jitter_rgb(rng, color), cx, cy, r, angle, parts=[outline])
    return draw_scene(width, height, background, [geom], style), shape


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=240, help="images per wobble level and size (shapes in turn)")
    ap.add_argument("--write", action="store_true", help="append the table to BENCHMARKS.md")
    args = ap.parse_args()

    judge = AttributeClassifier.load()
    lines = [
        f"\n### Judge on hand-drawn outlines ({time.strftime('%Y-%m-%d')}, {device_description()})\n",
        f"{args.images} one-object images per row, drawn like the corpus with wobbly outlines; shape accuracy:\n",
        "| corner / wave | size | all | " + " | ".join(SHAPES) + " | called none |",
        "| --- | --- | --- | " + " | ".join("---" for _ in SHAPES) + " | --- |",
    ]
    for corner, wave in WOBBLE_LEVELS:
        for size in ("large", "medium"):
            drawn = [wobbly_image(k, size, corner, wave) for k in range(args.images)]
            named, _ = judge.predict([image for image, _ in drawn])
            right = np.array([n == shape for n, (_, shape) in zip(named, drawn)])
            per_shape = [right[[k for k, (_, s) in enumerate(drawn) if s == shape]].mean() for shape in SHAPES]
            lines.append(
                f"| {corner:.2f} / {wave:.2f} | {size} | {right.mean():.3f} | "
                + " | ".join(f"{a:.2f}" for a in per_shape)
                + f" | {np.mean([n == NONE for n in named]):.3f} |"
            )
    publish(lines, args.write)


if __name__ == "__main__":
    main()
