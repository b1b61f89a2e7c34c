"""Robust image decoding for index jobs; runs in worker processes, so it imports no torch.

A file is read once: its bytes give the content hash and the pixels. Unreadable files
(empty, truncated, corrupt, over the pixel limit) come back with an error, never raise.
"""

from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps

DEFAULT_MAX_PIXELS = 100_000_000  # larger images are refused as decompression bombs
DEFAULT_MAX_SIDE = 512  # decoded images are downscaled to this before the encoder's preprocess


@dataclass
class Decoded:
    path: str
    content_hash: str | None = None
    pixels: np.ndarray | None = None  # uint8 HxWx3, longest side <= max_side
    width: int | None = None  # of the original, after EXIF orientation
    height: int | None = None
    error: str | None = None


def decode_image(path: str, max_side: int = DEFAULT_MAX_SIDE, max_pixels: int = DEFAULT_MAX_PIXELS) -> Decoded:
    out = Decoded(path)
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        out.error = f"cannot read: {e}"
        return out
    out.content_hash = hashlib.sha256(data).hexdigest()
    if not data:
        out.error = "empty file"
        return out
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            Image.MAX_IMAGE_PIXELS = max_pixels
            with Image.open(io.BytesIO(data)) as im:
                if im.width * im.height > max_pixels:
                    raise Image.DecompressionBombError(f"{im.width}x{im.height} pixels is over the limit of {max_pixels}")
                im.draft("RGB", (max_side, max_side))  # JPEG: decode at reduced scale, much faster
                im = ImageOps.exif_transpose(im)
                im.load()
                full_w, full_h = im.size
                rgb = im.convert("RGB")
                rgb.thumbnail((max_side, max_side), Image.BICUBIC)
                out.pixels = np.asarray(rgb, dtype=np.uint8)
        out.width, out.height = _original_size(data, full_w, full_h)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        out.error = f"refused as a decompression bomb: {e}"
    except Exception as e:  # PIL raises many types for bad data; all mean "unreadable"
        out.error = f"cannot decode image: {type(e).__name__}: {e}"
    return out


def _original_size(data: bytes, drafted_w: int, drafted_h: int) -> tuple[int, int]:
    """Size before draft() scaling, with EXIF orientation applied."""
    with Image.open(io.BytesIO(data)) as im:
        w, h = im.size
        orientation = im.getexif().get(0x0112, 1)
    return (h, w) if orientation in (5, 6, 7, 8) else (w, h)
