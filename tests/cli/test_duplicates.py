"""`mmsearch duplicates`: the groups as a table and as JSON lines."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from mmsearch.cli import app
from tests.photos import make_duplicate_library

runner = CliRunner()


def test_duplicates_lists_the_groups_keeper_first(tmp_path):
    expected = make_duplicate_library(tmp_path / "photos")
    lib = tmp_path / "lib"
    assert runner.invoke(app, ["index", str(tmp_path / "photos"), "--library", str(lib)]).exit_code == 0
    result = runner.invoke(app, ["duplicates", "--json", "--library", str(lib)])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [[Path(m["path"]).name for m in g["members"]] for g in lines] == expected
    assert all(g["keeper"] == g["members"][0]["id"] for g in lines)
    table = runner.invoke(app, ["duplicates", "--limit", "1", "--library", str(lib)], env={"COLUMNS": "250"})
    assert table.exit_code == 0, table.output
    assert "keep" in table.stdout and "copy-0-small.jpg" in table.stdout and "copy-4" not in table.stdout
    assert "2 groups among 13 images (the first 1 listed)" in table.output
    bad = runner.invoke(app, ["duplicates", "--max-distance", "65", "--library", str(lib)])
    assert bad.exit_code == 2
