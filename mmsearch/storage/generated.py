"""Generated images become library media: a PNG under <library>/generated, a media row
flagged `generated` with how it was made, and an image vector in the index, so the next
identical query finds it instead of generating again."""

from __future__ import annotations

import io
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from sqlalchemy import select

from .files import atomic_write, digest
from .index_set import IndexSet
from .store import Media, Store, Vector, decode_embeddings, encode_embedding

GENERATED_DIR = "generated"


@dataclass
class GenerationParams:
    prompt: str
    backend: str
    seed: int
    steps: int
    guidance: float | None  # None only from a generator that does not say its default
    sampler: str
    source: dict | None = None  # variations and edits: the media ids and texts they came from


def save_generated(
    store: Store, indexes: IndexSet, encoder, library_dir: Path, images: list[Image.Image], params: GenerationParams
) -> list[int]:
    """Write, record and index the images; returns their media ids (in order)."""
    folder = library_dir / GENERATED_DIR
    folder.mkdir(parents=True, exist_ok=True)
    paths, hashes = [], []
    for image in images:
        buf = io.BytesIO()
        image.save(buf, format="PNG")
        data = buf.getvalue()
        content_hash = digest(data)
        path = folder / f"{content_hash[:24]}.png"  # by content: saving the same image twice is one file
        if not path.exists():
            atomic_write(path, data)
        paths.append(path)
        hashes.append(content_hash)
    vectors = encoder.embed_images(images)
    ids, new_vectors = [], []
    with store.session() as s:
        for image, path, content_hash, vec in zip(images, paths, hashes, vectors):
            media = s.scalars(select(Media).where(Media.path == str(path))).first()
            if media is None:
                stat = path.stat()
                media = Media(
                    path=str(path),
                    root=str(folder),
                    kind="image",
                    size=stat.st_size,
                    mtime=stat.st_mtime,
                    content_hash=content_hash,
                    width=image.width,
                    height=image.height,
                    generated=True,
                    generation=asdict(params) | {"created_at": time.time()},
                )
                s.add(media)
                s.flush()
            # A drawing stored under another model has no vector in this one's space yet.
            has_vector = s.scalars(
                select(Vector.id).where(
                    Vector.media_id == media.id, Vector.kind == "image", Vector.space == encoder.space
                )
            ).first()
            if has_vector is None:
                row = Vector(
                    media_id=media.id,
                    kind="image",
                    space=encoder.space,
                    dim=encoder.dim,
                    embedding=encode_embedding(vec),
                )
                s.add(row)
                s.flush()
                new_vectors.append(row)
            ids.append(media.id)
        added = [(r.id, r.embedding) for r in new_vectors]
    if added:
        indexes.add(
            "image", np.asarray([i for i, _ in added], np.int64), decode_embeddings([e for _, e in added], encoder.dim)
        )
        indexes.checkpoint()
    return ids


def find_generated(store: Store, prompt: str, backend: str, space: str) -> list[int]:
    """Media ids of images already generated for exactly this prompt by this backend and
    embedded in `space` (after a model switch, older drawings are not found until drawn again)."""
    record = Media.generation
    with store.session() as s:
        rows = s.execute(
            select(Media.id, Media.path)
            .join(Vector, Vector.media_id == Media.id)
            .where(
                Media.generated.is_(True),
                Media.error.is_(None),
                record["prompt"].as_string() == prompt,
                record["backend"].as_string() == backend,
                record["source"].as_string().is_(None),
                Vector.kind == "image",
                Vector.space == space,
            )
            .order_by(Media.id)
        ).all()
    return [media_id for media_id, path in rows if Path(path).is_file()]


class NotGeneratedError(ValueError):
    """A request to delete media the library did not make (files from the user's folders)."""


def delete_generated(store: Store, indexes: IndexSet, library_dir: Path, media_ids: list[int]) -> list[int]:
    """Take generated images out of the library: their rows, vectors and PNG files (only
    files inside <library>/generated are ever deleted). Returns the ids deleted; ids of no
    media are skipped. Media from the user's folders are refused, all or nothing: they leave
    the library when their files do (the next index job)."""
    media = store.media_by_id(media_ids)
    indexed = sorted(i for i, m in media.items() if not m.generated)
    if indexed:
        raise NotGeneratedError(
            f"media {', '.join(map(str, indexed))} came from your folders, not from generation: "
            "they leave the library when their files are deleted and the folder is indexed again"
        )
    ids = sorted(media)
    with store.session() as s:
        removed = store.delete_media(s, ids)
    indexes.remove(removed)
    indexes.checkpoint()
    folder = (library_dir / GENERATED_DIR).resolve()
    for m in media.values():
        path = Path(m.path).resolve()
        if path.is_relative_to(folder):
            path.unlink(missing_ok=True)
    return ids
