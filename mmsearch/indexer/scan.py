"""Find what an index job must do: walk the roots, sniff media type by content, and diff
against the store (new, changed, unchanged, deleted files).

What a folder may hold besides media is left alone without being opened: FIFOs, sockets and
devices (opening a FIFO blocks until someone writes to it), and symlinks that lead out of
every root of the job (their target is not the user's to index). A file whose name is not
UTF-8 (SQL text cannot hold it) is recorded with an error, under its name as display_path
writes it."""

from __future__ import annotations

import logging
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import select

from ..camera_raw import RAW_EXTENSIONS, RAW_MAGIC
from ..storage.files import file_digest
from ..storage.store import Media, Store, Vector

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = {
    ".jpg",
    ".jpeg",
    ".png",
    ".gif",
    ".webp",
    ".bmp",
    ".tif",
    ".tiff",
    ".heic",
    ".heif",
    ".avif",
} | RAW_EXTENSIONS
VIDEO_EXTENSIONS = {".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi"}
# ISO-BMFF brands of still images, and of audio-only files (iTunes music, audiobooks, Flash audio).
IMAGE_BRANDS = (b"heic", b"heix", b"avif", b"mif1", b"crx ")  # crx: Canon CR3 raw
AUDIO_BRANDS = (b"M4A ", b"M4B ", b"M4P ", b"F4A ", b"F4B ")
# A BMP's info header says its own size: 'BM' alone also opens text files ("BMW ...").
BMP_INFO_HEADER_SIZES = (12, 16, 40, 52, 56, 64, 108, 124)


NAME_NOT_UTF8 = "the file name is not valid UTF-8; rename the file to index it"


def display_path(path: str | os.PathLike) -> str:
    """The path as SQL text and JSON can hold it: itself when it is valid UTF-8; else with the
    bytes of its name that are not shown as escapes (b"bad\\xff.png" -> "bad\\\\xff.png")."""
    text = os.fspath(path)
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        pass
    try:
        return os.fsencode(text).decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # a surrogate no file name decodes to (it came from elsewhere)
        return text.encode("utf-8", "backslashreplace").decode("utf-8")


def sniff(path: Path) -> str | None:
    """ "image", "video", or None, from the file's first bytes (never its name). Only a regular
    file is read: it is opened without blocking (a FIFO would wait for a writer) and checked."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0))
    except (OSError, ValueError):
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        head = os.read(fd, 32)
    except OSError:
        return None
    finally:
        os.close(fd)
    if head.startswith(
        (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a", b"II*\x00", b"MM\x00*", *RAW_MAGIC)
    ):
        return "image"
    if head[:2] == b"BM" and len(head) >= 18 and int.from_bytes(head[14:18], "little") in BMP_INFO_HEADER_SIZES:
        return "image"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image"
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        return "image" if brand in IMAGE_BRANDS else None if brand in AUDIO_BRANDS else "video"
    if head.startswith(b"\x1a\x45\xdf\xa3") or (head[:4] == b"RIFF" and head[8:11] == b"AVI"):
        return "video"
    return None


def looks_like_media_name(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS | VIDEO_EXTENSIONS


@dataclass
class Candidate:
    path: Path
    root: Path
    kind: str | None  # sniffed; None: named like media but its content is not
    size: int
    mtime: float
    media_id: int | None = None  # set when the file is already in the store (changed)
    error: str | None = None  # recorded as it is, never decoded (a name SQL cannot hold)

    @property
    def key(self) -> str:
        """The path as stored: display_path (the path itself unless its name is not UTF-8)."""
        return display_path(self.path)


@dataclass
class ScanResult:
    todo: list[Candidate] = field(default_factory=list)  # new or changed: (re)index
    new: int = 0
    changed: int = 0
    unchanged: int = 0
    touched: list[tuple[int, float]] = field(default_factory=list)  # same content, new mtime
    # unchanged, stored before mmsearch read capture metadata (revision 0004) or hashed images (0005)
    unread: list[Candidate] = field(default_factory=list)
    deleted_media_ids: list[int] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def walk(root: Path, skip: set[Path]) -> tuple[list[Path], list[Path]]:
    """Files under root (sorted; hidden entries and the library's own folder skipped), and
    the folders that could not be read."""
    found: list[Path] = []
    unreadable: list[Path] = []

    def on_error(err: OSError) -> None:
        unreadable.append(Path(err.filename))

    for dirpath, dirnames, filenames in os.walk(root, onerror=on_error):
        here = Path(dirpath)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and (here / d).resolve() not in skip)
        found.extend(here / f for f in sorted(filenames) if not f.startswith("."))
    return found, unreadable


def _known_media(
    store: Store, root: Path, space: str, video_space: str | None = None
) -> tuple[dict[str, tuple], set[int]]:
    """Stored files under root (whatever root they were indexed from), and which of them
    have a vector in `space` (videos: and a pooled vector in `video_space`)."""
    prefix = str(root).rstrip(os.sep) + os.sep
    under_root = Media.path.startswith(prefix, autoescape=True) & Media.generated.is_(False)
    with store.session() as s:
        known = {
            p: (mid, size, mtime, digest, err, unread)
            for mid, p, size, mtime, digest, err, unread in s.execute(
                select(
                    Media.id,
                    Media.path,
                    Media.size,
                    Media.mtime,
                    Media.content_hash,
                    Media.error,
                    Media.taken_source.is_(None) | ((Media.kind == "image") & Media.phash.is_(None)),
                ).where(under_root)
            )
        }
        embedded = set(
            s.scalars(select(Vector.media_id).join(Media).where(Vector.space == space, under_root).distinct())
        )
        if video_space is not None:
            pooled = set(s.scalars(select(Vector.media_id).join(Media).where(Vector.space == video_space, under_root)))
            videos = set(s.scalars(select(Media.id).where(Media.kind == "video", under_root)))
            embedded -= videos - pooled
    return known, embedded


def _inside(path: Path, roots: list[Path]) -> bool:
    return any(path == r or path.is_relative_to(r) for r in roots)


def _file_stat(path: Path, roots: list[Path]) -> tuple[os.stat_result | None, str | None]:
    """The stat of what the scan may open, or why it is skipped: 'link' (a symlink leading out
    of every root) or 'special' (not a regular file). Raises OSError when it cannot be looked at."""
    st = path.lstat()
    if stat.S_ISLNK(st.st_mode):
        if not _inside(Path(os.path.realpath(path)), roots):
            return None, "link"
        st = path.stat()
    return (st, None) if stat.S_ISREG(st.st_mode) else (None, "special")


def scan(store: Store, roots: list[Path], skip: set[Path], space: str, video_space: str | None = None) -> ScanResult:
    """What to do under the roots. A stored file is re-embedded when its content changed
    (size/mtime, then hash) or when it has no vector in `space` (the model was switched), or
    for a video, none in `video_space` (the temporal pooling was switched). Special files and
    symlinks out of every root are skipped (counted in the warnings); a stored one is deleted."""
    result = ScanResult()
    real_roots = [Path(os.path.realpath(r)) for r in roots]
    skipped = {"special": 0, "link": 0}
    for root in roots:
        known, embedded = _known_media(store, root, space, video_space)
        files, unreadable = walk(root, skip)
        seen = set()
        for path in files:
            try:
                st, skip_reason = _file_stat(path, real_roots)
            except OSError as e:
                unreadable.append(path)
                result.warnings.append(f"cannot stat {display_path(path)}: {e.strerror or type(e).__name__}")
                continue
            if st is None:
                skipped[skip_reason] += 1
                continue
            kind = sniff(path)
            if kind is None and not looks_like_media_name(path):
                continue  # not media (e.g. a README): not our business
            cand = Candidate(path, root, kind, st.st_size, st.st_mtime)
            key = cand.key
            if key in seen:  # a name shown with escapes that another file has for real
                result.warnings.append(f"two files are both stored as {key}; the second is skipped")
                continue
            seen.add(key)
            if key != str(path):
                cand.error = NAME_NOT_UTF8
            if key not in known:
                result.new += 1
                result.todo.append(cand)
                continue
            media_id, size, mtime, digest, error, unread = known[key]
            same_stat = size == st.st_size and mtime == st.st_mtime
            same_content = same_stat or (size == st.st_size and digest is not None and digest == file_digest(path))
            if same_content and (error is not None or media_id in embedded):
                result.unchanged += 1
                if not same_stat:
                    result.touched.append((media_id, st.st_mtime))
                if error is None and unread:
                    cand.media_id = media_id
                    result.unread.append(cand)
            else:
                cand.media_id = media_id
                result.changed += 1
                result.todo.append(cand)
        result.deleted_media_ids.extend(_deleted(known, seen, unreadable, root, result))
    notes = {
        "special": "skipped special files (FIFOs, sockets, devices)",
        "link": "skipped symlinks that lead out of the indexed folders",
    }
    result.warnings[:0] = [f"{notes[why]}: {n}" for why, n in skipped.items() if n]
    return result


def _deleted(
    known: dict[str, tuple], seen: set[str], unreadable: list[Path], root: Path, result: ScanResult
) -> list[int]:
    """Stored files that are gone, except where the disk could not be read: an unmounted or
    unreadable folder must not wipe its part of the index."""
    if known and not seen:
        result.warnings.append(f"{root} holds none of its {len(known)} indexed files (unmounted?); nothing was deleted")
        return []
    blocked = [display_path(p).rstrip(os.sep) + os.sep for p in unreadable]
    for p in unreadable:
        result.warnings.append(f"cannot read {display_path(p)}; its indexed files are kept")
    return [
        mid
        for p, (mid, *_rest) in known.items()
        if p not in seen and not any(p.startswith(b) or p + os.sep == b for b in blocked)
    ]
