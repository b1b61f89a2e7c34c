"""Index jobs as a request sees them: which folders a job walks, how its pipeline is set up,
and the summaries the CLI and the API show."""

from __future__ import annotations

import os
import threading
from functools import partial
from pathlib import Path

from ..config import Settings
from ..encoders import load_encoder
from ..encoders.video import SamplingConfig
from ..indexer import clip_retrieval
from ..indexer.job_runs import JobRunner, ProgressFn
from ..indexer.jobs import IndexJobRunner
from ..indexer.pipeline import PipelineConfig, default_decode_workers
from ..indexer.runners import media_embedder
from ..indexer.scan import display_path
from ..indexer.space_filler import SpaceFiller
from ..storage.spaces import find_space
from ..storage.store import Job, JobError, Store, job_summary
from .active_model import ModelSlot

RECENT_JOB_ERRORS = 50  # a job's summary lists its latest errors; the rest stay in SQL
SHOWN_ROOT_CHARS = 200  # a root longer than this is cut in messages


class BadRootError(FileNotFoundError):
    """A root no folder can be (a NUL, a name that is not UTF-8 or too long, an unknown
    user's ~), or not absolute where it must be. A FileNotFoundError, so the CLI and the API
    answer it as they answer a missing folder (exit 2; 400)."""


class RootNotAllowedError(PermissionError):
    """A root outside the folders remote clients may index (MMSEARCH_INDEX_ROOTS); 403."""


def shown(root: str | os.PathLike) -> str:
    """A root as a message may show it: printable, valid UTF-8, and not too long."""
    text = display_path(root)
    text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
    return text if len(text) <= SHOWN_ROOT_CHARS else text[: SHOWN_ROOT_CHARS - 3] + "..."


def _resolved(root: str | Path, absolute_only: bool) -> Path:
    """The root as an absolute path, symlinks and '..' followed; BadRootError when no folder can have its name."""
    text = os.fspath(root)
    if absolute_only and not text:
        raise BadRootError("an empty root is not an absolute path")
    if "\x00" in text:
        raise BadRootError(f"{shown(text)} cannot be indexed: it holds a NUL character")
    if display_path(text) != text:
        raise BadRootError(f"{shown(text)} cannot be indexed: its name is not valid UTF-8")
    if absolute_only and not Path(text).is_absolute():
        raise BadRootError(f"{shown(text)} is not an absolute path")
    try:
        p = Path(text).expanduser().resolve()
        p.is_dir()  # an over-long name fails here, as a BadRootError
    except RuntimeError as e:  # ~user of no user (pathlib's message says only "home directory")
        raise BadRootError(f"{shown(text)} cannot be indexed: no such user's home folder") from e
    except (OSError, ValueError) as e:
        reason = getattr(e, "strerror", None) or str(e)
        raise BadRootError(f"{shown(text)} cannot be indexed: {reason}") from e
    return p


def _folder(root: str | Path, p: Path) -> Path:
    """The resolved root, when it is a folder whose stored paths can be written."""
    if not p.is_dir():
        raise FileNotFoundError(f"{shown(root)} is not a folder")
    if display_path(p) != str(p):  # through a symlink: the stored paths under it could not be written
        raise BadRootError(f"{shown(root)} cannot be indexed: it leads to {shown(p)}, whose name is not valid UTF-8")
    return p


def job_roots(roots: list[str | Path], allowed: list[Path] | None = None) -> list[Path]:
    """The folders a job walks: absolute, each a folder (FileNotFoundError otherwise), outermost only.

    With `allowed` (a remote client's job: POST /jobs), each root must be written as an absolute
    path and lie, once resolved (symlinks and '..' followed), inside one of the allowed folders
    (RootNotAllowedError otherwise; none allowed: every folder is refused). That is checked
    before whether the root exists, so a client cannot probe which folders exist outside them."""
    absolute_only = allowed is not None
    resolved = [_resolved(r, absolute_only) for r in roots]
    if allowed is not None:
        if not allowed:
            raise RootNotAllowedError(
                "indexing over HTTP is turned off: MMSEARCH_INDEX_ROOTS is empty "
                "(set it to the folders clients may index)"
            )
        allowed_real = [Path(os.path.realpath(a)) for a in allowed]
        for r, p in zip(roots, resolved):
            if not any(p == a or p.is_relative_to(a) for a in allowed_real):
                raise RootNotAllowedError(f"{shown(r)} is outside the folders MMSEARCH_INDEX_ROOTS allows")
    return outermost([_folder(r, p) for r, p in zip(roots, resolved)])


def outermost(paths: list[Path]) -> list[Path]:
    """The paths not inside another of them, sorted and without repeats: a root inside another
    root of the same job would be walked twice."""
    return sorted({p for p in paths if not any(p != q and p.is_relative_to(q) for q in paths)})


def pipeline_config(settings: Settings, workers: int | None = None) -> PipelineConfig:
    """Decode workers as asked, else as configured, else what suits this machine's cores."""
    if workers is None:
        workers = settings.decode_workers if settings.decode_workers is not None else default_decode_workers()
    return PipelineConfig(workers=workers, batch_size=settings.batch_size, max_pixels=settings.max_pixels)


def job_task(store: Store, job_id: int) -> tuple[str, str]:
    """(task, space) of a job: an index job, or an add-model job filling that space."""
    with store.session() as s:
        job = s.get(Job, job_id)
        if job is None:
            raise LookupError(f"no job with id {job_id}")
        return job.task, job.space


def recent_jobs(store: Store, limit: int = 20) -> list[dict]:
    """The latest jobs, newest first (without their error lists)."""
    with store.session() as s:
        return [job_summary(j) for j in s.query(Job).order_by(Job.id.desc()).limit(limit).all()]


def job_with_errors(store: Store, job_id: int) -> dict | None:
    """A job's summary with its latest errors, oldest first; None when there is no such job."""
    with store.session() as s:
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


def job_runner(
    task: str,
    space: str,
    store: Store,
    settings: Settings,
    models: ModelSlot,
    library_dir: Path,
    config: PipelineConfig,
    progress: ProgressFn | None,
    stop: threading.Event,
    runner: str | None = None,
) -> JobRunner:
    """What runs a job of this task: an import, a model's add job, or an index job (whose files
    are decoded and embedded by `runner`, default the settings' one)."""
    sampling = SamplingConfig.of(settings)
    if task == clip_retrieval.TASK:
        return clip_retrieval.importer(store, settings, space, progress, stop)
    if task == "add-model":
        parts = models.candidate(find_space(store, space=space).spec)
        return SpaceFiller(
            store, parts.encoder, parts.pooler, parts.indexes, library_dir, config, sampling, progress, stop
        )
    parts = models.current()
    load = partial(
        load_encoder,
        parts.spec,
        device=settings.device,
        batch_size=settings.batch_size,
        hub_timeout_s=settings.hub_timeout_s,
    )
    embedder = media_embedder(runner or settings.runner, parts.encoder, load, config, sampling, settings.ray_address)
    return IndexJobRunner(
        store, parts.encoder, parts.indexes, library_dir, config, progress, stop, sampling, parts.pooler, embedder
    )
