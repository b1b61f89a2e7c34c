"""`mmsearch index`: add, update and drop a library's media through an index job."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from .common import LIBRARY_OPT, MODEL_OPT, console, failing_on, job_progress, open_library, progress_bar


def index(
    roots: list[Path] = typer.Argument(..., help="Folders to index (recursively)."),
    library: Optional[Path] = LIBRARY_OPT,
    model: Optional[str] = MODEL_OPT,
    device: Optional[str] = typer.Option(None),
    workers: Optional[int] = typer.Option(
        None,
        min=0,
        help="Decode processes (default: MMSEARCH_DECODE_WORKERS, else 0 with 2 CPU cores or fewer, 2 above).",
    ),
) -> None:
    """Index new and changed files under ROOTS, and drop deleted ones."""
    from ..encoders.base import EncoderError
    from ..indexer.lock import LibraryBusyError

    with failing_on(EncoderError, FileNotFoundError):
        lib = open_library(library, model, device)
        job_id = lib.create_job(roots)
    with lib, progress_bar() as bar:
        task = bar.add_task(f"index job {job_id}", total=None, info="")
        with failing_on(LibraryBusyError):
            summary = lib.run_job(job_id, workers=workers, progress=job_progress(bar, task))
    console.print(
        f"job {summary['id']} {summary['state']}: {summary['new']} new, {summary['changed']} changed, "
        f"{summary['unchanged']} unchanged, {summary['deleted']} deleted, {summary['errors']} errors"
    )
    if summary["message"]:
        console.print(f"[yellow]{summary['message']}[/yellow]", soft_wrap=True)
