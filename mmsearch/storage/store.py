"""SQL store: the source of truth for media, segments, embeddings and jobs (SQLAlchemy 2).

FAISS indexes are derived from the `vectors` table: a vector row's id is its FAISS id,
ids are never reused (AUTOINCREMENT), and every row records its embedding space so
vectors of different models never mix. SQLite (WAL) by default; any SQLAlchemy URL works.
The tables are in tables.py (and re-exported here).
"""

from __future__ import annotations

import logging
import math
import sqlite3
import time
from contextlib import contextmanager
from typing import Iterator

import numpy as np
from sqlalchemy import create_engine, delete, event, func, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session, aliased, sessionmaker

from . import schema
from .commit_watch import CommitWatch
from .tables import ACTIVE_JOB_STATES, SCHEMA_VERSION, Base, Job, JobError, Media, SchemaInfo, Segment, Space, Vector

log = logging.getLogger(__name__)


def encode_embedding(vec: np.ndarray) -> bytes:
    return np.asarray(vec, dtype="<f2").tobytes()


def decode_embeddings(blobs: list[bytes], dim: int) -> np.ndarray:
    """float16 blobs -> (n, dim) float32, renormalised (fp16 rounding moves the norm slightly)."""
    if not blobs:
        return np.zeros((0, dim), np.float32)
    arr = np.frombuffer(b"".join(blobs), dtype="<f2").astype(np.float32).reshape(len(blobs), dim)
    return arr / np.maximum(np.linalg.norm(arr, axis=1, keepdims=True), 1e-12)


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    try:
        cur.execute("SELECT sin(0), cos(0)")
    except sqlite3.OperationalError:  # an SQLite built without its math functions: the near filter uses them
        for name, fn in (("sin", math.sin), ("cos", math.cos)):
            dbapi_conn.create_function(name, 1, _null_safe(fn), deterministic=True)
    cur.close()


def _null_safe(fn):
    return lambda x: None if x is None else fn(x)


class Store:
    """Opens (and creates or migrates) the database; hands out sessions and common queries."""

    def __init__(self, url: str):
        self.url = url
        kwargs = {"connect_args": {"check_same_thread": False, "timeout": 30}} if url.startswith("sqlite") else {}
        self.engine: Engine = create_engine(url, **kwargs)
        if url.startswith("sqlite"):
            event.listen(self.engine, "connect", _sqlite_pragmas)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._migrate()
        self.commits = CommitWatch(self.engine)

    def _migrate(self) -> None:
        # Migrations are serialised between processes (schema.upgrade), but processes opening a
        # new library at once still race on switching the new file to WAL, which needs it alone
        # and answers "locked" at once, not after the busy timeout: the loser retries.
        for attempt in range(5):
            try:
                self._create_or_check_schema()
                return
            except (OperationalError, IntegrityError) as e:
                lost_race = (
                    isinstance(e, IntegrityError) or "already exists" in str(e) or "database is locked" in str(e)
                )
                if not lost_race or attempt == 4:
                    raise
                time.sleep(0.05 * (attempt + 1))

    def _create_or_check_schema(self) -> None:
        schema.upgrade(self.engine)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """One transaction: committed on success, rolled back on any error."""
        s = self._sessions()
        try:
            yield s
            s.commit()
        except BaseException:
            s.rollback()
            raise
        finally:
            s.close()

    def close(self) -> None:
        self.commits.close()
        self.engine.dispose()

    # -- vectors ------------------------------------------------------------------------
    def vector_ids(self, space: str, kinds: tuple[str, ...]) -> np.ndarray:
        with self.session() as s:
            ids = s.scalars(
                select(Vector.id).where(Vector.space == space, Vector.kind.in_(kinds)).order_by(Vector.id)
            ).all()
        return np.asarray(ids, dtype=np.int64)

    def vector_stats(self, space: str, kind: str) -> tuple[int, int]:
        """(highest id, count) of a space's vectors of one kind; (0, 0) when there are none."""
        with self.session() as s:
            max_id, count = s.execute(
                select(func.max(Vector.id), func.count()).where(Vector.space == space, Vector.kind == kind)
            ).one()
        return int(max_id or 0), int(count)

    def iter_vectors(
        self, space: str, kinds: tuple[str, ...], after_id: int = 0, batch: int = 8192, every: int = 1
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(ids, float32 vectors) batches of a space's rows with id > after_id, in id order;
        with every > 1, only the rows whose id is a multiple of it (a sample)."""
        last = after_id
        while True:
            query = select(Vector.id, Vector.dim, Vector.embedding).where(
                Vector.space == space, Vector.kind.in_(kinds), Vector.id > last
            )
            if every > 1:
                query = query.where(Vector.id % every == 0)
            with self.session() as s:
                rows = s.execute(query.order_by(Vector.id).limit(batch)).all()
            if not rows:
                return
            last = rows[-1][0]
            yield np.asarray([r[0] for r in rows], np.int64), decode_embeddings([r[2] for r in rows], rows[0][1])

    def vectors_by_id(self, ids: list[int], chunk: int = 900) -> dict[int, np.ndarray]:
        """Stored vectors (float32, renormalised) by vector id; ids with no row are left out."""
        rows = []
        with self.session() as s:
            for start in range(0, len(ids), chunk):
                rows += s.execute(
                    select(Vector.id, Vector.dim, Vector.embedding).where(Vector.id.in_(ids[start : start + chunk]))
                ).all()
        if not rows:
            return {}
        return dict(zip((r.id for r in rows), decode_embeddings([r.embedding for r in rows], rows[0].dim)))

    def frames_of_segments(self, segment_vector_ids: list[int], chunk: int = 900) -> tuple[np.ndarray, np.ndarray]:
        """(segment ids, float32 vectors) of the frame vectors that share a segment (and a
        space) with the given segment vectors; a segment's frames are adjacent, in time order."""
        segment = aliased(Vector)
        rows = []
        with self.session() as s:
            for start in range(0, len(segment_vector_ids), chunk):
                rows += s.execute(
                    select(Vector.segment_id, Vector.dim, Vector.embedding)
                    .join(segment, (segment.segment_id == Vector.segment_id) & (segment.space == Vector.space))
                    .where(segment.id.in_(segment_vector_ids[start : start + chunk]), Vector.kind == "frame")
                    .order_by(Vector.segment_id, Vector.id)
                ).all()
        if not rows:
            return np.zeros(0, np.int64), np.zeros((0, 0), np.float32)
        return np.asarray([r[0] for r in rows], np.int64), decode_embeddings([r[2] for r in rows], rows[0][1])

    def iter_segment_frames(
        self, space: str, batch: int = 8192, every: int = 1
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(segment ids, float32 vectors) batches of a space's frame vectors, whole segments
        per batch (a segment's frames are written together: adjacent in id order); with
        every > 1, only the segments whose id is a multiple of it (a sample)."""
        last, held_ids, held = 0, np.zeros(0, np.int64), None
        while True:
            query = select(Vector.id, Vector.segment_id, Vector.dim, Vector.embedding).where(
                Vector.space == space, Vector.kind == "frame", Vector.id > last
            )
            if every > 1:
                query = query.where(Vector.segment_id % every == 0)
            with self.session() as s:
                rows = s.execute(query.order_by(Vector.id).limit(batch)).all()
            if not rows:
                if held is not None and len(held_ids):
                    yield held_ids, held
                return
            last = rows[-1][0]
            ids = np.concatenate([held_ids, np.asarray([r[1] for r in rows], np.int64)])
            vectors = decode_embeddings([r[3] for r in rows], rows[0][2])
            vectors = vectors if held is None else np.concatenate([held, vectors])
            whole = len(ids) - int(np.argmax(ids[::-1] != ids[-1])) if (ids != ids[-1]).any() else 0
            held_ids, held = ids[whole:], vectors[whole:]  # the last segment may go on in the next batch
            if whole:
                yield ids[:whole], vectors[:whole]

    def media_of_vectors(self, ids: list[int], chunk: int = 900) -> dict[int, int]:
        """vector id -> media id (chunked: SQLite limits the number of bound parameters)."""
        out: dict[int, int] = {}
        with self.session() as s:
            for start in range(0, len(ids), chunk):
                out.update(
                    (vid, mid)
                    for vid, mid in s.execute(
                        select(Vector.id, Vector.media_id).where(Vector.id.in_(ids[start : start + chunk]))
                    )
                )
        return out

    def media_by_id(self, ids: list[int], chunk: int = 900) -> dict[int, Media]:
        out: dict[int, Media] = {}
        with self.session() as s:
            for start in range(0, len(ids), chunk):
                out.update((m.id, m) for m in s.scalars(select(Media).where(Media.id.in_(ids[start : start + chunk]))))
        return out

    def count(self, model, *conditions) -> int:
        """Rows of `model`, optionally only those meeting SQLAlchemy `conditions`."""
        with self.session() as s:
            return s.scalar(select(func.count()).select_from(model).where(*conditions)) or 0

    def library_counts(self) -> dict:
        """Media per (kind, generated), jobs per state, and the progress (0-1) of pending and
        running jobs: what a monitoring scrape reports."""
        with self.session() as s:
            media = [
                (kind, bool(generated), n)
                for kind, generated, n in s.execute(
                    select(Media.kind, Media.generated, func.count()).group_by(Media.kind, Media.generated)
                )
            ]
            jobs = [(state, n) for state, n in s.execute(select(Job.state, func.count()).group_by(Job.state))]
            progress = [
                (job.id, (job.done / job.total) if job.total else 0.0)
                for job in s.scalars(select(Job).where(Job.state.in_(ACTIVE_JOB_STATES)))
            ]
        return {"media": media, "jobs": jobs, "job_progress": progress}

    def delete_media(self, s: Session, media_ids: list[int]) -> list[int]:
        """Delete media rows (and their segments and vectors); returns the vector ids removed."""
        if not media_ids:
            return []
        vids = list(s.scalars(select(Vector.id).where(Vector.media_id.in_(media_ids))))
        s.execute(delete(Vector).where(Vector.media_id.in_(media_ids)))
        s.execute(delete(Segment).where(Segment.media_id.in_(media_ids)))
        s.execute(delete(Media).where(Media.id.in_(media_ids)))
        return vids


def job_summary(job: Job) -> dict:
    return {
        "id": job.id,
        "task": job.task,
        "roots": job.roots,
        "state": job.state,
        "space": job.space,
        "total": job.total,
        "done": job.done,
        "new": job.new,
        "changed": job.changed,
        "deleted": job.deleted,
        "unchanged": job.unchanged,
        "errors": job.errors,
        "message": job.message,
        "progress": (job.done / job.total) if job.total else (1.0 if job.state == "done" else 0.0),
        "created_at": job.created_at,
        "started_at": job.started_at,
        "finished_at": job.finished_at,
    }


__all__ = [
    "ACTIVE_JOB_STATES",
    "SCHEMA_VERSION",
    "Base",
    "SchemaInfo",
    "Store",
    "Media",
    "Segment",
    "Vector",
    "Job",
    "JobError",
    "Space",
    "encode_embedding",
    "decode_embeddings",
    "job_summary",
]
