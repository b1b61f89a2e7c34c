"""`mmsearch model` and the library's own model on the command line: searches without
--model use it, another --model is a clear error, and a new library without --model gets
the real default model (which, offline and uncached, fails fast suggesting mini)."""

import json

import pytest
from typer.testing import CliRunner

from mmsearch.cli import app
from mmsearch.config import DEFAULT_MODEL

from ..helpers import make_corpus, perturbed_mini

runner = CliRunner()


@pytest.fixture
def no_model_named(monkeypatch):
    """As a user's shell: no MMSEARCH_MODEL (the suite names mini)."""
    monkeypatch.delenv("MMSEARCH_MODEL")
    monkeypatch.setenv("MMSEARCH_DECODE_WORKERS", "0")


@pytest.mark.slow
def test_model_commands_switch_a_library_and_searches_follow(tmp_path, no_model_named):
    root, lib = tmp_path / "photos", str(tmp_path / "lib")
    make_corpus(root, n=12, seed=2)
    assert runner.invoke(app, ["index", str(root), "--library", lib, "--model", "mini"]).exit_code == 0
    listed = runner.invoke(app, ["model", "list", "--library", lib, "--json"])
    assert [(m["spec"], m["active"], m["covered"]) for m in map(json.loads, listed.stdout.splitlines())] == [
        ("mini", True, 12)
    ]
    searched = runner.invoke(app, ["search", "red circle", "--k", "3", "--json", "--library", lib])
    assert searched.exit_code == 0 and len(searched.stdout.splitlines()) == 3  # the library's model, unnamed

    model_b = str(perturbed_mini(tmp_path / "mini-b"))
    wrong = runner.invoke(app, ["search", "red circle", "--library", lib, "--model", model_b])
    assert wrong.exit_code == 2
    assert f"this library searches with model 'mini', not '{model_b}'" in " ".join(wrong.output.split())
    early = runner.invoke(app, ["model", "use", model_b, "--library", lib])
    assert early.exit_code == 2 and "no vectors of model" in early.output

    added = runner.invoke(app, ["model", "add", model_b, "--library", lib])
    assert added.exit_code == 0, added.output
    assert "12 media embedded" in added.output and "covers 12 of 12" in " ".join(added.output.split())
    table = runner.invoke(app, ["model", "list", "--library", lib]).stdout.splitlines()
    assert table[0].startswith("* mini  12/12 media (100%)") and table[1].startswith(f"  {model_b}  12/12 media")
    used = runner.invoke(app, ["model", "use", model_b, "--library", lib])
    assert used.exit_code == 0 and "now searches with" in used.output
    after = runner.invoke(app, ["search", "red circle", "--k", "3", "--json", "--library", lib])
    assert after.exit_code == 0 and after.stdout != searched.stdout
    assert runner.invoke(app, ["search", "red circle", "--library", lib, "--model", "mini"]).exit_code == 2
    dropped = runner.invoke(app, ["model", "drop", "mini", "--library", lib])
    assert dropped.exit_code == 0 and "dropped mini" in dropped.output
    assert len(runner.invoke(app, ["model", "list", "--library", lib]).stdout.splitlines()) == 1


def test_a_new_library_without_a_model_gets_the_default_which_fails_fast_offline(tmp_path, no_model_named):
    root = tmp_path / "photos"
    make_corpus(root, n=2, seed=2)
    result = runner.invoke(app, ["index", str(root), "--library", str(tmp_path / "lib")])
    assert result.exit_code == 2
    message = " ".join(result.output.split())
    assert f"weights for {DEFAULT_MODEL} is not in the local cache" in message and "--model mini" in message
