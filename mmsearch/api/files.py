"""Serving media files safely: only from inside the library's roots, never beyond them."""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image

from ..encoders.video import frame_at
from ..imageio import decode_rgb
from ..storage.files import atomic_write


class OutsideRootsError(PermissionError):
    pass


def safe_path(path: str, roots: list[Path]) -> Path:
    """The real path of `path` if it lies inside one of `roots` after resolving `..` and
    symlinks; raises OutsideRootsError or FileNotFoundError otherwise."""
    real = Path(path).resolve(strict=True)
    if not real.is_file():
        raise FileNotFoundError(path)
    for root in roots:
        if real.is_relative_to(root.resolve()):
            return real
    raise OutsideRootsError(f"{path} is outside the library's roots")


def thumbnail_jpeg(path: Path, max_side: int = 256) -> bytes:
    """A JPEG of at most max_side pixels; raises UnreadableImageError for a file that no longer decodes."""
    return _jpeg(decode_rgb(path, draft_side=max_side), max_side)


def video_thumbnail_jpeg(path: Path, t: float, max_side: int = 256) -> bytes:
    """A JPEG of the frame shown at t seconds; raises UnreadableVideoError."""
    return _jpeg(Image.fromarray(frame_at(str(path), t, side=max_side)), max_side)


class ThumbnailCache:
    """Thumbnails kept as JPEG files named <media id>-<content hash>[-t<tenths>].jpg: a changed
    file gets a new name, and a video's frames are kept per tenth of a second."""

    def __init__(self, folder: Path):
        self.folder = folder

    def jpeg(self, media, path: Path, t: float | None = None) -> bytes:
        """The thumbnail of `media` (whose file is `path`; for a video, its frame at t seconds),
        made on first request; raises UnreadableImageError or UnreadableVideoError."""
        suffix = f"-t{round(t * 10)}" if media.kind == "video" else ""
        cache = self.folder / f"{media.id}-{(media.content_hash or 'x')[:16]}{suffix}.jpg"
        if not cache.is_file():
            jpeg = thumbnail_jpeg(path) if media.kind == "image" else video_thumbnail_jpeg(path, t)
            cache.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(cache, jpeg)  # a private temp name per writer: concurrent requests never clash
        return cache.read_bytes()

    def forget(self, media_id: int) -> None:
        """Drop the cached thumbnails of a media item that left the library."""
        for thumbnail in self.folder.glob(f"{media_id}-*.jpg"):
            thumbnail.unlink(missing_ok=True)


def _jpeg(im: Image.Image, max_side: int) -> bytes:
    im.thumbnail((max_side, max_side))
    buf = io.BytesIO()
    im.save(buf, format="JPEG", quality=85)
    return buf.getvalue()
