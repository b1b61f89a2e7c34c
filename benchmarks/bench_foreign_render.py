"""How the encoder names colour and shape in pictures drawn by another hand than its own.

The built-in models learnt from mmsearch's own renderer. This draws one-object pictures
with none of its code: PIL's ImageDraw primitives, CSS colour values (not the corpus's
shade lists), canvases of 90-420 px in any aspect ratio, plain, gradient or paper-grain
backgrounds, sometimes supersampled edges, black outlines, blur or sensor noise, and shapes
turned a little. Each picture is classified zero-shot among the 72 "COLOUR SHAPE" texts,
in several phrasings; the same is done on one-object pictures of a heldout split of the
corpus, so the gap between the two is the cost of the foreign look. A third column squashes
every foreign picture to a square before the encoder sees it, as mini did before it padded
pictures wider or taller than 1.6:1.

    python benchmarks/bench_foreign_render.py --heldout DIR [--images 600] [--model mini] [--write]
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections import Counter
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter
from report import device_description, publish

from mmsearch.datasets.vocab import POSITIONS, SHAPES, position_name
from mmsearch.encoders import load_encoder

# CSS named colours: what a person (or another program) means by the name.
CSS_COLORS = {
    "red": (255, 0, 0),
    "orange": (255, 165, 0),
    "yellow": (255, 255, 0),
    "green": (0, 128, 0),
    "cyan": (0, 255, 255),
    "blue": (0, 0, 255),
    "purple": (128, 0, 128),
    "pink": (255, 192, 203),
    "brown": (165, 42, 42),
    "black": (0, 0, 0),
    "white": (255, 255, 255),
    "gray": (128, 128, 128),
}
# Pairs too close to tell apart as object and background.
CLASHES = ({"white", "yellow"}, {"black", "brown"}, {"white", "pink"}, {"white", "cyan"})
PHRASINGS = (
    "a {c} {s}",
    "a photo of a {c} {s}",
    "a drawing of a {c} {s}",
    "{c} {s}",
    "there is a {c} {s} in the picture",
)
CLASSES = [(c, s) for c in CSS_COLORS for s in SHAPES]
ASPECT_BANDS = ((1.0, 1.25), (1.25, 1.6), (1.6, 2.2), (2.2, 5.0))


def outline(shape: str, rng: np.random.Generator) -> list[tuple[float, float]]:
    """A unit polygon for every shape but the circle, turned by up to ~17 degrees."""
    turn = rng.uniform(-0.3, 0.3)
    if shape == "cross":
        w = rng.uniform(0.28, 0.4)  # arm half-width
        points = [
            (-w, -1),
            (w, -1),
            (w, -w),
            (1, -w),
            (1, w),
            (w, w),
            (w, 1),
            (-w, 1),
            (-w, w),
            (-1, w),
            (-1, -w),
            (-w, -w),
        ]
    elif shape == "star":
        inner = rng.uniform(0.38, 0.5)
        points = [
            (
                (1 if k % 2 == 0 else inner) * math.cos(-math.pi / 2 + k * math.pi / 5),
                (1 if k % 2 == 0 else inner) * math.sin(-math.pi / 2 + k * math.pi / 5),
            )
            for k in range(10)
        ]
    else:
        corners, start = {"square": (4, math.pi / 4), "triangle": (3, -math.pi / 2), "hexagon": (6, 0.0)}[shape]
        points = [
            (math.cos(start + 2 * math.pi * k / corners), math.sin(start + 2 * math.pi * k / corners))
            for k in range(corners)
        ]
    c, s = math.cos(turn), math.sin(turn)
    return [(x * c - y * s, x * s + y * c) for x, y in points]


def background(width: int, height: int, colour: str, kind: str, rng: np.random.Generator) -> Image.Image:
    choices = [name for name in CSS_COLORS if name != colour and {name, colour} not in CLASHES]
    base = np.array(CSS_COLORS[choices[rng.integers(len(choices))]], float)
    if kind == "plain":
        return Image.new("RGB", (width, height), tuple(int(v) for v in base))
    if kind == "gradient":  # towards another colour, at most 40% of the way
        other = np.array(CSS_COLORS[choices[rng.integers(len(choices))]], float)
        t = np.linspace(0, 0.4, height)[:, None, None]
        pixels = np.broadcast_to(base * (1 - t) + other * t, (height, width, 3))
    else:  # paper grain
        pixels = base + rng.normal(0, 18, (height, width, 1))
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def draw(colour: str, shape: str, rng: np.random.Generator) -> Image.Image:
    width, height = (int(v) for v in rng.integers(90, 421, 2))
    scale = 4 if rng.random() < 0.5 else 1  # supersampled (smooth) or aliased edges
    image = background(width * scale, height * scale, colour, ("plain", "gradient", "paper")[rng.integers(3)], rng)
    side = min(width, height) * scale
    r = side * rng.uniform(0.15, 0.3)
    cx, cy = rng.uniform(r, width * scale - r), rng.uniform(r, height * scale - r)
    fill = tuple(int(v) for v in np.clip(np.array(CSS_COLORS[colour]) + rng.integers(-25, 26, 3), 0, 255))
    edge = (0, 0, 0) if rng.random() < 0.3 and colour != "black" else None
    width_px = max(1, int(side * 0.015)) if edge else 0
    pen = ImageDraw.Draw(image)
    if shape == "circle":
        pen.ellipse([cx - r, cy - r, cx + r, cy + r], fill=fill, outline=edge, width=width_px)
    else:
        pen.polygon([(cx + r * x, cy + r * y) for x, y in outline(shape, rng)], fill=fill, outline=edge, width=width_px)
    if scale > 1:
        image = image.resize((width, height), Image.LANCZOS)
    if rng.random() < 0.3:
        image = image.filter(ImageFilter.GaussianBlur(rng.uniform(0.5, 1.5)))
    if rng.random() < 0.3:
        image = Image.fromarray(
            np.clip(np.asarray(image) + rng.normal(0, 12, (height, width, 3)), 0, 255).astype(np.uint8)
        )
    return image


def positioned(rng: np.random.Generator) -> tuple[Image.Image, str]:
    """A small red circle well inside one cell of a 3x3 grid, on white, on any canvas."""
    while True:
        width, height = (int(v) for v in rng.integers(90, 421, 2))
        r = min(width, height) * rng.uniform(0.08, 0.14)
        row, col = (int(v) for v in rng.integers(3, size=2))
        cx = float(np.clip((col + 0.5 + rng.uniform(-0.25, 0.25)) / 3 * width, r, width - r))
        cy = float(np.clip((row + 0.5 + rng.uniform(-0.25, 0.25)) / 3 * height, r, height - r))
        if int(3 * cx / width) == col and int(3 * cy / height) == row:
            image = Image.new("RGB", (width, height), (255, 255, 255))
            ImageDraw.Draw(image).ellipse([cx - r, cy - r, cx + r, cy + r], fill=(255, 0, 0))
            return image, position_name(row, col)


def by_aspect(images: list[Image.Image], right: list[bool]) -> list[str]:
    """Accuracy per band of aspect ratio (long side / short side)."""
    aspects = np.array([max(image.size) / min(image.size) for image in images])
    right = np.array(right)
    return [f"{right[(aspects >= lo) & (aspects < hi)].mean():.3f}" for lo, hi in ASPECT_BANDS]


def squashed(images: list[Image.Image]) -> list[Image.Image]:
    return [image.resize((256, 256), Image.BICUBIC) for image in images]


def zero_shot(encoder, images: list[Image.Image], truth: list[tuple[str, str]]) -> tuple[dict, np.ndarray]:
    """Per phrasing: (colour, shape, both) accuracy; and the first phrasing's predictions."""
    vectors = encoder.embed_images(images)
    scores, first = {}, None
    for phrasing in PHRASINGS:
        texts = encoder.embed_texts([phrasing.format(c=c, s=s) for c, s in CLASSES])
        predicted = [CLASSES[k] for k in (vectors @ texts.T).argmax(1)]
        first = predicted if first is None else first
        scores[phrasing] = tuple(float(np.mean([p[i] == t[i] for p, t in zip(predicted, truth)])) for i in (0, 1)) + (
            float(np.mean([p == t for p, t in zip(predicted, truth)])),
        )
    return scores, first


def heldout_single_objects(folder: Path, limit: int) -> tuple[list[Image.Image], list[tuple[str, str]]]:
    items = [
        item
        for item in json.loads((folder / "manifest.json").read_text())["items"]
        if item.get("kind", "image") == "image" and len(item["objects"]) == 1
    ][:limit]
    return (
        [Image.open(folder / item["file"]).convert("RGB") for item in items],
        [(item["objects"][0]["color"], item["objects"][0]["shape"]) for item in items],
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--heldout", type=Path, required=True, help="a heldout split written by `mmsearch synth --split heldout`"
    )
    ap.add_argument("--images", type=int, default=600)
    ap.add_argument("--model", default="mini")
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--samples", type=Path, help="also save the first 24 foreign pictures here")
    ap.add_argument("--write", action="store_true", help="append the table to BENCHMARKS.md")
    args = ap.parse_args()

    encoder = load_encoder(args.model, device="cpu")
    rng = np.random.default_rng(args.seed)
    truth = [
        (list(CSS_COLORS)[rng.integers(len(CSS_COLORS))], SHAPES[rng.integers(len(SHAPES))]) for _ in range(args.images)
    ]
    foreign = [draw(c, s, rng) for c, s in truth]
    if args.samples:
        args.samples.mkdir(parents=True, exist_ok=True)
        for k, (image, (c, s)) in enumerate(zip(foreign[:24], truth[:24])):
            image.save(args.samples / f"{k:02d}-{c}-{s}.png")
    own, own_truth = heldout_single_objects(args.heldout, args.images)
    foreign_scores, predicted = zero_shot(encoder, foreign, truth)
    # The baseline: each picture squashed to a square before the encoder sees it (what mini
    # did to every picture before it padded the very wide and tall ones).
    squashed_scores, squashed_predicted = zero_shot(encoder, squashed(foreign), truth)
    own_scores, _ = zero_shot(encoder, own, own_truth)
    placed = [positioned(rng) for _ in range(args.images)]
    position_texts = encoder.embed_texts([f"a red circle in the {p}" for p in POSITIONS])
    position_right = {
        label: [
            POSITIONS[k] == where
            for k, (_, where) in zip((encoder.embed_images(images) @ position_texts.T).argmax(1), placed)
        ]
        for label, images in (("padded", [i for i, _ in placed]), ("squashed", squashed([i for i, _ in placed])))
    }

    lines = [
        f"\n### Zero-shot colour and shape, foreign renderer vs own (`{args.model}`, {time.strftime('%Y-%m-%d')}, "
        f"{device_description()})\n",
        f"{args.images} one-object pictures each; 72 classes; accuracy colour / shape / both:\n",
        "| phrasing | foreign renderer | foreign, squashed to a square first | own heldout |",
        "| --- | --- | --- | --- |",
    ]
    for phrasing in PHRASINGS:
        lines.append(
            f"| `{phrasing}` | "
            + " | ".join(
                " / ".join(f"{v:.3f}" for v in scores[phrasing])
                for scores in (foreign_scores, squashed_scores, own_scores)
            )
            + " |"
        )
    bands = " | ".join(f"{lo:g}-{hi:g}:1" for lo, hi in ASPECT_BANDS)

    def shape_row(guesses: list) -> list[str]:
        return by_aspect(foreign, [p[1] == t[1] for p, t in zip(guesses, truth)])

    def position_row(prepared: str) -> list[str]:
        return by_aspect([i for i, _ in placed], position_right[prepared])

    lines += [
        "",
        "Accuracy by the picture's aspect ratio (first phrasing for shape; `a red circle in the POSITION` "
        f"for {args.images} small circles on white):",
        "",
        f"| measure | {bands} |",
        "| --- |" + " --- |" * len(ASPECT_BANDS),
        f"| shape, as the encoder prepares it | {' | '.join(shape_row(predicted))} |",
        f"| shape, squashed to a square first | {' | '.join(shape_row(squashed_predicted))} |",
        f"| position, as the encoder prepares it | {' | '.join(position_row('padded'))} |",
        f"| position, squashed to a square first | {' | '.join(position_row('squashed'))} |",
    ]

    def misses(i: int) -> list:
        return Counter((t[i], p[i]) for t, p in zip(truth, predicted) if t[i] != p[i]).most_common(5)

    lines += [
        "",
        "Foreign renderer, most frequent mistakes (truth -> named), first phrasing: colour "
        + ", ".join(f"{a} -> {b} {n}" for (a, b), n in misses(0))
        + "; shape "
        + ", ".join(f"{a} -> {b} {n}" for (a, b), n in misses(1))
        + ".",
    ]
    publish(lines, args.write)


if __name__ == "__main__":
    main()
