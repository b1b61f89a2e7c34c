"""Training material for the prior and the decoder, taken from an indexed library.

Each indexed (not generated) image contributes its stored image embedding and, where it
has any, its captions: a sidecar text file beside it (`photo.jpg` -> `photo.txt`, one
caption per line) or, for a corpus written by `mmsearch synth`, the manifest's captions.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sqlalchemy import select

from ..datasets.synth import MANIFEST
from ..search.store import Media, Store, Vector, decode_embeddings

log = logging.getLogger(__name__)


@dataclass
class LibraryPairs:
    paths: list[Path]
    image_embeddings: np.ndarray  # (N, dim) float32, unit norm
    captions: list[list[str]]  # per image; empty where it has none

    def __len__(self) -> int:
        return len(self.paths)

    def captioned(self) -> "LibraryPairs":
        keep = [k for k, c in enumerate(self.captions) if c]
        return LibraryPairs([self.paths[k] for k in keep], self.image_embeddings[keep], [self.captions[k] for k in keep])


class CaptionFinder:
    """Captions of an image file: its sidecar .txt, else its synth manifest entry.

    Parsed manifests are kept (a 50,000-image one is 32 MB of JSON, seconds to read) and read
    again only when the file changes, so one finder can serve a long-running process."""

    def __init__(self):
        # folder -> (the manifest's (mtime_ns, size) when read, or None when absent; its table)
        self._manifests: dict[Path, tuple[tuple[int, int] | None, dict[str, list[str]]]] = {}

    def _manifest(self, folder: Path) -> dict[str, list[str]]:
        path = folder / MANIFEST
        try:
            stat = path.stat()
            version = (stat.st_mtime_ns, stat.st_size)
        except OSError:
            version = None
        cached = self._manifests.get(folder)
        if cached is not None and cached[0] == version:
            return cached[1]
        table: dict[str, list[str]] = {}
        if version is not None:
            try:
                for item in json.loads(path.read_text())["items"]:
                    table[str((folder / item["file"]).resolve())] = item.get("captions") or [item["caption"]]
            except (OSError, ValueError, KeyError, TypeError) as exc:
                log.warning("ignoring unreadable manifest %s: %s", path, exc)
        self._manifests[folder] = (version, table)
        return table

    def __call__(self, image: Path, root: Path | None) -> list[str]:
        sidecar = image.with_suffix(".txt")
        if sidecar.is_file():
            return [line.strip() for line in sidecar.read_text(errors="replace").splitlines() if line.strip()]
        # A synth corpus keeps its manifest at its top folder, which may sit above the file.
        folder = image.parent
        while True:
            captions = self._manifest(folder).get(str(image.resolve()))
            if captions:
                return captions
            if root is None or folder == root or folder == folder.parent or not folder.is_relative_to(root):
                return []
            folder = folder.parent


def library_pairs(store: Store, space: str) -> LibraryPairs:
    """Every indexed, non-generated image of `space` with its embedding and captions."""
    with store.session() as s:
        rows = s.execute(
            select(Media.path, Media.root, Vector.dim, Vector.embedding)
            .join(Vector, Vector.media_id == Media.id)
            .where(Vector.space == space, Vector.kind == "image", Media.generated.is_(False), Media.error.is_(None))
            .order_by(Media.id)
        ).all()
    if not rows:
        return LibraryPairs([], np.zeros((0, 0), np.float32), [])
    find = CaptionFinder()
    paths = [Path(r[0]) for r in rows]
    captions = [find(p, Path(r[1]) if r[1] else None) for p, r in zip(paths, rows)]
    vectors = decode_embeddings([r[3] for r in rows], rows[0][2])
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return LibraryPairs(paths, vectors, captions)
