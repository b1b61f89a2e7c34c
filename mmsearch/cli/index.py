"""`mmsearch index`: add, update and drop a library's media through an index job."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..config import parse_bytes
from .common import LIBRARY_OPT, MODEL_OPT, console, failing_on, job_progress, open_library, progress_bar

UPKEEP_WAIT_S = 3600.0  # how long the command waits for its indexes' tuning before leaving it to the next open
INDEX_MEMORY_OPT = typer.Option(
    None,
    "--index-memory",
    help="Memory budget of the library's indexes together (2GiB, 500MB); default: MMSEARCH_INDEX_MEMORY, else none.",
)


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
    index_memory: Optional[str] = INDEX_MEMORY_OPT,
    runner: Optional[str] = typer.Option(
        None,
        "--runner",
        help="local: decode and embed in processes on this machine; ray: as Ray Data stages on a Ray cluster "
        "(pip install 'mmsearch[ray]'). Default: MMSEARCH_RUNNER, else local.",
    ),
    ray_address: Optional[str] = typer.Option(
        None,
        "--ray-address",
        help="The Ray cluster of --runner ray (HOST:6379 or ray://HOST:10001); default: MMSEARCH_RAY_ADDRESS, "
        "else a local Ray on this machine's CPUs.",
    ),
) -> None:
    """Index new and changed files under ROOTS, and drop deleted ones; then tune the indexes
    that grew for the target recall (MMSEARCH_TARGET_RECALL)."""
    from ..encoders.base import EncoderError
    from ..indexer.lock import LibraryBusyError
    from ..library import RunnerUnavailableError

    with failing_on(EncoderError, FileNotFoundError, ValueError, RunnerUnavailableError):
        budget = parse_bytes(index_memory) if index_memory else None
        lib = open_library(library, model, device, index_memory=budget, runner=runner, ray_address=ray_address)
        job_id = lib.create_job(roots)
    with lib, progress_bar() as bar:
        task = bar.add_task(f"index job {job_id}", total=None, info="")
        with failing_on(LibraryBusyError, RunnerUnavailableError):
            summary = lib.run_job(job_id, workers=workers, progress=job_progress(bar, task))
        if lib.indexes.upkeep.busy():  # a grown index is being rebuilt or tuned: finish it before leaving
            bar.add_task("tuning the indexes", total=None, info=f"recall@10 >= {lib.settings.target_recall}")
            if not lib.indexes.wait_upkeep(UPKEEP_WAIT_S):
                console.print("[yellow]index tuning goes on the next time the library is opened[/yellow]")
    console.print(
        f"job {summary['id']} {summary['state']}: {summary['new']} new, {summary['changed']} changed, "
        f"{summary['unchanged']} unchanged, {summary['deleted']} deleted, {summary['errors']} errors"
    )
    if summary["message"]:
        console.print(f"[yellow]{summary['message']}[/yellow]", soft_wrap=True)
