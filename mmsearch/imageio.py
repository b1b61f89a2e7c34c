"""The one way mmsearch decodes an image: fully (truncated files fail here), EXIF-oriented,
RGB, under a pixel limit. Imports no torch, so decode worker processes stay light."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

from PIL import Image, ImageOps

DEFAULT_MAX_PIXELS = 100_000_000


class UnreadableImageError(ValueError):
    """The bytes are not a decodable image, or it is over the pixel limit."""


def decode_rgb(
    source: bytes | str | Path | Image.Image, max_pixels: int = DEFAULT_MAX_PIXELS, draft_side: int | None = None
) -> Image.Image:
    """Decode to an RGB image with EXIF orientation applied.

    draft_side: for JPEGs, let the decoder scale down by a power of two while keeping both
    sides at least this large (much faster on camera photos)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            if isinstance(source, Image.Image):
                im = source
            else:
                if isinstance(source, bytes) and not source:
                    raise UnreadableImageError("empty file")
                im = Image.open(io.BytesIO(source) if isinstance(source, bytes) else source)
            if im.width * im.height > max_pixels:
                raise UnreadableImageError(
                    f"refused as a decompression bomb: {im.width}x{im.height} pixels is over the limit of {max_pixels}"
                )
            if draft_side:
                im.draft("RGB", (draft_side, draft_side))
            im.load()
            return ImageOps.exif_transpose(im).convert("RGB")
    except UnreadableImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise UnreadableImageError(f"refused as a decompression bomb: {e}") from e
    except Exception as e:  # PIL raises many types for bad data (OSError, SyntaxError, ValueError, ...)
        raise UnreadableImageError(f"cannot decode image: {type(e).__name__}: {e}") from e


def oriented_size(data: bytes) -> tuple[int, int]:
    """Width and height of an encoded image as displayed (EXIF rotation applied), from its header."""
    with Image.open(io.BytesIO(data)) as im:
        w, h = im.size
        orientation = im.getexif().get(0x0112, 1)
    return (h, w) if orientation in (5, 6, 7, 8) else (w, h)
