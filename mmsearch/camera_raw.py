"""Camera RAW files (DNG, CR2, NEF, ARW, ...) as RGB images, through rawpy (LibRaw). Imports
no torch, so decode worker processes stay light.

A RAW file usually carries the camera's own JPEG preview: when it is at least as large as
wanted, it is used as it is (what the camera showed, and far cheaper than demosaicing).
Otherwise the sensor data is demosaiced at half size when half is still large enough. The
sensor's size counts against the pixel limit, as an image's does.
"""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image

from .imageio import DEFAULT_MAX_PIXELS, UnreadableImageError, decode_rgb

RAW_EXTENSIONS = frozenset(
    {".dng", ".cr2", ".cr3", ".nef", ".nrw", ".arw", ".srf", ".sr2", ".raf", ".orf", ".rw2", ".pef", ".srw", ".x3f"}
)
# First bytes of the RAW formats that are not TIFF-based (Fujifilm RAF, Olympus ORF, Panasonic RW2, Sigma X3F).
RAW_MAGIC = (b"FUJIFILMCCD-RAW", b"IIRO", b"IIRS", b"IIU\x00", b"FOVb")
# LibRaw's flip code -> the transpose that shows a preview upright (the demosaiced image is
# turned by LibRaw itself).
_UPRIGHT = {3: Image.Transpose.ROTATE_180, 5: Image.Transpose.ROTATE_90, 6: Image.Transpose.ROTATE_270}


def is_camera_raw(path: str | Path) -> bool:
    return Path(path).suffix.lower() in RAW_EXTENSIONS


def raw_rgb(
    data: bytes, max_side: int | None = None, max_pixels: int = DEFAULT_MAX_PIXELS
) -> tuple[Image.Image, tuple[int, int]]:
    """The upright RGB image of a RAW file's bytes, its shorter side at least max_side where
    the file allows (not shrunk to it: the caller does that), and the width and height of the
    full image as displayed."""
    import rawpy

    try:
        with rawpy.imread(io.BytesIO(data)) as raw:
            width, height = raw.sizes.width, raw.sizes.height
            if width * height > max_pixels:
                raise UnreadableImageError(
                    f"refused as a decompression bomb: {width}x{height} pixels is over the limit of {max_pixels}"
                )
            shown = (height, width) if raw.sizes.flip in (5, 6) else (width, height)
            preview = _preview(raw, max_side, max_pixels)
            if preview is not None:
                return preview, shown
            half = bool(max_side) and min(width, height) // 2 >= max_side
            return Image.fromarray(raw.postprocess(half_size=half, use_camera_wb=True, output_bps=8)), shown
    except UnreadableImageError:
        raise
    except Exception as e:  # LibRawError and its kinds, or a file LibRaw cannot even open
        raise UnreadableImageError(f"cannot decode camera raw: {type(e).__name__}: {e}") from e


def _preview(raw, max_side: int | None, max_pixels: int) -> Image.Image | None:
    import rawpy

    try:
        thumb = raw.extract_thumb()
    except (rawpy.LibRawNoThumbnailError, rawpy.LibRawUnsupportedThumbnailError):
        return None
    if thumb.format == rawpy.ThumbFormat.JPEG:
        try:
            im = decode_rgb(thumb.data, max_pixels=max_pixels)
        except UnreadableImageError:
            return None
    else:
        im = Image.fromarray(thumb.data).convert("RGB")
    if max_side and min(im.size) < max_side:
        return None
    flip = raw.sizes.flip
    return im.transpose(_UPRIGHT[flip]) if flip in _UPRIGHT else im
