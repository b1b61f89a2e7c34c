"""`mmsearch import clip-retrieval FOLDER`: with --model the text search finds the image mini
itself ranks first; without, the library answers vector queries only and a text search is a
clear error; a folder that is not clip-retrieval's output exits 2 saying why."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from mmsearch.cli import app

from ..helpers import make_corpus
from ..indexer.test_clip_retrieval_import import mini_folder, random_folder

runner = CliRunner()


@pytest.fixture
def no_model_named(monkeypatch):
    """As a user's shell: no MMSEARCH_MODEL (the suite names mini)."""
    monkeypatch.delenv("MMSEARCH_MODEL")


def said(result) -> str:
    return " ".join(result.output.split())


@pytest.mark.slow
def test_an_import_with_the_model_is_searched_by_text(tmp_path, mini_encoder, no_model_named):
    photos, lib = tmp_path / "photos", str(tmp_path / "lib")
    make_corpus(photos, n=12, seed=6)
    manifest = mini_folder(tmp_path / "cr", photos, mini_encoder)
    done = runner.invoke(app, ["import", "clip-retrieval", str(tmp_path / "cr"), "--library", lib, "--model", "mini"])
    assert done.exit_code == 0, done.output
    assert "job 1 done: clip-retrieval import: 12 new, 0 already in the library, 0 errors" in said(done)
    caption = manifest["items"][3]["caption"]
    text = mini_encoder.embed_texts([caption])[0]
    images = mini_encoder.embed_images([str((photos / i["file"]).resolve()) for i in manifest["items"]])
    best = str((photos / manifest["items"][int(np.argmax(images @ text))]["file"]).resolve())
    found = runner.invoke(app, ["search", caption, "--k", "3", "--json", "--library", lib])
    assert found.exit_code == 0, found.output
    assert json.loads(found.stdout.splitlines()[0])["path"] == best


def test_an_import_without_a_model_answers_no_text_search(tmp_path, no_model_named):
    lib = str(tmp_path / "lib")
    random_folder(tmp_path / "cr", sizes=(5, 4), dim=12)
    done = runner.invoke(app, ["import", "clip-retrieval", str(tmp_path / "cr"), "--library", lib])
    assert done.exit_code == 0, done.output
    assert "the library searches with external:12" in said(done)
    searched = runner.invoke(app, ["search", "a red circle", "--library", lib])
    assert searched.exit_code == 2
    assert "a text query needs the model that made this library's vectors" in said(searched)
    listed = runner.invoke(app, ["model", "list", "--library", lib, "--json"])
    assert [(m["spec"], m["dim"], m["covered"]) for m in map(json.loads, listed.stdout.splitlines())] == [
        ("external:12", 12, 9)
    ]
    again = runner.invoke(app, ["import", "clip-retrieval", str(tmp_path / "cr"), "--library", lib])
    assert again.exit_code == 0 and "0 new, 9 already in the library" in said(again)
    with_model = runner.invoke(app, ["import", "clip-retrieval", str(tmp_path / "cr"), "--library", lib, "-m", "mini"])
    assert with_model.exit_code == 2
    assert "this library searches with model 'external:12', not 'mini'" in said(with_model)


def test_a_folder_that_is_not_clip_retrievals_output_exits_2_saying_why(tmp_path):
    random_folder(tmp_path / "cr", sizes=(3, 3), dim=8)
    (tmp_path / "cr" / "metadata" / "metadata_0.parquet").unlink()
    result = runner.invoke(app, ["import", "clip-retrieval", str(tmp_path / "cr"), "--library", str(tmp_path / "lib")])
    assert result.exit_code == 2
    assert "img_emb_0.npy has no metadata file" in said(result)
    missing = runner.invoke(
        app, ["import", "clip-retrieval", str(tmp_path / "nowhere"), "--library", str(tmp_path / "lib")]
    )
    assert missing.exit_code == 2 and "is not a folder" in said(missing)
