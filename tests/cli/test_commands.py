"""Every verb users' scripts call is still registered, under the same name, in the same order."""

import typer

from mmsearch.cli import app

TOP_LEVEL = [
    "synth",
    "eval-encoder",
    "eval-generation",
    "eval-video",
    "index",
    "index-info",
    "search",
    "duplicates",
    "generate",
    "delete-generated",
    "calibrate-miss",
    "serve",
    "demo",
    "model",
    "train",
    "import",
    "db",
]
TRAIN = ["clip", "temporal", "prior", "decoder", "attribute-classifier"]
MODEL = ["list", "add", "use", "drop"]


def test_every_command_is_registered_in_help_order():
    cli = typer.main.get_command(app)
    assert list(cli.commands) == TOP_LEVEL
    assert list(cli.commands["train"].commands) == TRAIN
    assert list(cli.commands["model"].commands) == MODEL
    assert list(cli.commands["import"].commands) == ["clip-retrieval"]
    assert list(cli.commands["db"].commands) == ["status", "upgrade"]
