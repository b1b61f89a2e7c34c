"""Serving media files safely: only from inside the library's roots, never beyond them."""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image

from ..camera_raw import RAW_MAGIC, is_camera_raw, raw_rgb
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


# ISO-BMFF brands (bytes 8-12) of still images and of audio-only files; any other brand is a video.
IMAGE_BRANDS = {
    b"heic": "image/heic",
    b"heix": "image/heic",
    b"mif1": "image/heif",
    b"avif": "image/avif",
    b"crx ": "image/x-canon-cr3",
}
RAW_TYPES = ("image/tiff", "image/x-canon-cr3", "image/x-raw")  # what camera RAW files sniff as
AUDIO_BRANDS = (b"M4A ", b"M4B ", b"M4P ", b"F4A ", b"F4B ")
BMP_INFO_HEADER_SIZES = (12, 16, 40, 52, 56, 64, 108, 124)  # 'BM' alone also opens text ("BMW ...")


def content_type_of(path: Path) -> str | None:
    """The media type of a file from its first bytes, never its name (the kinds index jobs
    sniff, named exactly); None for a file that is not media."""
    with path.open("rb") as f:
        head = f.read(64)
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if head.startswith((b"II*\x00", b"MM\x00*")):
        return "image/tiff"
    if head.startswith(RAW_MAGIC):
        return "image/x-raw"
    if head[:2] == b"BM" and len(head) >= 18 and int.from_bytes(head[14:18], "little") in BMP_INFO_HEADER_SIZES:
        return "image/bmp"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if head[:4] == b"RIFF" and head[8:11] == b"AVI":
        return "video/x-msvideo"
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in AUDIO_BRANDS:
            return None
        return IMAGE_BRANDS.get(brand) or ("video/quicktime" if brand == b"qt  " else "video/mp4")
    if head.startswith(b"\x1a\x45\xdf\xa3"):  # EBML: Matroska, or WebM when its doctype says so
        return "video/webm" if b"webm" in head else "video/x-matroska"
    return None


def thumbnail_jpeg(path: Path, max_side: int = 256) -> bytes:
    """A JPEG of at most max_side pixels; raises UnreadableImageError for a file that no longer decodes."""
    if is_camera_raw(path) and content_type_of(path) in RAW_TYPES:
        return _jpeg(raw_rgb(path.read_bytes(), max_side)[0], max_side)
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
