"""Library: the one facade over store + indexes + encoder (+ generator, later).

The CLI and the API hold a Library; nothing else wires components together.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Callable

from .config import Settings
from .encoders.temporal import TemporalPooler, resolve_pooler, video_space
from .encoders.video import SamplingConfig
from .indexer.jobs import IndexJobRunner, create_job
from .indexer.pipeline import PipelineConfig
from .search.engine import Hit, SearchEngine
from .search.indexes import IndexSet
from .search.query import SearchRequest
from .search.store import Job, Media, Store, job_summary

log = logging.getLogger(__name__)


class Library:
    def __init__(self, settings: Settings, encoder=None):
        self.settings = settings
        self.dir = settings.library_dir.resolve()
        self.dir.mkdir(parents=True, exist_ok=True)
        self.store = Store(settings.resolved_database_url)
        self._encoder = encoder
        self._indexes: IndexSet | None = None
        self._pooler: TemporalPooler | None = None
        self._lock = threading.RLock()
        self._stop_jobs = threading.Event()

    @classmethod
    def open(cls, path: str | Path | None = None, settings: Settings | None = None, encoder=None) -> "Library":
        settings = settings or Settings()
        if path is not None:
            settings = settings.with_overrides(library_dir=Path(path))
        return cls(settings, encoder=encoder)

    # -- components, built on first use -------------------------------------------------------
    @property
    def encoder(self):
        with self._lock:
            if self._encoder is None:
                from .encoders import load_encoder

                s = self.settings
                self._encoder = load_encoder(s.model, device=s.device, batch_size=s.batch_size, hub_timeout_s=s.hub_timeout_s)
            return self._encoder

    @property
    def pooler(self) -> TemporalPooler:
        with self._lock:
            if self._pooler is None:
                self._pooler = resolve_pooler(self.settings)
            return self._pooler

    @property
    def sampling(self) -> SamplingConfig:
        return self.sampling_for(self.settings)

    @staticmethod
    def sampling_for(s: Settings) -> SamplingConfig:
        return SamplingConfig(strategy=s.video_sampling, num_frames=s.video_frames, fps=s.video_fps, max_frames=s.video_max_frames)

    @property
    def indexes(self) -> IndexSet:
        with self._lock:
            if self._indexes is None:
                self._indexes = IndexSet(self.store, self.dir / "indexes", self.encoder.space, self.encoder.dim,
                                         kind_spaces={"video": video_space(self.encoder.space, self.pooler)})
            return self._indexes

    @property
    def engine(self) -> SearchEngine:
        return SearchEngine(self.store, self.encoder, self.indexes)

    # -- the facade -------------------------------------------------------------------------------
    def serving_roots(self, media: Media) -> list[Path]:
        """Where a media item's file may be served from: the root it was indexed from, and
        the library folder for media the library made itself (generated images)."""
        roots = [Path(media.root)] if media.root else []
        return roots + [self.dir] if media.generated else roots

    def create_job(self, roots: list[str | Path]) -> int:
        resolved = []
        for r in roots:
            p = Path(r).expanduser().resolve()
            if not p.is_dir():
                raise FileNotFoundError(f"{r} is not a folder")
            resolved.append(p)
        # A root inside another root of the same job would be walked twice.
        outermost = sorted({p for p in resolved if not any(p != q and p.is_relative_to(q) for q in resolved)})
        return create_job(self.store, outermost, self.encoder.space)

    def run_job(self, job_id: int, workers: int | None = None, progress: Callable[[dict], None] | None = None) -> dict:
        s = self.settings
        cfg = PipelineConfig(workers=s.decode_workers if workers is None else workers, batch_size=s.batch_size, max_pixels=s.max_pixels)
        runner = IndexJobRunner(self.store, self.encoder, self.indexes, self.dir, cfg, progress, stop=self._stop_jobs,
                                sampling=self.sampling, pooler=self.pooler)
        return runner.run(job_id)

    def index(self, roots: list[str | Path], workers: int | None = None, progress: Callable[[dict], None] | None = None) -> dict:
        """Index (or re-index) the roots: new and changed files are embedded, deleted ones removed."""
        return self.run_job(self.create_job(roots), workers=workers, progress=progress)

    def stop_jobs(self) -> None:
        """Ask a running job to stop after its current batch (it ends 'interrupted')."""
        self._stop_jobs.set()

    def job(self, job_id: int) -> dict | None:
        with self.store.session() as s:
            job = s.get(Job, job_id)
            return job_summary(job) if job else None

    def search(self, request: SearchRequest) -> list[Hit]:
        return self.engine.search(request)

    def media(self, media_id: int) -> Media | None:
        return self.store.media_by_id([media_id]).get(media_id)

    def close(self) -> None:
        if self._indexes is not None:
            self._indexes.checkpoint(force=True)
        self.store.close()

    def __enter__(self) -> "Library":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
