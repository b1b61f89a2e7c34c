"""Training material for the prior and the decoder, taken from an indexed library.

Each indexed (not generated) image contributes its stored image embedding and, where it
has any, its captions: a sidecar text file beside it (`photo.jpg` -> `photo.txt`, one
caption per line) or, for a corpus written by `mmsearch synth`, the manifest's captions.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sqlalchemy import select

from ..storage.captions import CaptionFinder
from ..storage.store import Media, Store, Vector, decode_embeddings


@dataclass
class LibraryPairs:
    paths: list[Path]
    image_embeddings: np.ndarray  # (N, dim) float32, unit norm
    captions: list[list[str]]  # per image; empty where it has none

    def __len__(self) -> int:
        return len(self.paths)

    def captioned(self) -> "LibraryPairs":
        keep = [k for k, c in enumerate(self.captions) if c]
        return LibraryPairs(
            [self.paths[k] for k in keep], self.image_embeddings[keep], [self.captions[k] for k in keep]
        )


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
