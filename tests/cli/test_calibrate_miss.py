"""`mmsearch calibrate-miss`: a library's own calibration, with no labels; --data measures with them."""

import json

from typer.testing import CliRunner

from mmsearch.cli import app

from ..helpers import make_corpus

runner = CliRunner()


def test_calibrate_miss_works_on_any_library_without_labels(tmp_path, monkeypatch):
    monkeypatch.setenv("MMSEARCH_DECODE_WORKERS", "0")
    lib = tmp_path / "lib"
    empty = runner.invoke(app, ["calibrate-miss", "--library", str(lib), "--json"])
    assert empty.exit_code == 0, empty.output
    assert json.loads(empty.stdout)["kinds"] == {} and "nothing to calibrate" in empty.output
    make_corpus(tmp_path / "photos", n=16)
    assert runner.invoke(app, ["index", str(tmp_path / "photos"), "--library", str(lib)]).exit_code == 0
    result = runner.invoke(app, ["calibrate-miss", "--library", str(lib), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert set(report["kinds"]) == {"image"} and report["kinds"]["image"]["count"] == 16
    assert report["file"] == str((lib / "miss_signal.json").resolve())
    kept = json.loads((lib / "miss_signal.json").read_text())[report["space"]]["image"]
    assert kept["threshold"] == report["kinds"]["image"]["threshold"]


def test_save_needs_data():
    result = runner.invoke(app, ["calibrate-miss", "--save"])
    assert result.exit_code == 2 and "--save applies with --data" in result.output
