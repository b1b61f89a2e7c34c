"""Library: the one facade over store + indexes + encoder + generator.

The CLI and the API hold a Library; nothing else wires components together. The Library
builds the components on first use and hands them to services/, where what a request does
lives: index jobs (jobs), drawing and latent tricks (drawing), generate-on-miss and its
thresholds, what the library holds (contents).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image

from .config import DEFAULT_MODEL, Settings
from .encoders.temporal import TemporalPooler
from .encoders.video import SamplingConfig
from .indexer import clip_retrieval
from .indexer.clip_retrieval import ImportFormatError as ImportFormatError  # the API and CLI answer these
from .indexer.job_runs import ProgressFn, create_job, interrupt_stale_jobs, other_writer
from .indexer.lock import LibraryBusyError as LibraryBusyError  # the API answers these (409, 403)
from .indexer.lock import writer_lock
from .indexer.runners import RunnerUnavailableError as RunnerUnavailableError  # the API and CLI answer these
from .indexer.runners import check_runner
from .indexer.space_filler import create_fill_job
from .search import browse
from .search.engine import Hit, SearchEngine
from .search.query import SearchRequest
from .services import contents, drawing, jobs, models
from .services.active_model import ModelParts, ModelSlot
from .services.drawing import Edit, GenerateOptions, Towards, generator_errors, with_generator_defaults
from .services.drawing import GenerationRequestError as GenerationRequestError  # the API and CLI answer these
from .services.drawing import GenerationUnavailable as GenerationUnavailable
from .services.drawing_queue import DrawingBusy as DrawingBusy  # the API answers these
from .services.drawing_queue import DrawingQueue
from .services.drawing_queue import DrawingTimeout as DrawingTimeout
from .services.duplicates import DuplicateFinder, DuplicateReport
from .services.duplicates import DuplicatesBusy as DuplicatesBusy  # the API answers these (503)
from .services.generate_on_miss import MissThresholds, Outcome, generator_for, search_or_generate
from .services.jobs import RootNotAllowedError as RootNotAllowedError
from .services.miss_thresholds import miss_thresholds
from .services.models import ModelMismatchError as ModelMismatchError  # the API and CLI answer these
from .services.models import ModelNotAdded as ModelNotAdded
from .services.models import ModelStateError as ModelStateError
from .services.video_query import QueryVideoBusy as QueryVideoBusy  # the API answers these (503)
from .services.video_query import video_query_vectors
from .storage.captions import CaptionFinder
from .storage.generated import GenerationParams, delete_generated, save_generated
from .storage.generated import NotGeneratedError as NotGeneratedError
from .storage.index_set import IndexSet
from .storage.milvus_connect import MilvusUnavailableError as MilvusUnavailableError  # the API and CLI answer these
from .storage.rwlock import LockTimeout as LockTimeout
from .storage.spaces import activate, active_space, record_space
from .storage.store import Media, Store


class Library:
    def __init__(self, settings: Settings, encoder=None):
        self.settings = settings
        self.dir = settings.library_dir.resolve()
        self.dir.mkdir(parents=True, exist_ok=True)
        self.store = Store(settings.resolved_database_url)
        # The model the library searches with: its recorded one (a different one asked for is a
        # ModelMismatchError). Tests and notebooks may hand in a loaded encoder: its model is the one asked for.
        try:
            spec = models.library_spec(self.store, getattr(encoder, "name", None) or settings.model, DEFAULT_MODEL)
        except ModelMismatchError:
            self.store.close()
            raise
        self._models = ModelSlot(settings, self.store, self.dir, spec, encoder, on_swap=self._forget_generator)
        self._generator = None
        self._drawings = DrawingQueue()  # drawings run here, off the search path
        self._captions = CaptionFinder()  # keeps the manifests it has read, for the library's life
        self._duplicates = DuplicateFinder(self.store)
        self._lock = threading.RLock()
        self._stop_jobs = threading.Event()
        self._jobs_guard = threading.Lock()  # orders run_job's start against other_writer's look
        self._jobs_running = 0
        interrupt_stale_jobs(self.store, self.dir)  # what a killed process left 'running' or 'pending'

    @classmethod
    def open(cls, path: str | Path | None = None, settings: Settings | None = None, encoder=None) -> "Library":
        settings = settings or Settings()
        if path is not None:
            settings = settings.with_overrides(library_dir=Path(path))
        return cls(settings, encoder=encoder)

    # -- components, built on first use -------------------------------------------------------
    def _model(self) -> ModelParts:
        return self._models.current()

    @property
    def model_spec(self) -> str:
        """The spec of the model the library searches with."""
        return self._models.spec

    @property
    def encoder(self):
        return self._model().encoder

    @property
    def pooler(self) -> TemporalPooler:
        return self._model().pooler

    @property
    def sampling(self) -> SamplingConfig:
        return SamplingConfig.of(self.settings)

    @property
    def indexes(self) -> IndexSet:
        return self._model().indexes

    def index_sizes(self) -> dict[str, int]:
        """Vectors per kind in the indexes opened so far (none before the first search or job)."""
        return parts.indexes.sizes() if (parts := self._models.loaded()) is not None else {}

    @property
    def engine(self) -> SearchEngine:
        self._models.follow_active()
        return self._model().engine

    @property
    def generator(self):
        """The image generator (loaded on first use); GenerationUnavailable when turned off."""
        with self._lock:
            if self._generator is None:
                if self.settings.generator == "none":
                    raise GenerationUnavailable("generation is turned off (MMSEARCH_GENERATOR=none)")
                if not models.has_model(self.encoder):
                    raise GenerationUnavailable(models.without_model("drawing images"))
                from .generation import load_generator

                try:
                    self._generator = load_generator(self.settings.generator, self.encoder, self.settings.device)
                except (FileNotFoundError, ValueError, ConnectionError, ImportError) as e:
                    raise GenerationUnavailable(f"generator {self.settings.generator!r} cannot be used: {e}") from e
            return self._generator

    def miss_thresholds(self) -> MissThresholds:
        """Configured thresholds, else the library's calibrated miss rule (services.miss_signal)
        and the prior threshold shipped for this encoder's space (a library without its model: no rule)."""
        return miss_thresholds(
            self.encoder.space,
            self.settings.miss_threshold,
            self.settings.prior_miss_threshold,
            engine=self.engine if models.has_model(self.encoder) else None,
            library_dir=self.dir,
        )

    # -- the facade -------------------------------------------------------------------------------
    def serving_roots(self, media: Media) -> list[Path]:
        """Where a media item's file may be served from (see services.contents)."""
        return contents.serving_roots(media, self.dir)

    def create_job(self, roots: list[str | Path], remote: bool = False, runner: str | None = None) -> int:
        """A pending job over the roots (checked before the encoder loads, so a typo fails fast),
        to run with `runner` (RunnerUnavailableError when it cannot run here).

        remote: a client's request (POST /jobs): each root must be absolute and inside
        settings.index_roots (services.jobs.job_roots), and the job is refused with
        LibraryBusyError while another process is writing the library, instead of failing later."""
        roots = jobs.job_roots(roots, allowed=self.settings.index_roots if remote else None)
        check_runner(runner or self.settings.runner)
        if remote and (busy := self.other_writer()):
            raise LibraryBusyError(busy)
        if not models.has_model(self.encoder):
            raise models.NoModelError(models.without_model("indexing files"))
        if active_space(self.store) is None:  # first indexed: the library's model from now on
            record_space(self.store, self.model_spec, self.encoder.space, self.encoder.dim, active=True)
        return create_job(self.store, roots, self.encoder.space)

    def other_writer(self) -> str | None:
        """Why a job cannot start now (another process holds the writer lock), else None. A job
        of this library running, or queued behind one, does not count: it runs in turn."""
        with self._jobs_guard:
            return None if self._jobs_running else other_writer(self.dir, self.store)

    def run_job(self, job_id: int, workers: int | None = None, progress: ProgressFn | None = None, runner=None) -> dict:
        """Run a job: an index job, a model's add job (see add_model) or an import (create_import_job).
        An index job's files are decoded and embedded by `runner` (local or ray; default: settings.runner)."""
        config = jobs.pipeline_config(self.settings, workers)
        task, space = jobs.job_task(self.store, job_id)
        runner = jobs.job_runner(
            task, space, self.store, self.settings, self._models, self.dir, config, progress, self._stop_jobs, runner
        )
        with self._jobs_guard:  # after a look in progress: from here on, other_writer knows the lock is ours
            self._jobs_running += 1
        try:
            return runner.run(job_id)
        finally:
            with self._jobs_guard:
                self._jobs_running -= 1
            if task == clip_retrieval.TASK:
                self._models.reopen_indexes(space)

    def create_import_job(self, folder: str | Path, model: str | None = None, remote: bool = False) -> int:
        """A pending job importing a clip-retrieval embeddings folder (indexer.clip_retrieval), checked
        first (ImportFormatError); into `model`'s space, or with none an external space answering
        vector queries only (ModelSlot.for_import). Resumes an interrupted one. remote: as in create_job."""
        (root,) = jobs.job_roots([folder], allowed=self.settings.index_roots if remote else None)
        if remote and (busy := self.other_writer()):
            raise LibraryBusyError(busy)
        parts = self._models.for_import(model, clip_retrieval.read_layout(root).dim)
        return clip_retrieval.create_import_job(self.store, root, parts.space)

    def index(self, roots: list[str | Path], workers=None, progress: ProgressFn | None = None, runner=None) -> dict:
        """Index (or re-index) the roots: new and changed files are embedded, deleted ones removed."""
        return self.run_job(self.create_job(roots, runner=runner), workers=workers, progress=progress, runner=runner)

    # -- models: side by side, switched without downtime (services/models.py) -------------------
    def models(self) -> list[dict]:
        """The library's spaces: model, active or not, coverage, vectors and index bytes."""
        return models.describe(self.store, self.dir / "indexes")

    def create_model_job(self, spec: str) -> int:
        """A pending job embedding every media item with `spec`, beside the active model."""
        if spec == self.model_spec:
            raise ModelStateError(f"{spec!r} is already the library's model")
        parts = self._models.candidate(spec)
        if parts.space == self.encoder.space:
            raise ModelStateError(f"{spec!r} makes the active model's space ({parts.space})")
        record_space(self.store, spec, parts.space, parts.encoder.dim, active=False)
        return create_fill_job(self.store, parts.space, spec)

    def add_model(self, spec: str, workers: int | None = None, progress: Callable[[dict], None] | None = None) -> dict:
        return self.run_job(self.create_model_job(spec), workers=workers, progress=progress)

    def use_model(self, spec: str) -> None:
        """Switch to a model whose space covers every media item: searches in flight finish on
        the old one, the next ones use the new one (this process at once, others within a second)."""
        models.check_complete(self.store, spec)  # a clear refusal before loading anything
        parts = self._models.candidate(spec)
        with self._no_job_running("switch models"):
            row = models.check_complete(self.store, spec)  # again: a job may have added media since
            if parts.space != row.space:
                raise ModelMismatchError(f"model {spec!r} now makes space {parts.space!r}, not {row.space!r}")
            activate(self.store, row.space)
        self._models.swap(parts)

    def drop_model(self, spec: str) -> dict:
        """Remove a model that is not active: its vectors, index files (or collections) and record."""
        with self._no_job_running("drop models"):
            self._models.forget(spec)
            return models.drop(self.store, self.settings, self.dir, spec)

    @contextmanager
    def _no_job_running(self, doing: str) -> Iterator[None]:
        """Held while the library's models change: no job of this process or another runs meanwhile."""
        with self._jobs_guard:
            if self._jobs_running:
                raise LibraryBusyError(f"a job is running on this library; {doing} after it")
            with writer_lock(self.dir, store=self.store):
                yield

    def _forget_generator(self) -> None:
        with self._lock:
            self._generator = None  # drawn in the old model's space

    def stop_jobs(self) -> None:
        """Ask a running job to stop after its current batch (it ends 'interrupted')."""
        self._stop_jobs.set()

    def recent_jobs(self, limit: int = 20) -> list[dict]:
        """The latest jobs, newest first (without their error lists)."""
        return jobs.recent_jobs(self.store, limit)

    def job(self, job_id: int) -> dict | None:
        """A job's summary with its latest errors; None when there is no such job."""
        return jobs.job_with_errors(self.store, job_id)

    def search(self, request: SearchRequest) -> list[Hit]:
        return self.engine.search(request)

    def search_video(self, path: str | Path, request: SearchRequest) -> list[Hit]:
        """Search with a video clip's frames and pooled vector (services/video_query.py)."""
        q = video_query_vectors(str(path), self.encoder, self.pooler, self.sampling, self.settings.max_query_video_s)
        return self.engine.search_vectors(q, request)

    def timeline(self, request: SearchRequest) -> tuple[list[Hit], int]:
        """A page (request.k from request.offset) of the media passing the request's filters,
        newest first by capture time, and how many pass (search/browse.py)."""
        return browse.timeline(self.store, request)

    def places(self, limit: int = 200) -> list[tuple[str, int]]:
        """Place names with how many media were taken there, the most first."""
        return browse.places(self.store, limit)

    def duplicates(self, min_similarity: float | None = None, max_distance: int | None = None) -> DuplicateReport:
        """Groups of near-identical images with a suggested keeper (services/duplicates.py);
        the settings' thresholds where none are given. Nothing is deleted."""
        return self._duplicates.find(
            self.encoder.space,
            self.settings.duplicate_similarity if min_similarity is None else min_similarity,
            self.settings.duplicate_hash_distance if max_distance is None else max_distance,
        )

    def search_or_generate(self, request: SearchRequest, prompt: str | None, options: GenerateOptions) -> Outcome:
        """Search; on a miss, per options.mode, search with the prior or generate (see generate_on_miss)."""
        generator, unavailable = generator_for(options.mode, prompt, lambda: self.generator)
        options = with_generator_defaults(options, generator)
        self._check_step_budget(generator, options)
        with generator_errors():
            outcome = search_or_generate(
                self.engine,
                request,
                prompt,
                generator,
                options,
                self.miss_thresholds(),
                self.store_generated,
                self._drawings,
            )
        if unavailable and outcome.miss:
            outcome.steps.append({"stage": "generated", "error": unavailable})
        return outcome

    def store_generated(self, images: list[Image.Image], params: GenerationParams) -> list[int]:
        """Store and index drawn images as generated media; their ids (an image stored before keeps its id)."""
        return save_generated(self.store, self.indexes, self.encoder, self.dir, images, params)

    def generate(self, prompt: str, options: GenerateOptions) -> list[Hit]:
        """Generate, store and index images for a prompt; hits for them, scored against the prompt."""
        self._check_step_budget(self.generator, options)
        ids = self._drawings.run(None, lambda: self.store_generated(*self.draw(prompt, options)))
        return self.engine.hits_for_media(self.encoder.embed_texts([prompt])[0], ids, "generated")

    def generate_from_media(
        self, media_id: int, options: GenerateOptions, edit: Edit | None = None, interpolate: Towards | None = None
    ) -> list[Hit]:
        """Variations, interpolations and edits of an indexed image (see draw_from_media),
        stored and indexed; hits for them, scored against the source image."""
        self._check_step_budget(self.generator, options)
        ids = self._drawings.run(
            None, lambda: self.store_generated(*self.draw_from_media(media_id, options, edit, interpolate))
        )
        return self.engine.hits_for_media(self.media_vector(media_id), ids, "generated")

    def _check_step_budget(self, generator, options: GenerateOptions) -> None:
        """A drawing over the per-request budget is refused before it takes a place in the queue."""
        drawing.check_step_budget(generator, options, self.settings.generate_step_budget)

    def draw(self, prompt: str, options: GenerateOptions) -> tuple[list[Image.Image], GenerationParams]:
        """Images for a prompt and how they were made, not stored."""
        return drawing.draw(self.generator, prompt, options)

    def draw_from_media(
        self, media_id: int, options: GenerateOptions, edit: Edit | None = None, interpolate: Towards | None = None
    ) -> tuple[list[Image.Image], GenerationParams]:
        """DALL-E 2's latent tricks on an indexed image, not stored: variations of it, an
        interpolation towards another image, or a text-diff edit (see services.drawing)."""
        return drawing.draw_from_media(
            self.generator, self.encoder, self.media_vector, media_id, options, edit, interpolate
        )

    def delete_generated(self, media_ids: list[int]) -> list[int]:
        """Delete generated images (rows, vectors, files); see storage.generated.delete_generated."""
        return delete_generated(self.store, self.indexes, self.dir, media_ids)

    def media(self, media_id: int) -> Media | None:
        return self.store.media_by_id([media_id]).get(media_id)

    def media_many(self, media_ids: list[int]) -> dict[int, Media]:
        """Media rows by id; ids with no row are left out."""
        return self.store.media_by_id(media_ids)

    def media_vector(self, media_id: int) -> np.ndarray:
        """The stored embedding of an indexed media item (an image's vector, a video's pooled one)."""
        return self.engine.media_vector(media_id)

    def media_vectors(self, media_ids: list[int]) -> np.ndarray:
        """media_vector of each id, in order, read in one pass."""
        return self.engine.media_vectors(media_ids)

    def stats(self) -> dict:
        """The model in use and how much the library holds."""
        return contents.stats(self.store, self.encoder)

    def caption(self, media: Media) -> str | None:
        """The caption imported with a media item, else its first (sidecar .txt, synth manifest) or its prompt."""
        return media.caption or contents.caption(self._captions, media, self.dir)

    def counts(self) -> dict:
        """Media per kind, jobs per state and running jobs' progress (see Store.library_counts)."""
        return self.store.library_counts()

    def close(self) -> None:
        self._drawings.close()
        self._models.close()
        self.store.close()

    def __enter__(self) -> "Library":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
