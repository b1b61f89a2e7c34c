"""Library: the one facade over store + indexes + encoder + generator.

The CLI and the API hold a Library; nothing else wires components together.
"""

from __future__ import annotations

import dataclasses
import logging
import random
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image

from .config import Settings
from .encoders.temporal import TemporalPooler, resolve_pooler, video_space
from .encoders.video import SamplingConfig
from .indexer.jobs import IndexJobRunner, create_job
from .indexer.pipeline import PipelineConfig, default_decode_workers
from .search.engine import Hit, SearchEngine
from .search.query import QueryError, SearchRequest
from .services.generate_on_miss import GenerateOptions, MissThresholds, Outcome, search_or_generate
from .services.miss_thresholds import miss_thresholds
from .storage.captions import CaptionFinder
from .storage.generated import GenerationParams, delete_generated, save_generated
from .storage.generated import NotGeneratedError as NotGeneratedError  # the API and CLI answer it
from .storage.index_set import IndexSet
from .storage.store import Job, JobError, Media, Store, Vector, job_summary

log = logging.getLogger(__name__)

RECENT_JOB_ERRORS = 50  # a job's summary lists its latest errors; the rest stay in SQL


class GenerationUnavailable(RuntimeError):
    """No generator can serve this request (turned off, not trained, or another space)."""


class GenerationRequestError(ValueError):
    """The generator refused the request's settings (e.g. a sampler this backend lacks)."""


@contextmanager
def _generator_errors():
    try:
        yield
    except QueryError:
        raise
    except ValueError as e:
        raise GenerationRequestError(str(e)) from e


class Library:
    def __init__(self, settings: Settings, encoder=None):
        self.settings = settings
        self.dir = settings.library_dir.resolve()
        self.dir.mkdir(parents=True, exist_ok=True)
        self.store = Store(settings.resolved_database_url)
        self._encoder = encoder
        self._indexes: IndexSet | None = None
        self._pooler: TemporalPooler | None = None
        self._generator = None
        self._engine: SearchEngine | None = None
        self._captions = CaptionFinder()  # keeps the manifests it has read, for the library's life
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
                self._encoder = load_encoder(
                    s.model, device=s.device, batch_size=s.batch_size, hub_timeout_s=s.hub_timeout_s
                )
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
        return SamplingConfig(
            strategy=s.video_sampling, num_frames=s.video_frames, fps=s.video_fps, max_frames=s.video_max_frames
        )

    @property
    def indexes(self) -> IndexSet:
        with self._lock:
            if self._indexes is None:
                self._indexes = IndexSet(
                    self.store,
                    self.dir / "indexes",
                    self.encoder.space,
                    self.encoder.dim,
                    kind_spaces={"video": video_space(self.encoder.space, self.pooler)},
                )
            return self._indexes

    def index_sizes(self) -> dict[str, int]:
        """Vectors per kind in the indexes opened so far (none before the first search or job)."""
        with self._lock:
            return self._indexes.sizes() if self._indexes is not None else {}

    @property
    def engine(self) -> SearchEngine:
        with self._lock:
            if self._engine is None:
                self._engine = SearchEngine(
                    self.store, self.encoder, self.indexes, video_text_map=self.pooler.adapt_query
                )
            return self._engine

    @property
    def generator(self):
        """The image generator (loaded on first use); GenerationUnavailable when turned off."""
        with self._lock:
            if self._generator is None:
                if self.settings.generator == "none":
                    raise GenerationUnavailable("generation is turned off (MMSEARCH_GENERATOR=none)")
                from .generation import load_generator

                try:
                    self._generator = load_generator(self.settings.generator, self.encoder, self.settings.device)
                except (FileNotFoundError, ValueError, ConnectionError, ImportError) as e:
                    raise GenerationUnavailable(f"generator {self.settings.generator!r} cannot be used: {e}") from e
            return self._generator

    def _with_defaults(self, options: GenerateOptions, generator) -> GenerateOptions:
        """Options with the sampler and guidance filled in from the generator when not given,
        so a generated image's record says how it was actually drawn."""
        if generator is None:
            return options
        return dataclasses.replace(
            options,
            sampler=options.sampler if options.sampler is not None else getattr(generator, "SAMPLERS", ("ddim",))[0],
            guidance=options.guidance if options.guidance is not None else getattr(generator, "default_guidance", None),
        )

    def miss_thresholds(self) -> MissThresholds:
        """Configured thresholds, else the ones calibrated for this encoder's space."""
        return miss_thresholds(self.encoder.space, self.settings.miss_threshold, self.settings.prior_miss_threshold)

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
        if workers is None:
            workers = s.decode_workers if s.decode_workers is not None else default_decode_workers()
        cfg = PipelineConfig(workers=workers, batch_size=s.batch_size, max_pixels=s.max_pixels)
        runner = IndexJobRunner(
            self.store,
            self.encoder,
            self.indexes,
            self.dir,
            cfg,
            progress,
            stop=self._stop_jobs,
            sampling=self.sampling,
            pooler=self.pooler,
        )
        return runner.run(job_id)

    def index(
        self, roots: list[str | Path], workers: int | None = None, progress: Callable[[dict], None] | None = None
    ) -> dict:
        """Index (or re-index) the roots: new and changed files are embedded, deleted ones removed."""
        return self.run_job(self.create_job(roots), workers=workers, progress=progress)

    def stop_jobs(self) -> None:
        """Ask a running job to stop after its current batch (it ends 'interrupted')."""
        self._stop_jobs.set()

    def recent_jobs(self, limit: int = 20) -> list[dict]:
        """The latest jobs, newest first (without their error lists)."""
        with self.store.session() as s:
            return [job_summary(j) for j in s.query(Job).order_by(Job.id.desc()).limit(limit).all()]

    def job(self, job_id: int) -> dict | None:
        with self.store.session() as s:
            job = s.get(Job, job_id)
            if job is None:
                return None
            recent = (
                s.query(JobError)
                .filter(JobError.job_id == job_id)
                .order_by(JobError.id.desc())
                .limit(RECENT_JOB_ERRORS)
                .all()
            )
            return job_summary(job) | {"recent_errors": [{"path": e.path, "error": e.error} for e in reversed(recent)]}

    def search(self, request: SearchRequest) -> list[Hit]:
        return self.engine.search(request)

    def search_or_generate(self, request: SearchRequest, prompt: str | None, options: GenerateOptions) -> Outcome:
        """Search; on a miss, per options.mode, search with the prior or generate (see generate_on_miss)."""
        generator, unavailable = None, None
        if options.mode != "never" and prompt is not None:
            try:
                generator = self.generator
            except GenerationUnavailable as e:
                if options.mode == "always":
                    raise
                unavailable = str(e)  # auto: a search still answers, with its weak hits
        options = self._with_defaults(options, generator)
        with _generator_errors():
            outcome = search_or_generate(
                self.engine, request, prompt, generator, options, self.miss_thresholds(), self.store_generated
            )
        if unavailable and outcome.miss:
            outcome.steps.append({"stage": "generated", "error": unavailable})
        return outcome

    def store_generated(self, images: list[Image.Image], params: GenerationParams) -> list[int]:
        """Store and index drawn images as generated media; their ids (an image stored before keeps its id)."""
        return save_generated(self.store, self.indexes, self.encoder, self.dir, images, params)

    def generate(self, prompt: str, options: GenerateOptions) -> list[Hit]:
        """Generate, store and index images for a prompt; hits for them, scored against the prompt."""
        ids = self.store_generated(*self.draw(prompt, options))
        return self.engine.hits_for_media(self.encoder.embed_texts([prompt])[0], ids, "generated")

    def generate_from_media(
        self,
        media_id: int,
        options: GenerateOptions,
        edit: tuple[str, str] | None = None,
        interpolate: tuple[int, float] | None = None,
    ) -> list[Hit]:
        """Variations, interpolations and edits of an indexed image (see draw_from_media),
        stored and indexed; hits for them, scored against the source image."""
        ids = self.store_generated(*self.draw_from_media(media_id, options, edit, interpolate))
        return self.engine.hits_for_media(self.media_vector(media_id), ids, "generated")

    def draw(self, prompt: str, options: GenerateOptions) -> tuple[list[Image.Image], GenerationParams]:
        """Images for a prompt and how they were made, not stored."""
        options = self._with_defaults(options, self.generator)
        seed = options.seed if options.seed is not None else random.randrange(2**31)
        with _generator_errors():
            images = self.generator.generate(
                prompt, n=options.n, seed=seed, steps=options.steps, guidance=options.guidance, sampler=options.sampler
            )
        return images, GenerationParams(
            prompt, self.generator.name, seed, options.steps, options.guidance, options.sampler
        )

    def draw_from_media(
        self,
        media_id: int,
        options: GenerateOptions,
        edit: tuple[str, str] | None = None,
        interpolate: tuple[int, float] | None = None,
    ) -> tuple[list[Image.Image], GenerationParams]:
        """DALL-E 2's latent tricks on an indexed image, not stored: variations of it, an
        interpolation towards another image, or a text-diff edit ("red circle" -> "blue circle")."""
        from .generation.unclip import slerp, text_diff_edit

        generator = self.generator
        if getattr(generator, "space", None) != self.encoder.space or not hasattr(generator, "decode"):
            raise GenerationUnavailable(
                f"generator {generator.name!r} cannot decode embeddings of this library's space"
            )
        options = self._with_defaults(options, generator)
        embedding = self.media_vector(media_id)
        source: dict = {"media_id": media_id}
        if interpolate is not None:
            other, alpha = interpolate
            embedding = slerp(embedding, self.media_vector(other), alpha)
            source |= {"interpolate": other, "alpha": alpha}
        if edit is not None:
            src, tgt = self.encoder.embed_texts(list(edit))
            embedding = text_diff_edit(embedding, src, tgt)
            source |= {"edit": list(edit)}
        seed = options.seed if options.seed is not None else random.randrange(2**31)
        with _generator_errors():
            images = generator.decode(
                np.repeat(embedding[None], options.n, 0),
                seed=seed,
                steps=options.steps,
                guidance=options.guidance,
                sampler=options.sampler,
            )
        label = f"edit of media {media_id}: {edit[0]} -> {edit[1]}" if edit else f"variation of media {media_id}"
        return images, GenerationParams(
            label, generator.name, seed, options.steps, options.guidance, options.sampler, source=source
        )

    def delete_generated(self, media_ids: list[int]) -> list[int]:
        """Delete generated images (rows, vectors, files); see library_media.delete_generated."""
        return delete_generated(self.store, self.indexes, self.dir, media_ids)

    def media(self, media_id: int) -> Media | None:
        return self.store.media_by_id([media_id]).get(media_id)

    def media_many(self, media_ids: list[int]) -> dict[int, Media]:
        """Media rows by id; ids with no row are left out."""
        return self.store.media_by_id(media_ids)

    def media_vector(self, media_id: int) -> np.ndarray:
        """The stored embedding of an indexed media item (an image's vector, a video's pooled one)."""
        return self.engine.media_vector(media_id)

    def stats(self) -> dict:
        """The model in use and how much the library holds."""
        return {
            "model": self.encoder.name,
            "space": self.encoder.space,
            "media": self.store.count(Media),
            "vectors": self.store.count(Vector),
            "unreadable": self.store.count(Media, Media.error.is_not(None)),
        }

    def caption(self, media: Media) -> str | None:
        """A media item's first caption (sidecar .txt or synth manifest), or a generated image's prompt."""
        if media.generated:
            return (media.generation or {}).get("prompt")
        roots = [r for r in self.serving_roots(media) if Path(media.path).is_relative_to(r)]
        captions = self._captions(Path(media.path), roots[0] if roots else None)
        return captions[0] if captions else None

    def counts(self) -> dict:
        """Media per kind, jobs per state and running jobs' progress (see Store.library_counts)."""
        return self.store.library_counts()

    def close(self) -> None:
        if self._indexes is not None:
            self._indexes.checkpoint(force=True)
        self.store.close()

    def __enter__(self) -> "Library":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
