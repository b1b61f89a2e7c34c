"""The one way mmsearch decodes an image: fully (truncated files fail here), EXIF-oriented,
RGB, under a pixel limit. Imports no torch, so decode worker processes stay light.

`decode_rgb` does it in one call; `open_image` (the header only) and `load_rgb` (the pixels)
do it in two, so that a caller can first see how much memory the pixels will take. With
`max_side`, a large image is shrunk while it is decoded: a JPEG is drafted (scaled down by
the decoder), other formats are reduced in bands of rows, so that next to the decoded image
only a band and the small result are ever held."""

from __future__ import annotations

import io
import os
import warnings
from contextlib import contextmanager
from pathlib import Path

import pillow_heif
from PIL import ExifTags, Image

pillow_heif.register_heif_opener()  # HEIC/HEIF (iPhone photos); AVIF is Pillow's own

DEFAULT_MAX_PIXELS = 100_000_000
# PIL allocates pixels in blocks of at most this many bytes. Blocks over glibc's largest mmap
# threshold (32 MiB) are mapped and unmapped on their own, so a huge image's memory goes back
# to the system when it is freed; with PIL's default 16 MiB blocks it stayed in the decoding
# thread's malloc arena (~330 MB resident per thread after one 81-megapixel decode, per thread
# that ever decoded one). Smaller images are allocated at their own size either way.
PIL_BLOCK_BYTES = 64 * 1024 * 1024
if "PILLOW_BLOCK_SIZE" not in os.environ:  # an operator's own setting wins
    Image.core.set_block_size(PIL_BLOCK_BYTES)
BAND_ROWS = 256  # rows converted to RGB at a time while shrinking an image of another mode
# EXIF orientation -> the transpose that displays it upright (as PIL's ImageOps.exif_transpose).
_UPRIGHT = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


class UnreadableImageError(ValueError):
    """The bytes are not a decodable image, or it is over the pixel limit."""


def decode_rgb(
    source: bytes | str | Path | Image.Image,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    draft_side: int | None = None,
    max_side: int | None = None,
) -> Image.Image:
    """Decode to an RGB image with EXIF orientation applied.

    draft_side: for JPEGs, let the decoder scale down by a power of two while keeping both
    sides at least this large (much faster on camera photos).
    max_side: shrink (bicubic) so that the shorter side is at most this, drafting JPEGs to it."""
    return load_rgb(open_image(source, max_pixels, draft_side or max_side), max_side)


def open_image(
    source: bytes | str | Path | Image.Image, max_pixels: int = DEFAULT_MAX_PIXELS, draft_side: int | None = None
) -> Image.Image:
    """The image with its header read and its pixels not yet decoded (its size is the size it
    will decode to, after the JPEG draft); refuses an image over max_pixels."""
    with _decoding():
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
        return im


def load_rgb(im: Image.Image, max_side: int | None = None) -> Image.Image:
    """Decode an image from open_image to RGB, upright, its shorter side at most max_side."""
    with _decoding():
        im.load()
        orientation = im.getexif().get(ExifTags.Base.Orientation, 1)
        rgb = _shrunk_rgb(im, max_side) if max_side and min(im.size) > max_side else im.convert("RGB")
        rgb.info = {}  # pixels only: an orientation left in EXIF or XMP would turn it again when decoded again
        return rgb.transpose(_UPRIGHT[orientation]) if orientation in _UPRIGHT else rgb


def peak_bytes(im: Image.Image, max_side: int | None = None) -> int:
    """About the most memory load_rgb(im, max_side) holds at once: the decoded pixels (PIL
    holds most modes at 4 bytes a pixel) and, unless the image is reduced band by band, an RGB
    copy of them."""
    pixels = im.width * im.height
    return pixels * 4 if _reduce_factor(im, max_side) >= 2 else pixels * 8


def _reduce_factor(im: Image.Image, max_side: int | None) -> int:
    # A whole factor to box-reduce by while at least twice the target is left (as PIL's thumbnail does).
    return min(im.size) // (2 * max_side) if max_side and min(im.size) > max_side else 1


def _shrunk_rgb(im: Image.Image, max_side: int) -> Image.Image:
    # Box-reduce in bands converted one at a time, then resample the rest bicubically.
    factor = _reduce_factor(im, max_side)
    if factor >= 2:
        width, height = im.size
        reduced = Image.new("RGB", (-(-width // factor), -(-height // factor)))
        band = factor * max(1, BAND_ROWS // factor)
        for top in range(0, height, band):
            part = im.crop((0, top, width, min(height, top + band))).convert("RGB")
            reduced.paste(part.reduce(factor), (0, top // factor))
        im = reduced
    elif im.mode != "RGB":
        im = im.convert("RGB")
    scale = max_side / min(im.size)
    size = (max(1, round(im.width * scale)), max(1, round(im.height * scale)))
    return im.resize(size, Image.Resampling.BICUBIC)


@contextmanager
def _decoding():
    """Turns PIL's many failures of bad data into UnreadableImageError."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            yield
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
