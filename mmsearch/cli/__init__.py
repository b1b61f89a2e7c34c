"""The mmsearch command line: one typer app, a module per verb group; this wires them.

Commands are registered here, in the order `mmsearch --help` lists them."""

from __future__ import annotations

import logging

import typer

# Modules, not their functions: `from .index import index` would hide the module mmsearch.cli.index.
from . import db, demo, duplicates, evaluate, generate, imports, index, indexes, model, search, serve, synth, train

app = typer.Typer(
    help="mmsearch: multimodal search over your photos and videos.", no_args_is_help=True, add_completion=False
)


@app.callback()
def main(verbose: bool = typer.Option(False, "--verbose", "-v", help="Log debug messages.")) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )


app.command("synth")(synth.synth)
app.command("eval-encoder")(evaluate.eval_encoder)
app.command("eval-generation")(evaluate.eval_generation)
app.command("eval-video")(evaluate.eval_video)
app.command("index")(index.index)
app.command("index-info")(indexes.index_info)
app.command("search")(search.search)
app.command("duplicates")(duplicates.duplicates)
app.command("generate")(generate.generate)
app.command("delete-generated")(generate.delete_generated)
app.command("calibrate-miss")(evaluate.calibrate_miss)
app.command("serve")(serve.serve)
app.command("demo")(demo.demo)
app.add_typer(model.model_app, name="model")  # groups are listed after the commands
app.add_typer(train.train_app, name="train")
app.add_typer(imports.import_app, name="import")
app.add_typer(db.db_app, name="db")

__all__ = ["app"]
