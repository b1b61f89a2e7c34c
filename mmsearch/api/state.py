"""What the routers of one app share, built once per app and handed to each router factory."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from fastapi import Depends

from ..config import Settings
from ..library import Library
from .files import ThumbnailCache
from .observability import Metrics
from .security import Access

log = logging.getLogger(__name__)


@dataclass
class AppState:
    library: Library
    settings: Settings
    jobs: ThreadPoolExecutor  # index jobs, one at a time, in order
    metrics: Metrics
    access: Access
    thumbnails: ThumbnailCache

    @classmethod
    def of(cls, library: Library) -> "AppState":
        settings = library.settings
        return cls(
            library=library,
            settings=settings,
            jobs=ThreadPoolExecutor(max_workers=1, thread_name_prefix="index-job"),
            metrics=Metrics(library),
            access=Access(settings),
            thumbnails=ThumbnailCache(library.dir / "thumbnails"),
        )

    @property
    def read(self) -> list:
        """Route dependencies of reads (an API key when the server protects reads)."""
        return [Depends(self.access.read)]

    @property
    def manage(self) -> list:
        """Route dependencies of model management (keys must be configured, and sent)."""
        return [Depends(self.access.manage)]

    @property
    def write(self) -> list:
        """Route dependencies of requests that change the library (an API key when keys are set)."""
        return [Depends(self.access.write)]

    def start_job(self, job_id: int, runner: str | None = None) -> None:
        """Run a library job (index or add-model) on the jobs executor, after those before it;
        an index job's files decoded and embedded by `runner` (default: the settings')."""

        def run() -> None:
            try:
                self.library.run_job(job_id, runner=runner)
            except Exception:  # the job row records the failure; keep the worker alive
                log.exception("job %d failed", job_id)

        self.jobs.submit(run)

    def close(self) -> None:
        self.library.stop_jobs()  # a running job stops after its batch, as 'interrupted'; the next job resumes it
        self.jobs.shutdown(wait=True, cancel_futures=True)
