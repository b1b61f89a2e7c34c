"""Image decoding for index jobs; runs in worker processes, so it imports no torch.

A file is read once: its bytes give the content hash and the pixels. Unreadable files
(empty, truncated, corrupt, over the pixel limit) come back with an error, never raise.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from ..camera_raw import is_camera_raw, raw_rgb
from ..imageio import DEFAULT_MAX_PIXELS, UnreadableImageError, decode_rgb, oriented_size
from ..perceptual_hash import perceptual_hash
from ..storage.files import digest
from .capture import Capture, image_capture

# Decoded images are downscaled so their shorter side is at most this (encoders need far
# less); panoramas keep their shape instead of being squeezed into a square box.
DEFAULT_MAX_SIDE = 512


@dataclass
class Decoded:
    path: str
    content_hash: str | None = None
    pixels: np.ndarray | None = None  # uint8 HxWx3, shorter side <= max_side
    width: int | None = None  # of the original, as displayed
    height: int | None = None
    capture: Capture = field(default_factory=Capture)  # EXIF: when, with what, where
    phash: str | None = None  # perceptual_hash of the upright image
    error: str | None = None


def decode_image(path: str, max_side: int = DEFAULT_MAX_SIDE, max_pixels: int = DEFAULT_MAX_PIXELS) -> Decoded:
    out = Decoded(path)
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        out.error = f"cannot read: {e}"
        return out
    out.content_hash = digest(data)
    try:
        if is_camera_raw(path):
            rgb, (out.width, out.height) = raw_rgb(data, max_side, max_pixels)
        else:
            rgb = decode_rgb(data, max_pixels=max_pixels, draft_side=max_side)
            out.width, out.height = oriented_size(data)
        out.capture = image_capture(data)
    except UnreadableImageError as e:
        out.error = str(e)
        return out
    short = min(rgb.size)
    if short > max_side:
        scale = max_side / short
        rgb = rgb.resize((max(1, round(rgb.width * scale)), max(1, round(rgb.height * scale))), Image.BICUBIC)
    out.phash = perceptual_hash(rgb)
    out.pixels = np.asarray(rgb, dtype=np.uint8)
    return out
