"""Procedural drawing of shapes on backgrounds, with many looks.

A scene (canvas size, background colour, objects with geometry) is drawn under a `Style`
that varies edges (aliased or anti-aliased, outlines, shadows), textures (gradients,
noise, stripes, checks) and degradations (blur, sensor noise, JPEG). Models trained on
this corpus must learn colour, shape, size and position, not one renderer's look.
Video frames reuse one Style so textures stay put from frame to frame.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass, field, replace

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from .vocab import COLORS

BACKGROUND_KINDS = ["flat", "flat", "gradient", "noise", "stripes", "checker", "vignette"]
FILL_KINDS = ["flat", "flat", "gradient", "texture", "outline"]


@dataclass
class ObjectGeom:
    """One object as drawn: centre and radius in pixels, rotation in degrees."""

    shape: str
    rgb: tuple[int, int, int]
    cx: float
    cy: float
    radius: float
    angle: float = 0.0
    opacity: float = 1.0
    parts: list[list[tuple[float, float]]] | None = (
        None  # polygons in unit-radius coordinates, drawn instead of `shape`
    )


@dataclass
class Style:
    supersample: int = 3
    background: str = "flat"
    background_strength: float = 0.0
    fill: str = "flat"
    outline_width: float = 0.0
    shadow: bool = False
    blur_radius: float = 0.0
    noise_sigma: float = 0.0
    jpeg_quality: int | None = None
    texture_seed: int = 0
    params: dict = field(default_factory=dict)


def sample_style(rng: np.random.Generator) -> Style:
    """Draw a random look; roughly a third of images stay clean."""
    clean = rng.random() < 0.3
    style = Style(
        supersample=int(rng.choice([1, 2, 3, 4])),
        background=str(rng.choice(BACKGROUND_KINDS)),
        background_strength=float(rng.uniform(0.05, 0.18)),
        fill=str(rng.choice(FILL_KINDS)),
        outline_width=float(rng.uniform(1.0, 3.0)),
        shadow=bool(rng.random() < 0.2),
        texture_seed=int(rng.integers(2**31)),
        params={
            "gradient_angle": float(rng.uniform(0, 2 * math.pi)),
            "stripe_period": float(rng.uniform(6, 24)),
            "outline_dark": bool(rng.random() < 0.7),
            "shadow_offset": float(rng.uniform(0.04, 0.1)),
        },
    )
    if not clean:
        style.blur_radius = float(rng.choice([0.0, 0.0, rng.uniform(0.3, 1.2)]))
        style.noise_sigma = float(rng.choice([0.0, rng.uniform(2, 8), rng.uniform(8, 16)]))
        style.jpeg_quality = int(rng.integers(25, 95)) if rng.random() < 0.35 else None
    return style


def jitter_rgb(rng: np.random.Generator, color: str, amount: int = 18) -> tuple[int, int, int]:
    """A random shade of a named colour: one of its base shades plus a small offset."""
    shades = COLORS[color]
    base = np.array(shades[int(rng.integers(len(shades)))], dtype=float)
    scale = rng.uniform(0.9, 1.08)  # lightness
    rgb = base * scale + rng.uniform(-amount, amount, size=3)
    return tuple(int(v) for v in np.clip(rgb, 0, 255))


def unit_shape(shape: str) -> list[tuple[float, float]]:
    """Vertices of a shape centred at the origin that fits in the unit circle."""
    if shape == "square":
        return [(-0.82, -0.82), (0.82, -0.82), (0.82, 0.82), (-0.82, 0.82)]
    if shape == "triangle":
        return [(math.cos(a), math.sin(a) + 0.15) for a in (math.radians(d) for d in (-90, 30, 150))]
    if shape == "star":
        pts = []
        for k in range(10):
            a = math.radians(-90 + 36 * k)
            rad = 1.0 if k % 2 == 0 else 0.45
            pts.append((rad * math.cos(a), rad * math.sin(a) + 0.08))
        return pts
    if shape == "hexagon":
        return [(math.cos(math.radians(60 * k)), math.sin(math.radians(60 * k))) for k in range(6)]
    if shape == "cross":
        w = 0.34
        return [
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
    if shape == "circle":
        return [(math.cos(2 * math.pi * k / 64), math.sin(2 * math.pi * k / 64)) for k in range(64)]
    raise ValueError(f"unknown shape {shape!r}")


def place_points(
    pts: list[tuple[float, float]], cx: float, cy: float, r: float, angle_deg: float
) -> list[tuple[float, float]]:
    """Unit-radius vertices scaled by r, turned by angle_deg and moved to (cx, cy)."""
    t = math.radians(angle_deg)
    c, s = math.cos(t), math.sin(t)
    return [(cx + r * (x * c - y * s), cy + r * (x * s + y * c)) for x, y in pts]


def _smooth_noise(rng: np.random.Generator, h: int, w: int, cells: int) -> np.ndarray:
    """Low-frequency noise in [-1, 1]: a coarse random grid upsampled bicubically."""
    grid = rng.uniform(-1, 1, size=(cells, cells)).astype(np.float32)
    img = Image.fromarray(((grid + 1) * 127.5).astype(np.uint8)).resize((w, h), Image.BICUBIC)
    return np.asarray(img, dtype=np.float32) / 127.5 - 1.0


def _texture(style: Style, h: int, w: int, kind: str, salt: int) -> np.ndarray:
    """A multiplicative lightness field (around 1.0) of the given kind."""
    rng = np.random.default_rng([style.texture_seed, salt])
    k = style.background_strength
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    if kind == "gradient":
        a = style.params.get("gradient_angle", 0.0)
        t = (xx / max(w - 1, 1) - 0.5) * math.cos(a) + (yy / max(h - 1, 1) - 0.5) * math.sin(a)
        return 1.0 + 2 * k * t
    if kind == "noise":
        return 1.0 + k * _smooth_noise(rng, h, w, int(rng.integers(3, 9)))
    if kind == "stripes":
        p = style.params.get("stripe_period", 12.0)
        a = style.params.get("gradient_angle", 0.0)
        return 1.0 + 0.5 * k * np.sin(2 * math.pi * (xx * math.cos(a) + yy * math.sin(a)) / p)
    if kind == "checker":
        p = max(int(style.params.get("stripe_period", 12.0)), 3)
        return 1.0 + 0.4 * k * np.where(((xx // p) + (yy // p)) % 2 == 0, 1.0, -1.0)
    if kind == "vignette":
        d = np.sqrt(((xx / w) - 0.5) ** 2 + ((yy / h) - 0.5) ** 2)
        return 1.0 - 1.2 * k * d
    return np.ones((h, w), np.float32)


def _shade(rgb: tuple[int, int, int], field: np.ndarray) -> np.ndarray:
    return np.asarray(rgb, np.float32)[None, None, :] * field[:, :, None]


def _object_mask(obj: ObjectGeom, w: int, h: int, ss: int, outline: float = 0.0) -> np.ndarray:
    """Coverage of the object in [0, 1]; supersampled for anti-aliased edges."""
    big = Image.new("L", (w * ss, h * ss), 0)
    draw = ImageDraw.Draw(big)
    for part in obj.parts if obj.parts is not None else [unit_shape(obj.shape)]:
        draw.polygon(place_points(part, obj.cx * ss, obj.cy * ss, (obj.radius - outline) * ss, obj.angle), fill=255)
    if ss > 1:
        big = big.resize((w, h), Image.BOX)
    return np.asarray(big, dtype=np.float32) / 255.0


def draw_scene(
    width: int,
    height: int,
    background_rgb: tuple[int, int, int],
    objects: list[ObjectGeom],
    style: Style,
    frame_salt: int = 0,
) -> Image.Image:
    """Render a scene. `frame_salt` varies sensor noise between video frames."""
    w, h = width, height
    canvas = _shade(background_rgb, _texture(style, h, w, style.background, salt=1))
    for i, obj in enumerate(objects):
        if obj.opacity <= 0:
            continue
        mask = _object_mask(obj, w, h, style.supersample) * obj.opacity
        if style.shadow:
            off = style.params.get("shadow_offset", 0.06) * obj.radius * 2
            sh = replace(obj, cx=obj.cx + off, cy=obj.cy + off)
            smask = Image.fromarray((_object_mask(sh, w, h, 1) * 255).astype(np.uint8))
            smask = np.asarray(smask.filter(ImageFilter.GaussianBlur(max(off / 2, 0.5))), np.float32) / 255
            canvas = canvas * (1 - 0.35 * smask[:, :, None] * obj.opacity)
        if style.fill == "gradient":
            fill = _shade(obj.rgb, _texture(style, h, w, "gradient", salt=10 + i))
        elif style.fill == "texture":
            fill = _shade(obj.rgb, _texture(style, h, w, "noise", salt=10 + i))
        else:
            fill = _shade(obj.rgb, np.ones((h, w), np.float32))
        if style.fill == "outline":
            # A darker (or lighter) rim of the same hue around the same-coloured body.
            inner = _object_mask(obj, w, h, style.supersample, outline=style.outline_width) * obj.opacity
            factor = 0.55 if style.params.get("outline_dark", True) else 1.35
            rim = _shade(tuple(int(min(255, c * factor)) for c in obj.rgb), np.ones((h, w), np.float32))
            canvas = canvas * (1 - mask[:, :, None]) + rim * mask[:, :, None]
            canvas = canvas * (1 - inner[:, :, None]) + fill * inner[:, :, None]
        else:
            canvas = canvas * (1 - mask[:, :, None]) + fill * mask[:, :, None]
    img = Image.fromarray(np.clip(canvas, 0, 255).astype(np.uint8), "RGB")
    return degrade(img, style, frame_salt)


def degrade(img: Image.Image, style: Style, salt: int = 0) -> Image.Image:
    """Camera-like degradations: blur, sensor noise, JPEG artefacts."""
    if style.blur_radius > 0:
        img = img.filter(ImageFilter.GaussianBlur(style.blur_radius))
    if style.noise_sigma > 0:
        rng = np.random.default_rng([style.texture_seed, 1000 + salt])
        arr = np.asarray(img, np.float32) + rng.normal(0, style.noise_sigma, size=(img.height, img.width, 3))
        img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB")
    if style.jpeg_quality is not None:
        buf = io.BytesIO()
        img.save(buf, format="JPEG", quality=style.jpeg_quality)
        buf.seek(0)
        img = Image.open(buf).convert("RGB")
    return img
