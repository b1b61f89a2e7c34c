import json

import pytest
from typer.testing import CliRunner

from mmsearch.cli import app

from ..helpers import make_corpus, paths_with

runner = CliRunner()


@pytest.mark.slow
def test_cli_index_then_search(tmp_path, monkeypatch):
    monkeypatch.setenv("MMSEARCH_DECODE_WORKERS", "0")
    root = tmp_path / "photos"
    make_corpus(root)
    lib = tmp_path / "lib"
    result = runner.invoke(app, ["index", str(root), "--library", str(lib)])
    assert result.exit_code == 0, result.output
    assert "90 new" in result.output and "0 errors" in result.output
    result = runner.invoke(app, ["search", "red circle", "--k", "3", "--json", "--library", str(lib)])
    assert result.exit_code == 0, result.output
    hits = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(hits) == 3 and {h["path"] for h in hits} <= paths_with(root, color="red", shape="circle")
    table = runner.invoke(app, ["search", "red circle", "--library", str(lib)])
    assert table.exit_code == 0 and hits[0]["path"].split("/")[-1] in table.stdout
    again = runner.invoke(app, ["index", str(root), "--library", str(lib)])
    assert "0 new" in again.output and "90 unchanged" in again.output


def test_cli_search_errors_are_clear(tmp_path):
    lib = tmp_path / "lib"
    result = runner.invoke(app, ["search", "--library", str(lib)])
    assert result.exit_code == 2 and "nothing to search with" in result.output
    result = runner.invoke(app, ["index", str(tmp_path / "missing"), "--library", str(lib)])
    assert result.exit_code == 2 and "is not a folder" in result.output
