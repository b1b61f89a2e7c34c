"""Index jobs as a request sees them: which folders a job walks, how its pipeline is set up,
and the summaries the CLI and the API show."""

from __future__ import annotations

from pathlib import Path

from ..config import Settings
from ..indexer.pipeline import PipelineConfig, default_decode_workers
from ..storage.store import Job, JobError, Store, job_summary

RECENT_JOB_ERRORS = 50  # a job's summary lists its latest errors; the rest stay in SQL


def job_roots(roots: list[str | Path]) -> list[Path]:
    """The folders a job walks: absolute, each a folder (FileNotFoundError otherwise), outermost only."""
    resolved = []
    for r in roots:
        p = Path(r).expanduser().resolve()
        if not p.is_dir():
            raise FileNotFoundError(f"{r} is not a folder")
        resolved.append(p)
    return outermost(resolved)


def outermost(paths: list[Path]) -> list[Path]:
    """The paths not inside another of them, sorted and without repeats: a root inside another
    root of the same job would be walked twice."""
    return sorted({p for p in paths if not any(p != q and p.is_relative_to(q) for q in paths)})


def pipeline_config(settings: Settings, workers: int | None = None) -> PipelineConfig:
    """Decode workers as asked, else as configured, else what suits this machine's cores."""
    if workers is None:
        workers = settings.decode_workers if settings.decode_workers is not None else default_decode_workers()
    return PipelineConfig(workers=workers, batch_size=settings.batch_size, max_pixels=settings.max_pixels)


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
