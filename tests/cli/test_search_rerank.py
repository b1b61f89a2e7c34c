"""`mmsearch search --rerank itm [--rerank-top N]` on a tiny BLIP library, and its refusals."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from mmsearch.cli import app
from mmsearch.encoders import load_encoder
from mmsearch.search.query import SearchRequest, build_terms

from ..encoders.tiny_blip import blip_corpus, tiny_blip_folder
from ..helpers import open_library

runner = CliRunner()
TEXT = "a red circle"


@pytest.fixture(scope="module")
def blip_library(tmp_path_factory):
    """(library folder, model spec) of an indexed tiny BLIP library, built by `mmsearch index`."""
    base = tmp_path_factory.mktemp("cli-rerank")
    model = f"blip:{tiny_blip_folder(base / 'tiny-blip')}"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MMSEARCH_DECODE_WORKERS", "0")
        mp.setenv("MMSEARCH_DEVICE", "cpu")
        result = runner.invoke(
            app, ["index", str(blip_corpus(base / "media")), "--library", str(base / "lib"), "-m", model]
        )
    assert result.exit_code == 0, result.output
    return base / "lib", model


def run_search(lib, model, *args):
    return runner.invoke(
        app, ["search", TEXT, "--library", str(lib), "-m", model, *args], env={"MMSEARCH_DEVICE": "cpu"}
    )


@pytest.mark.slow
def test_cli_rerank_prints_the_reranked_hits(blip_library):
    lib, model = blip_library
    plain = run_search(lib, model, "--k", "8", "--json")
    reranked = run_search(lib, model, "--k", "8", "--json", "--rerank", "itm", "--rerank-top", "8")
    assert plain.exit_code == 0 and reranked.exit_code == 0, reranked.output
    plain = [json.loads(line) for line in plain.stdout.splitlines()]
    hits = [json.loads(line) for line in reranked.stdout.splitlines()]
    assert all("rerank_score" not in h for h in plain)  # only a reranked hit carries one
    with open_library(lib, encoder=load_encoder(model, "cpu")) as library:
        expected = library.search(SearchRequest(build_terms(TEXT), k=8, rerank="itm", rerank_top=8))
    assert [h["id"] for h in hits] == [h.id for h in expected]
    assert [h["rerank_score"] for h in hits] == pytest.approx([h.rerank_score for h in expected], abs=2e-6)
    assert sorted(h["id"] for h in hits) == sorted(h["id"] for h in plain)
    assert [h["id"] for h in hits] != [h["id"] for h in plain]

    top3 = run_search(lib, model, "--k", "8", "--json", "--rerank", "itm", "--rerank-top", "3")
    top3 = [json.loads(line) for line in top3.stdout.splitlines()]
    assert [h["id"] for h in top3[3:]] == [h["id"] for h in plain[3:]]
    assert all("rerank_score" not in h for h in top3[3:]) and all("rerank_score" in h for h in top3[:3])


@pytest.mark.slow
def test_cli_rerank_table_shows_the_itm_scores(blip_library):
    lib, model = blip_library
    result = run_search(lib, model, "--k", "4", "--rerank", "itm")
    assert result.exit_code == 0, result.output
    assert "itm" in result.stdout.splitlines()[1]  # the table's header
    assert "reranked the first 20 hits by itm" in result.stderr


def test_cli_rerank_refusals(tmp_path):
    lib = str(tmp_path / "lib")
    result = runner.invoke(app, ["search", TEXT, "--library", lib, "--rerank", "mmr"])
    assert result.exit_code == 2 and "--rerank must be one of ('itm',)" in result.output
    result = runner.invoke(app, ["search", TEXT, "--library", lib, "--rerank-top", "5"])
    assert result.exit_code == 2 and "--rerank-top applies with --rerank" in result.output
    result = runner.invoke(app, ["search", TEXT, "--library", lib, "--rerank", "itm", "--rerank-top", "0"])
    assert result.exit_code == 2 and "--rerank-top" in result.output  # typer's range check
    # The built-in mini model has no image-text matching head.
    result = runner.invoke(app, ["search", TEXT, "--library", lib, "-m", "mini", "--rerank", "itm"])
    assert result.exit_code == 2 and "needs a BLIP library" in result.output
