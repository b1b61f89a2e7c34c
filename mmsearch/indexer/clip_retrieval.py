"""Importing embeddings made elsewhere: the output of clip-retrieval's `inference`, and
LAION's released embeddings, which share its layout:

    FOLDER/img_emb/img_emb_N.npy          (n, d) float16 or float32, one row per image
    FOLDER/metadata/metadata_N.parquet    n rows in the same order: image_path, caption, ...
    FOLDER/text_emb/text_emb_N.npy        (optional; caption embeddings, not imported)

A pipeline of small stages: read_layout checks the whole folder (headers only) before
anything is written; iter_chunks streams it file by file in chunks of CHUNK_ROWS (the .npy
memory-mapped, the parquet read batch by batch), so memory stays bounded whatever the size;
write_chunk commits a chunk's media rows, vectors and the job's counters in one transaction;
build_index makes the space's FAISS index from SQL at the end, streaming too.

Resuming: a media path is unique, and a row whose path the library already holds is
skipped (counted unchanged). A killed import, run again, skips what its chunks committed
and goes on; nothing is imported twice. Each item's path is its image_path when that is a
URL, else the `url` column's URL (LAION: image_path is a key inside its tar shards), else
the image_path, made absolute against FOLDER. Its caption and size are kept; the other
metadata columns have no place in the media table yet.
"""

from __future__ import annotations

import logging
import math
import os
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sqlalchemy import insert, select

from ..config import Settings
from ..storage.index_backends import open_index_set
from ..storage.index_set import IndexSet
from ..storage.spaces import find_space
from ..storage.store import Job, JobError, Media, Store, Vector
from .job_runs import JobRunner, ProgressFn

log = logging.getLogger(__name__)

CHUNK_ROWS = 16_384  # rows read, checked and committed together
SQL_CHUNK = 900  # paths bound in one IN (...): SQLite limits a statement's parameters
INDEX_TUNING_WAIT_S = 3600.0  # the job waits this long for its index's tuning (else the next open goes on)
EMB_NAME = re.compile(r"img_emb_(\d+)\.npy")
FORMAT_HINT = "expected FOLDER/img_emb/img_emb_N.npy beside FOLDER/metadata/metadata_N.parquet"
TASK = "import"


class ImportFormatError(ValueError):
    """The folder is not a clip-retrieval embeddings folder, or its files disagree."""


@dataclass(frozen=True)
class Part:
    """One numbered pair of files: N's vectors and their metadata, row for row."""

    number: int
    vectors: Path
    metadata: Path
    rows: int


@dataclass(frozen=True)
class Layout:
    folder: Path
    parts: list[Part]
    dim: int

    @property
    def rows(self) -> int:
        return sum(p.rows for p in self.parts)


def _parquet():
    import pyarrow.parquet as pq  # only imports need it

    return pq


def _vectors_shape(path: Path) -> tuple[int, int]:
    try:
        arr = np.load(path, mmap_mode="r")
    except (OSError, ValueError) as e:
        raise ImportFormatError(f"{path} is not a readable .npy file: {e}") from e
    if arr.ndim != 2 or arr.dtype.kind != "f":
        raise ImportFormatError(f"{path} holds a {arr.dtype} array of shape {arr.shape}; expected (n, d) floats")
    return int(arr.shape[0]), int(arr.shape[1])


def _metadata_rows(path: Path) -> int:
    import pyarrow as pa

    try:
        meta = _parquet().ParquetFile(path)
    except (OSError, pa.ArrowException) as e:
        raise ImportFormatError(f"{path} is not a readable parquet file: {e}") from e
    names = set(meta.schema_arrow.names)
    if not names & {"image_path", "url"}:
        raise ImportFormatError(f"{path} has neither an image_path nor a url column (it has {sorted(names)})")
    return meta.metadata.num_rows


def read_layout(folder: Path) -> Layout:
    """The folder's numbered parts, in order of N, every pair checked (headers only): each
    .npy a 2-D float array of one dimension, each beside a parquet of as many rows."""
    emb_dir, meta_dir = folder / "img_emb", folder / "metadata"
    if not emb_dir.is_dir():
        raise ImportFormatError(f"{folder} has no img_emb folder: not clip-retrieval's output ({FORMAT_HINT})")
    found = sorted(
        ((int(m.group(1)), m.group(1), p) for p in emb_dir.iterdir() if (m := EMB_NAME.fullmatch(p.name))),
        key=lambda t: t[0],
    )
    if not found:
        raise ImportFormatError(f"{emb_dir} holds no img_emb_N.npy file ({FORMAT_HINT})")
    parts, dims = [], set()
    for number, digits, vectors in found:
        metadata = meta_dir / f"metadata_{digits}.parquet"
        if not metadata.is_file():
            raise ImportFormatError(f"{vectors.name} has no metadata file: {metadata} is missing ({FORMAT_HINT})")
        rows, dim = _vectors_shape(vectors)
        meta_rows = _metadata_rows(metadata)
        if meta_rows != rows:
            raise ImportFormatError(
                f"{metadata.name} has {meta_rows} rows but {vectors.name} has {rows} vectors: "
                "they must match row for row"
            )
        dims.add(dim)
        parts.append(Part(number, vectors, metadata, rows))
    if len(dims) > 1:
        raise ImportFormatError(f"the img_emb files of {folder} disagree on the dimension: {sorted(dims)}")
    numbers = {p.number for p in parts}
    strays = sorted(
        p.name
        for p in (meta_dir.iterdir() if meta_dir.is_dir() else [])
        if (m := re.fullmatch(r"metadata_(\d+)\.parquet", p.name)) and int(m.group(1)) not in numbers
    )
    if strays:
        raise ImportFormatError(f"{', '.join(strays)} of {meta_dir} have no img_emb file: an incomplete folder?")
    return Layout(folder, parts, dims.pop())


# -- reading ---------------------------------------------------------------------------------
@dataclass
class Chunk:
    """Rows [start, start + len) of one part: their vectors (float32, as stored) and metadata."""

    part: Part
    start: int
    vectors: np.ndarray
    paths: list[str | None]
    captions: list[str | None]
    widths: list[int | None]
    heights: list[int | None]


def _is_url(value) -> bool:
    return isinstance(value, str) and value.lower().startswith(("http://", "https://"))


def media_path(image_path, url, folder: Path) -> str | None:
    """An item's path in the library: a URL where the row has one (image_path first), else
    image_path, absolute (relative ones are taken from FOLDER); None for neither."""
    if _is_url(image_path):
        return image_path
    if _is_url(url):
        return url
    if not isinstance(image_path, str) or not image_path.strip():
        return None
    return os.path.normpath(os.path.join(folder, image_path))


def _text(value) -> str | None:
    return value if isinstance(value, str) and value.strip() else None


def _size(value) -> int | None:
    """A positive whole pixel count, else None (parquet from pandas writes NaN for missing)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        return None
    return int(value)


def _column(table: dict, *names: str) -> list:
    """The first of the named columns the batch has, else Nones."""
    rows = len(next(iter(table.values()))) if table else 0
    return next((table[n] for n in names if n in table), [None] * rows)


WANTED_COLUMNS = ("image_path", "url", "caption", "original_width", "original_height", "width", "height")


def iter_chunks(layout: Layout, rows: int = CHUNK_ROWS) -> Iterator[Chunk]:
    """The folder's rows, part by part in order of N, a chunk at a time (never a whole file)."""
    for part in layout.parts:
        vectors = np.load(part.vectors, mmap_mode="r")
        meta = _parquet().ParquetFile(part.metadata)
        columns = [c for c in WANTED_COLUMNS if c in meta.schema_arrow.names]
        start = 0
        for batch in meta.iter_batches(batch_size=rows, columns=columns):
            table = batch.to_pydict()
            n = batch.num_rows
            yield Chunk(
                part,
                start,
                np.array(vectors[start : start + n], dtype=np.float32),  # a copy: no view of the map kept
                [media_path(p, u, layout.folder) for p, u in zip(_column(table, "image_path"), _column(table, "url"))],
                [_text(c) for c in _column(table, "caption")],
                [_size(w) for w in _column(table, "original_width", "width")],
                [_size(h) for h in _column(table, "original_height", "height")],
            )
            start += n


# -- writing ---------------------------------------------------------------------------------
def unit_rows(vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(L2-normalised rows, which rows can be: finite and not zero)."""
    norms = np.linalg.norm(vectors, axis=1)
    good = np.isfinite(norms) & (norms > 1e-12)
    return vectors / np.where(good, norms, 1.0)[:, None], good


def known_paths(store: Store, paths: list[str]) -> set[str]:
    """The paths the library already holds a media row of."""
    found: set[str] = set()
    with store.session() as s:
        for start in range(0, len(paths), SQL_CHUNK):
            found.update(s.scalars(select(Media.path).where(Media.path.in_(paths[start : start + SQL_CHUNK]))))
    return found


def write_chunk(store: Store, job_id: int, chunk: Chunk, root: Path, space: str, dim: int) -> dict[str, int]:
    """One transaction: the chunk's new media rows and their vectors, error rows for rows that
    cannot be imported, and the job's counters. Returns the counts {new, unchanged, errors}."""
    unit, good = unit_rows(chunk.vectors)
    errors: list[tuple[str, str]] = []
    fresh: dict[str, int] = {}  # path -> row in the chunk (a path repeated in a chunk: its first row)
    repeated = 0
    for i, path in enumerate(chunk.paths):
        if path is None:
            errors.append((f"{chunk.part.metadata.name} row {chunk.start + i}", "no image_path or url"))
        elif not good[i]:
            errors.append((path, "its vector is zero or not finite"))
        elif path in fresh:
            repeated += 1
        else:
            fresh[path] = i
    held = known_paths(store, list(fresh))
    new = [(path, i) for path, i in fresh.items() if path not in held]
    with store.session() as s:
        if new:
            media_ids = s.scalars(
                insert(Media).returning(Media.id, sort_by_parameter_order=True),
                [
                    {
                        "path": path,
                        "root": str(root),
                        "kind": "image",
                        "caption": chunk.captions[i],
                        "width": chunk.widths[i],
                        "height": chunk.heights[i],
                    }
                    for path, i in new
                ],
            ).all()
            embeddings = unit[[i for _, i in new]].astype("<f2")
            s.execute(
                insert(Vector),
                [
                    {"media_id": mid, "kind": "image", "space": space, "dim": dim, "embedding": emb.tobytes()}
                    for mid, emb in zip(media_ids, embeddings)
                ],
            )
        s.add_all(JobError(job_id=job_id, path=path, error=error) for path, error in errors)
        job = s.get(Job, job_id)
        counts = {"new": len(new), "unchanged": len(held) + repeated, "errors": len(errors)}
        job.done += len(chunk.paths)
        job.new += counts["new"]
        job.unchanged += counts["unchanged"]
        job.errors += counts["errors"]
        job.updated_at = time.time()
    return counts


# -- the index -------------------------------------------------------------------------------
def build_index(indexes: IndexSet, kind: str = "image") -> str:
    """Bring the space's index in step with SQL, of a type its size calls for (the backend's
    `fitted`), tuned for the target recall, and save it; returns its factory."""
    space = indexes.space_of(kind)
    index = indexes.fitted(kind)
    indexes.wait_upkeep(INDEX_TUNING_WAIT_S)
    indexes.checkpoint(force=True)
    log.info("the index of %s holds %d vectors (%s)", space, index.ntotal, index.factory)
    return index.factory


# -- the job ---------------------------------------------------------------------------------
def create_import_job(store: Store, folder: Path, space: str) -> int:
    with store.session() as s:
        job = Job(
            task=TASK,
            roots=[str(folder)],
            space=space,
            state="pending",
            pid=os.getpid(),
            message="clip-retrieval import",
        )
        s.add(job)
        s.flush()
        return job.id


def importer(
    store: Store, settings: Settings, space: str, progress: ProgressFn | None, stop: threading.Event
) -> "ClipRetrievalImporter":
    """The runner of an import job into `space`, with indexes of its own (it writes their files),
    tuned and budgeted as the settings say."""
    library_dir = settings.library_dir.resolve()
    indexes = open_index_set(settings, store, library_dir, space, find_space(store, space=space).dim)
    return ClipRetrievalImporter(store, indexes, library_dir, progress, stop)


class ClipRetrievalImporter(JobRunner):
    """Runs one import job: the folder's rows into the space, then its index."""

    chunk_rows = CHUNK_ROWS

    def __init__(
        self,
        store: Store,
        indexes: IndexSet,
        library_dir: Path,
        progress: ProgressFn | None = None,
        stop: threading.Event | None = None,
    ):
        # The job's own IndexSet: build_index writes its files; the library reopens its own after.
        self.store, self.sink, self.library_dir, self.progress = store, indexes, library_dir, progress
        self.stop = stop or threading.Event()

    def run(self, job_id: int) -> dict:
        try:
            return super().run(job_id)
        finally:
            self.sink.close()  # the job's own set (its upkeep; a Milvus connection): the library opens its own

    def _run(self, job_id: int, roots: list[Path]) -> None:
        layout = read_layout(roots[0])  # again: the folder may have changed since the job was queued
        if layout.dim != self.sink.dim:
            raise ImportFormatError(f"{roots[0]} holds {layout.dim}-d vectors; the job's space has {self.sink.dim}")
        self._set(job_id, total=layout.rows)
        self._report(job_id)
        for chunk in iter_chunks(layout, self.chunk_rows):
            self._check_stop()
            write_chunk(self.store, job_id, chunk, layout.folder, self.sink.space, self.sink.dim)
            self._report(job_id)
        _, count = self.store.vector_stats(self.sink.space, "image")
        self._set(job_id, message=f"building the index over {count} vectors")
        self._report(job_id)
        factory = build_index(self.sink)
        with self.store.session() as s:
            job = s.get(Job, job_id)
            job.message = (
                f"clip-retrieval import: {job.new} new, {job.unchanged} already in the library, {job.errors} errors; "
                f"the index holds {count} vectors ({factory})"
            )

    def _set(self, job_id: int, **values) -> None:
        with self.store.session() as s:
            job = s.get(Job, job_id)
            for key, value in values.items():
                setattr(job, key, value)
            job.updated_at = time.time()
