"""Hybrid search: a query's words find file names, captions and places its embedding cannot,
the two rankings are fused by reciprocal rank fusion, and a lone quoted term is keywords only."""

from __future__ import annotations

from pathlib import Path

import pytest

from mmsearch.search.hybrid import RRF_K, fuse
from mmsearch.search.keywords import fts_query
from mmsearch.search.query import QueryError, SearchRequest, parse_text
from mmsearch.services.drawing import GenerateOptions
from tests.helpers import open_library
from tests.photos import make_photo_library, shape_image


@pytest.fixture(scope="module")
def library(tmp_path_factory, mini_encoder):
    base = tmp_path_factory.mktemp("hybrid")
    make_photo_library(base / "photos")
    (base / "photos" / "Algarve trip").mkdir()
    shape_image("circle", "red").save(base / "photos" / "Algarve trip" / "day one.png")
    lib = open_library(base / "lib", encoder=mini_encoder, generator="mini")
    lib.index([base / "photos"])
    yield lib
    lib.close()


def search(lib, text: str, **kw) -> list:
    return lib.search(SearchRequest(terms=parse_text(text), k=kw.pop("k", 5), **kw))


def test_reciprocal_rank_fusion():
    got = fuse({"vector": [1, 2, 3], "keyword": [3, 4]})
    assert got == [(3, "both"), (1, "vector"), (2, "vector"), (4, "keyword")]  # 2 and 4 tie: the first ranking's wins
    assert 1 / (RRF_K + 1) + 1 / (RRF_K + 3) > 1 / (RRF_K + 1)
    assert fuse({"keyword": [7, 5]}) == [(7, "keyword"), (5, "keyword")]


def test_fts_queries_quote_every_word():
    assert fts_query("IMG_2041") == '"IMG_2041"'
    assert fts_query("cats AND NOT dogs*") == '"cats" "AND" "NOT" "dogs"'
    assert fts_query("day one", phrase=True) == '"day one"'
    assert fts_query(" -- ") is None


def test_a_file_name_a_place_a_folder_and_a_description_are_found_by_their_words(library):
    top = search(library, "IMG_2041")[0]
    assert Path(top.path).name == "IMG_2041.jpg" and top.found_by in ("keyword", "both")
    lisbon = search(library, "Lisbon")
    assert {Path(h.path).name for h in lisbon[:2]} == {"canon_lisbon_2019.jpg", "canon_lisbon_2021.jpg"}
    assert all(h.found_by != "vector" for h in lisbon[:2])
    assert Path(search(library, "algarve")[0].path).name == "day one.png"  # its folder's name
    assert Path(search(library, "beach")[0].path).name == "sony_2020.jpg"  # its EXIF description
    assert Path(search(library, "EOS 5D")[0].path).name.startswith("canon_")  # its camera


def test_a_lone_quoted_term_is_searched_by_its_words_alone(library):
    hits = search(library, '"IMG_2041"', k=10)
    assert [(Path(h.path).name, h.found_by) for h in hits] == [("IMG_2041.jpg", "keyword")]
    assert search(library, '"day one"', k=10)[0].found_by == "keyword"
    assert search(library, '"one day"', k=10) == []  # a phrase: its words in order
    assert -1 <= hits[0].score <= 1  # still scored by its embedding


def test_modes(library):
    vector = search(library, "IMG_2041", mode="vector", k=10)
    assert {h.found_by for h in vector} == {"vector"}
    keyword = search(library, "Lisbon", mode="keyword", k=10)
    assert {Path(h.path).name for h in keyword} == {"canon_lisbon_2019.jpg", "canon_lisbon_2021.jpg"}
    assert search(library, "Lisbon", mode="keyword", camera="nikon") == []  # filters apply to words too
    with pytest.raises(QueryError, match="mode must be one of"):
        search(library, "x", mode="fuzzy")


def test_words_that_name_media_are_no_miss(library, generated_count):
    before = generated_count(library)
    outcome = library.search_or_generate(
        SearchRequest(terms=parse_text("IMG_2041"), k=3), "IMG_2041", GenerateOptions(mode="auto", steps=2)
    )
    assert (outcome.miss, outcome.via, outcome.steps[0]["stage"]) == (False, "text", "keyword")
    assert Path(outcome.hits[0].path).name == "IMG_2041.jpg"
    assert generated_count(library) == before
