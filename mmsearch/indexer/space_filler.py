"""Filling a second embedding space: every indexed media item (generated ones included) is
embedded with another model, its vectors added beside the active space's, under the same
media ids. Nothing is deleted, so searches keep answering from the active space meanwhile.

Like an index job it holds the library's writer lock, commits one transaction per batch
(vectors, error rows, the job's counters) and tells the space's indexes only after the
commit. What a killed job committed stays; a rerun picks up the media still without
vectors in the space. A file whose bytes changed since it was indexed is not embedded
(its vectors would describe other content than its row): an error row says to index first.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import numpy as np
from sqlalchemy import select

from ..encoders.temporal import TemporalPooler, video_space
from ..encoders.video import SamplingConfig
from ..storage.spaces import coverage, media_without
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
from .decode import Decoded
from .decode_video import DecodedVideo
from .job_runs import IndexSink, JobRunner, ProgressFn
from .pipeline import PipelineConfig, decoded_videos, embedded_batches
from .video_vectors import video_rows, video_vectors

BATCH = 256  # media read from SQL per round
CHANGED = "its file changed since it was indexed; run `mmsearch index` on its folder, then add the model again"


def create_fill_job(store: Store, space: str, spec: str) -> int:
    with store.session() as s:
        job = Job(task="add-model", roots=[], space=space, state="pending", pid=os.getpid(), message=f"add {spec}")
        s.add(job)
        s.flush()
        return job.id


class SpaceFiller(JobRunner):
    """Runs one add-model job: embeds the media without vectors in the encoder's space."""

    def __init__(
        self,
        store: Store,
        encoder,
        pooler: TemporalPooler,
        sink: IndexSink,
        library_dir: Path,
        cfg: PipelineConfig,
        sampling: SamplingConfig,
        progress: ProgressFn | None = None,
        stop: threading.Event | None = None,
    ):
        self.store, self.encoder, self.pooler, self.sink = store, encoder, pooler, sink
        self.library_dir, self.cfg, self.sampling, self.progress = library_dir, cfg, sampling, progress
        self.stop = stop or threading.Event()
        self.space, self.dim = encoder.space, encoder.dim
        self.pooled_space = video_space(encoder.space, pooler)

    def _run(self, job_id: int, roots: list[Path]) -> None:
        covered, total = coverage(self.store, self.space)
        with self.store.session() as s:
            job = s.get(Job, job_id)
            job.total, job.unchanged, job.updated_at = total - covered, covered, time.time()
        self._report(job_id)
        last = 0
        while batch := media_without(self.store, self.space, after_id=last, limit=BATCH):
            last = batch[-1].id
            images = {m.path: m for m in batch if m.kind == "image"}
            for good, vectors, bad in embedded_batches(list(images), self.encoder.embed_images, self.cfg):
                self._write_images(job_id, images, good, vectors, bad)
            videos = {m.path: m for m in batch if m.kind == "video"}
            for video in decoded_videos(list(videos), self.sampling, self.cfg):
                self._write_video(job_id, videos[video.path], video)

    def _errors(self, s, job_id: int, failed: list[tuple[str, str]]) -> None:
        for path, error in failed:
            s.add(JobError(job_id=job_id, path=path, error=error))
        job = s.get(Job, job_id)
        job.done += len(failed)
        job.errors += len(failed)
        job.updated_at = time.time()

    def _write_images(
        self, job_id: int, media: dict[str, Media], good: list[Decoded], vectors: np.ndarray, bad: list[Decoded]
    ) -> None:
        self._check_stop()
        kept, changed = [], []
        for d, v in zip(good, vectors):
            (kept if d.content_hash == media[d.path].content_hash else changed).append((d, v))
        failed = [(d.path, d.error) for d in bad] + [(d.path, CHANGED) for d, _ in changed]
        with self.store.session() as s:
            rows = [
                Vector(
                    media_id=media[d.path].id,
                    kind="image",
                    space=self.space,
                    dim=self.dim,
                    embedding=encode_embedding(v),
                )
                for d, v in kept
            ]
            s.add_all(rows)
            self._errors(s, job_id, failed)
            s.get(Job, job_id).done += len(rows)
            s.flush()
            ids = np.asarray([r.id for r in rows], np.int64)
        if len(ids):
            self.sink.add("image", ids, decode_embeddings([r.embedding for r in rows], self.dim))
        self.sink.checkpoint()
        self._report(job_id)

    def _write_video(self, job_id: int, media: Media, video: DecodedVideo) -> None:
        """The video's frame, segment and pooled vectors, on the segments its row already has."""
        self._check_stop()
        with self.store.session() as s:
            segments = list(s.scalars(select(Segment).where(Segment.media_id == media.id).order_by(Segment.t_start)))
        error = video.error or (CHANGED if video.content_hash != media.content_hash else None)
        if error is None and not segments:
            error = "it has no segments in the library; run `mmsearch index` on its folder again"
        if error is not None:
            with self.store.session() as s:
                self._errors(s, job_id, [(media.path, error)])
            self._report(job_id)
            return
        video.segments = [(seg.t_start, seg.t_end) for seg in segments]
        vecs = video_vectors(video, self.encoder, self.pooler)
        with self.store.session() as s:
            rows = video_rows(media.id, segments, video.times, vecs, self.space, self.pooled_space)
            s.add_all(rows.all())
            job = s.get(Job, job_id)
            job.done += 1
            job.updated_at = time.time()
            s.flush()
        for kind, written in (("segment", rows.segments), ("video", [rows.video])):
            self.sink.add(
                kind,
                np.asarray([v.id for v in written], np.int64),
                decode_embeddings([v.embedding for v in written], self.dim),
            )
        self.sink.checkpoint()
        self._report(job_id)
