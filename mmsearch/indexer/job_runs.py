"""What every library job shares, whatever its task (index, add-model): its row in SQL,
the writer lock it runs under, and the state it ends in.

Stale jobs: a job a dead process left 'running' or 'pending' becomes 'interrupted' (rerun
it to resume) once the writer lock shows no live process is indexing: when a job starts,
and when a library is opened (interrupt_stale_jobs).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path
from typing import Callable, Protocol

import numpy as np
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from ..storage.store import Job, Store, job_summary
from .lock import LibraryBusyError, writer_lock

log = logging.getLogger(__name__)

ProgressFn = Callable[[dict], None]

# How long a job waits for the writer lock: another process opening the library (or a server
# answering POST /jobs) holds it for an instant to look; only a longer hold is another job.
LOCK_WAIT_S = 2.0
INTERRUPTED_RUNNING = "the indexing process stopped before finishing; rerun to resume"
INTERRUPTED_PENDING = "the process that queued this job stopped before running it; rerun to resume"


class IndexSink(Protocol):
    """Where committed vectors go (the FAISS side); see storage/index_set.py."""

    def add(self, kind: str, ids: np.ndarray, vectors: np.ndarray) -> None: ...

    def remove(self, ids: list[int]) -> None: ...

    def checkpoint(self, force: bool = False) -> None: ...


def _alive(pid: int | None) -> bool:
    if not pid or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    except OSError:
        return False
    return True


def mark_dead_jobs(store: Store, at_open: bool = False) -> list[int]:
    """Call with the library's writer lock held. Any job still 'running' then belongs to a
    process that died (kill -9, power loss) before finishing. A 'pending' job is stale when
    the process that queued it is gone (a server stopped with jobs queued); when a library is
    being opened, one of this pid is stale too: an earlier life of the same pid queued it (a
    server is pid 1 in every life of its container), as a library just opened has queued
    nothing. Both become 'interrupted'; the ids marked are returned."""
    with store.session() as s:
        marked = []
        for job in s.scalars(select(Job).where(Job.state.in_(("running", "pending")))):
            if job.state == "running":
                job.message = INTERRUPTED_RUNNING
            elif (at_open and job.pid == os.getpid()) or (job.pid != os.getpid() and not _alive(job.pid)):
                job.message = INTERRUPTED_PENDING
            else:
                continue
            job.state = "interrupted"
            marked.append(job.id)
        return marked


def interrupt_stale_jobs(store: Store, library_dir: Path) -> list[int]:
    """When a library is opened: mark_dead_jobs if no live process holds the writer lock (one
    that does is indexing, and its jobs are not stale). A library folder or database that
    cannot be written leaves the jobs as they are (the library can still be searched)."""
    try:
        with writer_lock(library_dir, store=store):
            return mark_dead_jobs(store, at_open=True)
    except LibraryBusyError:
        return []
    except (OSError, SQLAlchemyError) as e:
        log.warning("could not check %s for stale index jobs: %s", library_dir, e)
        return []


def other_writer(library_dir: Path, store: Store | None = None) -> str | None:
    """Why a job cannot start now: another process holds the library's writer lock (the
    LibraryBusyError's message), else None. Looks by taking the lock for an instant."""
    try:
        with writer_lock(library_dir, store=store):
            return None
    except LibraryBusyError as e:
        return str(e)


def create_job(store: Store, roots: list[Path], space: str) -> int:
    with store.session() as s:
        job = Job(roots=[str(r) for r in roots], space=space, state="pending", pid=os.getpid())
        s.add(job)
        s.flush()
        return job.id


class JobCancelled(Exception):
    """The job was asked to stop (server shutdown); it ends as 'interrupted' and resumes next time."""


class JobRunner:
    """What every job run does around its work: the writer lock, the job row's state (running,
    then done, failed or interrupted), the index checkpoint after a failure, and progress."""

    store: Store
    sink: IndexSink
    library_dir: Path
    progress: ProgressFn | None
    stop: threading.Event

    def run(self, job_id: int) -> dict:
        """Run the job; raises LibraryBusyError (job marked failed) when another process is indexing."""
        try:
            with writer_lock(self.library_dir, wait_s=LOCK_WAIT_S, store=self.store):
                mark_dead_jobs(self.store)
                return self._run_locked(job_id)
        except LibraryBusyError as e:
            with self.store.session() as s:
                job = s.get(Job, job_id)
                job.state, job.message, job.finished_at = "failed", str(e), time.time()
            raise

    def _run_locked(self, job_id: int) -> dict:
        with self.store.session() as s:
            job = s.get(Job, job_id)
            roots = [Path(r) for r in job.roots]
            job.state, job.started_at, job.pid = "running", time.time(), os.getpid()
        try:
            self._run(job_id, roots)
        except BaseException as e:
            with self.store.session() as s:
                job = s.get(Job, job_id)
                job.state = "interrupted" if isinstance(e, (KeyboardInterrupt, JobCancelled)) else "failed"
                job.message, job.finished_at = f"{type(e).__name__}: {e}", time.time()
            self.sink.checkpoint(force=True)
            raise
        with self.store.session() as s:
            job = s.get(Job, job_id)
            job.state, job.finished_at, job.updated_at = "done", time.time(), time.time()
        self.sink.checkpoint(force=True)
        self._report(job_id)
        return self.summary(job_id)

    def _run(self, job_id: int, roots: list[Path]) -> None:
        raise NotImplementedError

    def summary(self, job_id: int) -> dict:
        with self.store.session() as s:
            return job_summary(s.get(Job, job_id))

    def _report(self, job_id: int) -> None:
        if self.progress:
            self.progress(self.summary(job_id))

    def _check_stop(self) -> None:
        if self.stop.is_set():
            raise JobCancelled("stopped before finishing; rerun to resume")
