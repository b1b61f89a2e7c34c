"""Drawings that are none of the vocabulary's shapes: negatives for the attribute judge.

A judge that must name one of the six shapes names one for anything, and generated images
are often scribbles that happen to look most like a star or a cross. Trained with these as
a seventh class, "none", the judge says so, and its shape accuracy on generated images
counts outlines rather than blots. They are drawn like the corpus (same canvases, colours,
backgrounds, fills and degradations), so only the outline tells them apart.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image

from .render import ObjectGeom, draw_scene, jitter_rgb, sample_style
from .synth import place, sample_background, sample_canvas
from .vocab import COLOR_NAMES, SIZES

NON_SHAPE_KINDS = ("blob", "strokes", "hatch", "fragments")
Polygon = list[tuple[float, float]]


def _blob(rng: np.random.Generator) -> list[Polygon]:
    """A closed outline whose radius wanders between random control radii: lumpy, neither
    round nor symmetric (no harmonic dominates, so it does not turn into a star or a cross)."""
    controls = rng.uniform(0.35, 1.0, size=int(rng.integers(6, 10)))
    angles = np.linspace(0, 2 * np.pi, 48, endpoint=False)
    at = angles / (2 * np.pi) * len(controls)
    low = np.floor(at).astype(int)
    frac = at - low
    smooth = frac * frac * (3 - 2 * frac)  # smoothstep between neighbouring controls
    radius = controls[low % len(controls)] * (1 - smooth) + controls[(low + 1) % len(controls)] * smooth
    return [[(float(r * math.cos(a)), float(r * math.sin(a))) for r, a in zip(radius, angles)]]


def _stroke(points: np.ndarray, width: float) -> list[Polygon]:
    """A thick polyline as one quad per segment (its joints overlap)."""
    quads = []
    for a, b in zip(points[:-1], points[1:]):
        d = b - a
        n = np.array([-d[1], d[0]]) / (np.linalg.norm(d) + 1e-9) * width / 2
        quads.append([tuple(map(float, p)) for p in (a + n, b + n, b - n, a - n)])
    return quads


def _strokes(rng: np.random.Generator) -> list[Polygon]:
    """One to three wandering thick lines, like a scribble."""
    parts = []
    for _ in range(int(rng.integers(1, 4))):
        points = rng.uniform(-0.9, 0.9, size=(int(rng.integers(2, 5)), 2))
        parts += _stroke(points, float(rng.uniform(0.15, 0.35)))
    return parts


def _hatch(rng: np.random.Generator) -> list[Polygon]:
    """Two to four roughly parallel bars of uneven length: the striped patches decoders draw."""
    count = int(rng.integers(2, 5))
    width = float(rng.uniform(0.12, 0.25))
    parts = []
    for k in range(count):
        offset = (k - (count - 1) / 2) * width * rng.uniform(1.8, 2.6)
        half = rng.uniform(0.3, 0.9)
        tilt = rng.uniform(-0.25, 0.25)
        start = rng.uniform(-0.2, 0.2)
        points = np.array([[start - half, offset - half * tilt], [start + half, offset + half * tilt]])
        parts += _stroke(points, width)
    return parts


def _fragments(rng: np.random.Generator) -> list[Polygon]:
    """Two to four pieces (triangles and quads) scattered over the object's disc."""
    parts = []
    for _ in range(int(rng.integers(2, 5))):
        centre = rng.uniform(-0.6, 0.6, size=2)
        corners = int(rng.integers(3, 5))
        angles = np.sort(rng.uniform(0, 2 * np.pi, size=corners))
        radius = rng.uniform(0.25, 0.55, size=corners)
        parts.append(
            [(float(centre[0] + r * math.cos(a)), float(centre[1] + r * math.sin(a))) for r, a in zip(radius, angles)]
        )
    return parts


DRAWERS = {"blob": _blob, "strokes": _strokes, "hatch": _hatch, "fragments": _fragments}


def render_non_shape(seed: int, index: int) -> tuple[Image.Image, str]:
    """Non-shape `index` of a seed (of kind NON_SHAPE_KINDS[index % 4]), drawn like a one-object
    corpus image; returns (image, colour name)."""
    rng = np.random.default_rng([seed, 7, index])
    kind = NON_SHAPE_KINDS[index % len(NON_SHAPE_KINDS)]
    width, height = sample_canvas(rng)
    color = COLOR_NAMES[int(rng.integers(len(COLOR_NAMES)))]
    size = list(SIZES)[int(rng.integers(len(SIZES)))]
    cx, cy, r = place(rng, width, height, (int(rng.integers(3)), int(rng.integers(3))), size)
    geom = ObjectGeom("none", jitter_rgb(rng, color), cx, cy, r, float(rng.uniform(0, 360)), parts=DRAWERS[kind](rng))
    style = sample_style(rng)
    if style.fill == "outline":  # an outline is drawn as a shrunken copy: meaningless for scattered parts
        style.fill = "flat"
    background = jitter_rgb(rng, sample_background(rng, [color]), amount=10)
    return draw_scene(width, height, background, [geom], style), color


def non_shape_array(count: int, size: int, seed: int = 0) -> tuple[np.ndarray, list[str]]:
    """`count` non-shapes squashed to size x size as image_array squashes, uint8
    (count, size, size, 3), and their colour names."""
    out, colors = np.empty((count, size, size, 3), np.uint8), []
    for k in range(count):
        image, color = render_non_shape(seed, k)
        out[k] = np.asarray(image.resize((size, size), Image.BICUBIC))
        colors.append(color)
    return out, colors
