"""POST /search with rerank: "itm" over a tiny BLIP library: the reranked order and its stage,
400 where the library's model has no ITM head or the query is not plain text, 422 on bad values."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from mmsearch.api.app import create_app
from mmsearch.encoders import load_encoder
from mmsearch.search.query import SearchRequest, build_terms

from ..encoders.tiny_blip import blip_corpus, tiny_blip_folder
from ..helpers import open_library

pytestmark = pytest.mark.slow  # builds and serves a library

TEXT = "a red circle"


@pytest.fixture(scope="module")
def blip_client(tmp_path_factory):
    base = tmp_path_factory.mktemp("rerank-api")
    blip = load_encoder(f"blip:{tiny_blip_folder(base / 'tiny-blip')}", "cpu", 2)
    lib = open_library(base / "lib", encoder=blip)
    lib.index([blip_corpus(base / "media")])
    yield TestClient(create_app(lib), raise_server_exceptions=False), lib
    lib.close()


@pytest.fixture(scope="module")
def mini_client(tmp_path_factory, mini_encoder):
    lib = open_library(tmp_path_factory.mktemp("rerank-api-mini") / "lib", encoder=mini_encoder)
    yield TestClient(create_app(lib), raise_server_exceptions=False)
    lib.close()


def test_search_reranked_over_http(blip_client):
    client, lib = blip_client
    plain = client.post("/search", json={"text": TEXT, "k": 8})
    reranked = client.post("/search", json={"text": TEXT, "k": 8, "rerank": "itm", "rerank_top": 8})
    assert plain.status_code == reranked.status_code == 200
    plain, reranked = plain.json(), reranked.json()
    expected = lib.search(SearchRequest(build_terms(TEXT), k=8, rerank="itm", rerank_top=8))
    assert [h["id"] for h in reranked["results"]] == [h.id for h in expected]
    assert [h["rerank_score"] for h in reranked["results"]] == [h.rerank_score for h in expected]
    scores = [h["rerank_score"] for h in reranked["results"]]
    assert len(scores) == 8 and scores == sorted(scores, reverse=True)
    assert sorted(h["id"] for h in reranked["results"]) == sorted(h["id"] for h in plain["results"])
    assert [h["id"] for h in reranked["results"]] != [h["id"] for h in plain["results"]]
    assert {"stage": "rerank", "method": "itm", "model": lib.encoder.name, "top": 8} in reranked["stages"]
    # Without a rerank, neither the stage nor the hits' rerank_score appear.
    assert all(st["stage"] != "rerank" for st in plain["stages"])
    assert all("rerank_score" not in h for h in plain["results"])


def test_rerank_top_defaults_to_twenty(blip_client):
    client, lib = blip_client
    body = client.post("/search", json={"text": TEXT, "rerank": "itm", "k": 3}).json()
    assert {"stage": "rerank", "method": "itm", "model": lib.encoder.name, "top": 20} in body["stages"]
    assert len(body["results"]) == 3 and all(h["rerank_score"] is not None for h in body["results"])


def test_a_rerank_that_is_not_plain_text_is_400(blip_client):
    client, _ = blip_client
    for body in (
        {"text": '"red" - "circle"', "rerank": "itm"},
        {"image_media_id": 1, "rerank": "itm"},
        {"text": TEXT, "terms": [{"media_id": 1}], "rerank": "itm"},
    ):
        r = client.post("/search", json=body)
        assert r.status_code == 400 and "text terms only" in r.json()["detail"], (body, r.text)


def test_a_rerank_on_a_library_without_an_itm_head_is_400(mini_client):
    r = mini_client.post("/search", json={"text": TEXT, "rerank": "itm"})
    assert r.status_code == 400
    assert r.json()["detail"] == (
        "rerank 'itm' needs a BLIP library (a blip: model): this library's model mini has no image-text matching head"
    )


@pytest.mark.parametrize(
    "extra",
    [
        {"rerank": "mmr"},
        {"rerank": ""},
        {"rerank": 1},
        {"rerank": "itm", "rerank_top": 0},
        {"rerank": "itm", "rerank_top": 201},
        {"rerank": "itm", "rerank_top": -5},
        {"rerank": "itm", "rerank_top": "ten"},
        {"rerank": "itm", "rerank_top": 2.5},
        {"rerank": "itm", "rerank_top": None},
        {"rerank_top": 5},  # without a rerank
        {"rerank": None, "rerank_top": 5},
    ],
)
def test_bad_rerank_values_are_422(mini_client, extra):
    r = mini_client.post("/search", json={"text": TEXT, **extra})
    assert r.status_code == 422, r.text
