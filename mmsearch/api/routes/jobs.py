"""Library jobs (index, import): started here, run one at a time on the app's jobs executor,
followed by id."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Query

from ...library import ImportFormatError, LibraryBusyError, RootNotAllowedError, RunnerUnavailableError
from ..schemas import MAX_ID, JobIn
from ..state import AppState


def jobs_router(state: AppState) -> APIRouter:
    router = APIRouter()
    library = state.library

    @router.post("/jobs", status_code=202, dependencies=state.write)
    def start_job(body: JobIn) -> dict:
        """An index job (the default kind), or an import of a clip-retrieval folder. Roots must be
        absolute folders under MMSEARCH_INDEX_ROOTS (403 outside; 400 for what no folder is, a
        folder an import cannot read, or a runner this server cannot run); 409 while another
        process is indexing the library, or for an import model other than the library's."""
        try:
            if body.kind == "import":
                job_id = library.create_import_job(body.roots[0], model=body.model, remote=True)
            else:
                job_id = library.create_job(body.roots, remote=True, runner=body.runner)
        except (FileNotFoundError, ImportFormatError, RunnerUnavailableError) as e:  # the request's fault, here only
            raise HTTPException(400, str(e)) from e
        except RootNotAllowedError as e:
            raise HTTPException(403, str(e)) from e
        except LibraryBusyError as e:
            raise HTTPException(409, str(e)) from e
        state.start_job(job_id, runner=body.runner)
        return library.job(job_id)

    @router.get("/jobs", dependencies=state.read)
    def recent_jobs(limit: int = Query(20, ge=1, le=1000)) -> list[dict]:
        """The latest index jobs, newest first (a page reloaded mid-job finds it here)."""
        return library.recent_jobs(limit)

    @router.get("/jobs/{job_id}", dependencies=state.read)
    def job(job_id: int) -> dict:
        summary = library.job(job_id) if 1 <= job_id <= MAX_ID else None
        if summary is None:
            raise HTTPException(404, f"no job with id {job_id}")
        return summary

    return router
