"""What every verb of the CLI shares: the console, the shared options, failing, progress bars,
opening the library and the encoder, printing a report."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NoReturn, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from ..config import DEFAULT_MODEL, Settings, builtin_weights

console = Console(stderr=True)  # messages and bars; stdout carries only results (JSON, tables)
LIBRARY_OPT = typer.Option(
    None, "--library", "-l", help="Library folder (default: MMSEARCH_LIBRARY_DIR or ./mmsearch-library)."
)
MODEL_OPT = typer.Option(
    None,
    "--model",
    "-m",
    help="Encoder spec (default: the library's own model; for a new library MMSEARCH_MODEL, else "
    f"{DEFAULT_MODEL}). Another model than the library's is an error: see `mmsearch model`.",
)
BUILTIN_WEIGHTS = builtin_weights("mini")  # the trainers' default output folder


def progress_bar() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
    )


def loss_reporter(bar: Progress, task, digits: int = 3) -> Callable[[int, int, float], None]:
    """A trainer's progress callback (step, steps, loss) that moves `task` and shows the loss."""
    return lambda step, steps, loss: bar.update(task, completed=step, info=f"loss {loss:.{digits}f}")


@contextmanager
def training_bar(description: str, steps: int, digits: int = 3) -> Iterator[Callable[[int, int, float], None]]:
    """A bar of its own for one training run; yields the callback to hand the trainer."""
    with progress_bar() as bar:
        yield loss_reporter(bar, bar.add_task(description, total=steps, info=""), digits)


def fail(message: str, code: int = 2) -> NoReturn:
    # Escaped: a message's brackets (pip extras, file names) are text, not rich markup.
    console.print(f"[red]error:[/red] {escape(message)}", soft_wrap=True)
    raise typer.Exit(code)


@contextmanager
def failing_on(*errors: type[BaseException]) -> Iterator[None]:
    """Turn these exceptions into an error message and exit code 2, as `fail` does; and always
    a vector backend that cannot be reached (a Milvus server down, a Milvus Lite file another
    process holds), which any command opening the library's indexes may meet."""
    try:
        yield
    except errors as e:
        fail(str(e))
    except Exception as e:
        from ..library import MilvusUnavailableError  # only now: a library import loads torch

        if isinstance(e, MilvusUnavailableError):
            fail(str(e))
        raise


def tool_settings(**overrides) -> Settings:
    """Settings of the commands that train and evaluate on synthetic corpora, outside any
    library: their model is mini unless one is named (flag or MMSEARCH_MODEL)."""
    settings = Settings().with_overrides(**overrides)
    return settings if settings.model else settings.with_overrides(model="mini")


def open_library(library: Optional[Path], model: Optional[str] = None, device: Optional[str] = None, **overrides):
    """The library, with its own model unless another is named (then exit 2 if it is not the library's);
    `overrides`: other settings given as flags (None: not given)."""
    from ..library import Library, ModelMismatchError

    settings = Settings().with_overrides(library_dir=library, model=model, device=device, **overrides)
    with failing_on(ModelMismatchError):
        return Library.open(settings=settings)


def job_progress(bar: Progress, task) -> Callable[[dict], None]:
    """A job's progress callback (its summary after each batch) that moves `task`."""

    def show(summary: dict) -> None:
        elapsed = max(bar.tasks[task].elapsed or 0.0, 1e-6)
        bar.update(
            task,
            total=summary["total"],
            completed=summary["done"],
            info=f"{summary['done'] / elapsed:.1f} files/s, {summary['errors']} errors",
        )

    return show


def print_report(report: dict, as_json: bool) -> None:
    if as_json:
        sys.stdout.write(json.dumps(report) + "\n")
    else:
        console.print_json(json.dumps(report))
