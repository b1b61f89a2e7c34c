"""`mmsearch import`: bring in embeddings made elsewhere (clip-retrieval's inference output,
LAION's released embeddings) without embedding anything again."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional

import typer
from rich.progress import Progress

from ..config import Settings
from .common import LIBRARY_OPT, console, fail, failing_on, progress_bar

import_app = typer.Typer(help="Import embeddings made elsewhere into a library.", no_args_is_help=True)


def _shown(bar: Progress, task) -> Callable[[dict], None]:
    """A job's progress callback: rows read so far, their rate, and what the job does now."""

    def show(summary: dict) -> None:
        elapsed = max(bar.tasks[task].elapsed or 0.0, 1e-6)
        doing = summary["message"] if summary["done"] >= summary["total"] and summary["message"] else ""
        bar.update(
            task,
            total=summary["total"],
            completed=summary["done"],
            info=f"{summary['done'] / elapsed:,.0f} rows/s, {summary['errors']} errors {doing}".rstrip(),
        )

    return show


@import_app.command("clip-retrieval")
def clip_retrieval(
    folder: Path = typer.Argument(
        ..., help="clip-retrieval's output folder: img_emb/img_emb_N.npy beside metadata/metadata_N.parquet."
    ),
    library: Optional[Path] = LIBRARY_OPT,
    model: Optional[str] = typer.Option(
        None,
        "--model",
        "-m",
        help="The model that made the vectors (its dimension must match); text queries then work. Without it "
        "the vectors go to an external space that answers vector queries only (MMSEARCH_MODEL is not used).",
    ),
) -> None:
    """Import FOLDER's image embeddings and metadata: one media item per row (its path or URL and
    caption), searchable at once. Run it again after an interruption: it resumes."""
    from ..encoders.base import EncoderError
    from ..library import ImportFormatError, Library, LibraryBusyError, ModelMismatchError

    # No --model means "an unknown model", not the environment's default one for new libraries.
    settings = Settings().with_overrides(library_dir=library).model_copy(update={"model": model})
    with failing_on(ModelMismatchError, EncoderError, ImportFormatError, FileNotFoundError):
        lib = Library.open(settings=settings)
        job_id = lib.create_import_job(folder, model)
    with lib, progress_bar() as bar:
        task = bar.add_task(f"import job {job_id}", total=None, info="")
        with failing_on(LibraryBusyError, ImportFormatError):
            summary = lib.run_job(job_id, progress=_shown(bar, task))
    if summary["state"] != "done":
        fail(f"job {summary['id']} {summary['state']}: {summary['message']}")
    console.print(f"job {summary['id']} done: {summary['message']}", soft_wrap=True)
    console.print(f"the library searches with {lib.model_spec}", soft_wrap=True)
