"""`mmsearch model`: the library's models side by side: list them, add one while the active
one serves, switch once it is complete, drop one no longer used."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer

from .common import LIBRARY_OPT, console, failing_on, job_progress, open_library, progress_bar

model_app = typer.Typer(
    help="The library's models: list, add one beside the active one, switch to it, drop one.",
    no_args_is_help=True,
)


def _errors():
    from ..encoders.base import EncoderError
    from ..library import LibraryBusyError, ModelNotAdded, ModelStateError

    return EncoderError, LibraryBusyError, ModelNotAdded, ModelStateError


@model_app.command("list")
def list_models(
    library: Optional[Path] = LIBRARY_OPT,
    as_json: bool = typer.Option(False, "--json", help="One JSON object per model."),
) -> None:
    """The models the library holds vectors of: active or not, coverage, vectors, index size."""
    with open_library(library) as lib:
        rows = lib.models()
    for row in rows:
        if as_json:
            sys.stdout.write(json.dumps(row) + "\n")
            continue
        vectors = sum(row["vectors"].values())
        sys.stdout.write(
            f"{'*' if row['active'] else ' '} {row['spec'] or '(not recorded)'}  "
            f"{row['covered']}/{row['total']} media ({row['coverage']:.0%})  {vectors} vectors  "
            f"{row['index_bytes'] / 1e6:.1f} MB of indexes  [{row['space']}]\n"
        )
    if not rows and not as_json:
        console.print("no model yet: the first `mmsearch index` records the library's model")


@model_app.command("add")
def add(
    spec: str = typer.Argument(..., help="The model to add (an encoder spec, as --model takes)."),
    library: Optional[Path] = LIBRARY_OPT,
    workers: Optional[int] = typer.Option(None, min=0, help="Decode processes (as for `mmsearch index`)."),
) -> None:
    """Embed every media item with SPEC beside the active model, which keeps serving searches.
    Resumable: run it again after an interruption, or after indexing new files."""
    with failing_on(*_errors()):
        lib = open_library(library)
        job_id = lib.create_model_job(spec)
    with lib, progress_bar() as bar, failing_on(*_errors()):
        task = bar.add_task(f"add {spec} (job {job_id})", total=None, info="")
        summary = lib.run_job(job_id, workers=workers, progress=job_progress(bar, task))
        row = next(r for r in lib.models() if r["spec"] == spec)
    console.print(
        f"job {summary['id']} {summary['state']}: {summary['done'] - summary['errors']} media embedded with {spec}, "
        f"{summary['errors']} errors; it covers {row['covered']} of {row['total']}",
        soft_wrap=True,
    )
    if row["covered"] == row["total"]:
        console.print(f"switch to it with `mmsearch model use {spec}`", soft_wrap=True)


@model_app.command("use")
def use(
    spec: str = typer.Argument(..., help="A model added to the library."),
    library: Optional[Path] = LIBRARY_OPT,
) -> None:
    """Search with SPEC from now on (refused until it covers every media item). Servers of the
    library switch within a second, without a restart."""
    with failing_on(*_errors()), open_library(library) as lib:
        lib.use_model(spec)
    console.print(f"the library now searches with {spec}", soft_wrap=True)


@model_app.command("drop")
def drop(
    spec: str = typer.Argument(..., help="A model that is not the active one."),
    library: Optional[Path] = LIBRARY_OPT,
) -> None:
    """Remove a model's vectors and index files or Milvus collections (not the active model's)."""
    with failing_on(*_errors()), open_library(library) as lib:
        done = lib.drop_model(spec)
    collections = f", {done['collections']} Milvus collections" if done["collections"] else ""
    console.print(
        f"dropped {spec}: {done['vectors']} vectors, {done['files']} index files{collections}", soft_wrap=True
    )
