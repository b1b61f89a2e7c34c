"""Index jobs: the scan, the pipeline, and one transaction per batch (the job row, lock and
end states are job_runs.py's).

Crash safety: every batch commits its media rows, vectors and the job's counters in one
transaction, and FAISS is told only after the commit. A job killed at any point leaves
SQL consistent; the next job skips what was committed (same size and mtime) and the
FAISS index catches up from SQL when it is opened. Nothing is indexed twice.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import numpy as np
from sqlalchemy import update

from ..encoders.temporal import TemporalPooler, video_space
from ..encoders.video import SamplingConfig
from ..storage.store import (
    Job,
    JobError,
    Media,
    Segment,
    Store,
    Vector,
    decode_embeddings,
    encode_embedding,
)
from .capture import file_capture
from .decode import Decoded, decode_image
from .decode_video import DecodedVideo
from .job_runs import IndexSink, JobRunner, ProgressFn
from .pipeline import LocalEmbedder, PipelineConfig
from .places import capture_columns
from .runners import MediaEmbedder
from .scan import Candidate, scan
from .video_vectors import save_keyframe, vectors_of_frames, video_rows

log = logging.getLogger(__name__)

NOT_MEDIA = "not an image or video (content matches no supported format)"


def _error_of(c: Candidate) -> str:
    """The error row of a file recorded without decoding."""
    return c.error or ("empty file" if c.size == 0 else NOT_MEDIA)


class IndexJobRunner(JobRunner):
    """Runs one index job to completion (or failure); progress(summary) is called after each batch."""

    def __init__(
        self,
        store: Store,
        encoder,
        sink: IndexSink,
        library_dir: Path,
        cfg: PipelineConfig,
        progress: ProgressFn | None = None,
        stop: threading.Event | None = None,
        sampling: SamplingConfig | None = None,
        pooler: TemporalPooler | None = None,
        embedder: MediaEmbedder | None = None,
    ):
        self.store, self.encoder, self.sink = store, encoder, sink
        self.library_dir, self.cfg, self.progress = library_dir, cfg, progress
        self.stop = stop or threading.Event()
        self.sampling = sampling or SamplingConfig()
        self.pooler = pooler or TemporalPooler("mean")
        self.embedder = embedder or LocalEmbedder(encoder, cfg, self.sampling)

    def _run(self, job_id: int, roots: list[Path]) -> None:
        result = scan(
            self.store, roots, {self.library_dir}, self.encoder.space, video_space(self.encoder.space, self.pooler)
        )
        images = [c for c in result.todo if c.kind == "image" and c.error is None]
        videos = [c for c in result.todo if c.kind == "video" and c.error is None]
        not_media = [c for c in result.todo if c.kind is None or c.error is not None]
        with self.store.session() as s:
            removed = self.store.delete_media(s, result.deleted_media_ids)
            for media_id, mtime in result.touched:
                s.execute(update(Media).where(Media.id == media_id).values(mtime=mtime))
            job = s.get(Job, job_id)
            job.total = len(images) + len(videos) + len(not_media)
            job.new, job.changed, job.unchanged, job.deleted = (
                result.new,
                result.changed,
                result.unchanged,
                len(result.deleted_media_ids),
            )
            job.message = "; ".join(result.warnings)[:4000] or None
            job.updated_at = time.time()
        self.sink.remove(removed)
        if not_media:
            self._write(
                job_id,
                [],
                np.zeros((0, 0), np.float32),
                [Decoded(c.key, error=_error_of(c)) for c in not_media],
                by_path={c.key: c for c in not_media},
            )
        by_path = {c.key: c for c in images + videos}
        self._report(job_id)
        for good, vectors, bad in self.embedder.image_batches([str(c.path) for c in images]):
            self._write(job_id, good, vectors, bad, by_path)
        for video, frames in self.embedder.videos([str(c.path) for c in videos]):
            if video.error:
                bad = Decoded(video.path, content_hash=video.content_hash, error=video.error)
                self._write(job_id, [], np.zeros((0, 0), np.float32), [bad], by_path)
            else:
                self._write_video(job_id, video, frames, by_path[video.path])
        self._read_metadata(result.unread)

    def _read_metadata(self, unread: list[Candidate], batch: int = 64) -> None:
        """Capture metadata and images' perceptual hashes of unchanged files stored before
        mmsearch read them (a library upgraded from before revision 0004 or 0005): read from
        the files, nothing re-embedded."""
        for start in range(0, len(unread), batch):
            self._check_stop()
            part = unread[start : start + batch]
            images = {c.key: decode_image(str(c.path)) for c in part if c.kind == "image"}
            captures = [images[c.key].capture if c.key in images else file_capture(str(c.path), c.kind) for c in part]
            with self.store.session() as s:
                for c, values in zip(part, capture_columns(captures, [c.mtime for c in part])):
                    if c.key in images:
                        values["phash"] = images[c.key].phash
                    s.execute(update(Media).where(Media.id == c.media_id).values(**values))

    def _write(
        self, job_id: int, good: list[Decoded], vectors: np.ndarray, bad: list[Decoded], by_path: dict[str, Candidate]
    ) -> None:
        """One transaction: media rows (new or replaced), their vectors, error rows, job counters."""
        self._check_stop()
        space, dim = self.encoder.space, self.encoder.dim
        new_vectors: list[Vector] = []
        with self.store.session() as s:
            replaced = self.store.delete_media(
                s, [by_path[d.path].media_id for d in good + bad if by_path[d.path].media_id]
            )
            for d in bad:
                cand = by_path[d.path]
                s.add(
                    Media(
                        path=d.path,
                        root=str(cand.root),
                        kind=cand.kind or "unknown",
                        size=cand.size,
                        mtime=cand.mtime,
                        content_hash=d.content_hash,
                        error=d.error,
                    )
                )
                s.add(JobError(job_id=job_id, path=d.path, error=d.error))
            captures = capture_columns([d.capture for d in good], [by_path[d.path].mtime for d in good])
            for d, vec, capture in zip(good, vectors, captures):
                cand = by_path[d.path]
                media = Media(
                    **capture,
                    path=d.path,
                    root=str(cand.root),
                    kind="image",
                    size=cand.size,
                    mtime=cand.mtime,
                    content_hash=d.content_hash,
                    width=d.width,
                    height=d.height,
                    phash=d.phash,
                )
                s.add(media)
                s.flush()
                v = Vector(media_id=media.id, kind="image", space=space, dim=dim, embedding=encode_embedding(vec))
                s.add(v)
                new_vectors.append(v)
            s.flush()
            ids = np.asarray([v.id for v in new_vectors], np.int64)
            job = s.get(Job, job_id)
            job.done += len(good) + len(bad)
            job.errors += len(bad)
            job.updated_at = time.time()
        # FAISS learns about rows only once they are committed; a crash here is repaired by catch-up.
        # It gets the vectors as SQL stores them (float16), so an index caught up from SQL after
        # a crash answers exactly like one fed during the job.
        self.sink.remove(replaced)
        if len(ids):
            self.sink.add("image", ids, decode_embeddings([v.embedding for v in new_vectors], dim))
        self.sink.checkpoint()
        self._report(job_id)

    def _write_video(self, job_id: int, video: DecodedVideo, frames: np.ndarray, cand: Candidate) -> None:
        """One transaction: the video's media row, its segments (with keyframes) and its
        frame, segment and video vectors (from its frames' vectors)."""
        self._check_stop()
        vecs = vectors_of_frames(video, frames, self.pooler)
        # Keyframes are named by content, so a crashed and retried job rewrites the same files.
        keyframe_dir = self.library_dir / "keyframes" / video.content_hash[:2]
        keyframes = [
            save_keyframe(video.frame(i), keyframe_dir, f"{video.content_hash[:16]}-{k}")
            for k, i in enumerate(vecs.keyframe_index)
        ]
        space, dim, pooled_space = self.encoder.space, self.encoder.dim, video_space(self.encoder.space, self.pooler)
        with self.store.session() as s:
            replaced = self.store.delete_media(s, [cand.media_id] if cand.media_id else [])
            (capture,) = capture_columns([video.capture], [cand.mtime])
            media = Media(
                **capture,
                path=video.path,
                root=str(cand.root),
                kind="video",
                size=cand.size,
                mtime=cand.mtime,
                content_hash=video.content_hash,
                width=video.width,
                height=video.height,
                duration=video.duration,
            )
            s.add(media)
            s.flush()
            segments = [
                Segment(media_id=media.id, t_start=a, t_end=b, keyframe=str(kf))
                for (a, b), kf in zip(video.segments, keyframes)
            ]
            s.add_all(segments)
            s.flush()
            rows = video_rows(media.id, segments, video.times, vecs, space, pooled_space)
            s.add_all(rows.all())
            s.flush()
            job = s.get(Job, job_id)
            job.done += 1
            job.updated_at = time.time()
        self.sink.remove(replaced)
        for kind, written in (("segment", rows.segments), ("video", [rows.video])):
            self.sink.add(
                kind,
                np.asarray([v.id for v in written], np.int64),
                decode_embeddings([v.embedding for v in written], dim),
            )
        self.sink.checkpoint()
        self._report(job_id)
