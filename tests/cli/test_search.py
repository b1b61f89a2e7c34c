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


def test_cli_capture_filters_and_sort(tmp_path, monkeypatch):
    from pathlib import Path

    from tests.photos import make_photo_library

    monkeypatch.setenv("MMSEARCH_DECODE_WORKERS", "0")
    make_photo_library(tmp_path / "photos")
    lib = tmp_path / "lib"
    assert runner.invoke(app, ["index", str(tmp_path / "photos"), "--library", str(lib)]).exit_code == 0

    def names(*flags: str, query: str = "a photo") -> list[str]:
        result = runner.invoke(app, ["search", query, "--json", "--generate", "never", "--library", str(lib), *flags])
        assert result.exit_code == 0, result.output
        return [Path(json.loads(line)["path"]).name for line in result.stdout.splitlines()]

    assert set(names("--camera", "canon")) == {"canon_lisbon_2019.jpg", "canon_lisbon_2021.jpg"}
    assert set(names("--near", "41.1496,-8.611,5")) == {"nikon_porto_2018.jpg", "iphone.heic"}
    assert set(names("--place", "lisbon", "--taken-after", "2020-01-01")) == {"canon_lisbon_2021.jpg"}
    assert names("--taken-after", "2022-01-01", "--sort", "date") == ["pixel.avif", "iphone.heic"]
    assert set(names("--mode", "keyword", query="Porto")) == {"nikon_porto_2018.jpg", "iphone.heic"}
    for flags, message in (
        (["--near", "41,-8"], "--near takes LAT,LON,KM"),
        (["--near", "91,0,5"], "near: (91.0, 0.0)"),
        (["--taken-before", "soon"], "--taken-before takes an ISO date"),
        (["--sort", "name"], "--sort must be one of"),
        (["--mode", "fuzzy"], "--mode must be one of"),
    ):
        result = runner.invoke(app, ["search", "a photo", "--library", str(lib), *flags])
        assert result.exit_code == 2 and message in result.output, result.output


@pytest.mark.slow
def test_cli_search_with_a_video_clip(video_library, monkeypatch):
    lib, root, manifest, _ = video_library
    monkeypatch.setenv("MMSEARCH_POOLING", "mean")  # as the library was indexed
    clip = root / manifest["items"][2]["file"]
    flags = ["--library", str(lib.dir), "--json", "--k", "1"]
    result = runner.invoke(app, ["search", "--video", str(clip), "--kind", "video", *flags])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout.splitlines()[0])["path"] == str(clip.resolve())
    both = runner.invoke(app, ["search", "red", "--video", str(clip), *flags])
    assert both.exit_code == 2 and "--video searches with the clip alone" in both.output
