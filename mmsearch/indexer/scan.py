"""Find what an index job must do: walk the roots, sniff media type by content, and diff
against the store (new, changed, unchanged, deleted files)."""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import select

from ..search.store import Media, Store

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".gif", ".webp", ".bmp", ".tif", ".tiff", ".heic"}
VIDEO_EXTENSIONS = {".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi"}


def sniff(path: Path) -> str | None:
    """"image", "video", or None, from the file's first bytes (never its name)."""
    try:
        with path.open("rb") as f:
            head = f.read(32)
    except OSError:
        return None
    if head.startswith((b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a", b"BM", b"II*\x00", b"MM\x00*")):
        return "image"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image"
    if head[4:8] == b"ftyp":
        return "image" if head[8:12] in (b"heic", b"heix", b"avif", b"mif1") else "video"
    if head.startswith(b"\x1a\x45\xdf\xa3") or (head[:4] == b"RIFF" and head[8:11] == b"AVI"):
        return "video"
    return None


def looks_like_media_name(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS | VIDEO_EXTENSIONS


def file_hash(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass
class Candidate:
    path: Path
    root: Path
    kind: str | None  # sniffed; None: named like media but its content is not
    size: int
    mtime: float
    media_id: int | None = None  # set when the file is already in the store (changed)


@dataclass
class ScanResult:
    todo: list[Candidate] = field(default_factory=list)  # new or changed: (re)index
    new: int = 0
    changed: int = 0
    unchanged: int = 0
    touched: list[tuple[int, float]] = field(default_factory=list)  # same content, new mtime
    deleted_media_ids: list[int] = field(default_factory=list)


def walk(root: Path, skip: set[Path]) -> list[Path]:
    """Files under root, sorted, skipping hidden folders and the library's own folder."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and (here / d).resolve() not in skip)
        found.extend(here / f for f in sorted(filenames) if not f.startswith("."))
    return found


def scan(store: Store, roots: list[Path], skip: set[Path]) -> ScanResult:
    result = ScanResult()
    for root in roots:
        with store.session() as s:
            known = {m.path: (m.id, m.size, m.mtime, m.content_hash) for m in s.scalars(select(Media).where(Media.root == str(root), Media.generated.is_(False)))}
        seen = set()
        for path in walk(root, skip):
            try:
                st = path.stat()
            except OSError:
                continue
            kind = sniff(path)
            if kind is None and not looks_like_media_name(path):
                continue  # not media (e.g. a README): not our business
            key = str(path)
            seen.add(key)
            cand = Candidate(path, root, kind, st.st_size, st.st_mtime)
            if key not in known:
                result.new += 1
                result.todo.append(cand)
                continue
            media_id, size, mtime, digest = known[key]
            if size == st.st_size and mtime == st.st_mtime:
                result.unchanged += 1
            elif size == st.st_size and digest and digest == file_hash(path):
                result.unchanged += 1
                result.touched.append((media_id, st.st_mtime))
            else:
                cand.media_id = media_id
                result.changed += 1
                result.todo.append(cand)
        result.deleted_media_ids.extend(mid for p, (mid, *_rest) in known.items() if p not in seen)
    return result
