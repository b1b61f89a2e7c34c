"""The ITM rerank (search/rerank.py) on a real library: six images and two videos indexed
with a tiny BLIP of the real architecture (random weights), searched with and without it."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from sqlalchemy import select

from mmsearch.encoders import load_encoder
from mmsearch.search.query import QueryError, SearchRequest, Term, build_terms
from mmsearch.search.rerank import rerank_text
from mmsearch.storage.store import Segment

from ..encoders.tiny_blip import blip_corpus, scenes, tiny_blip_folder
from ..helpers import open_library

TEXT = "a red circle"


@pytest.fixture(scope="module")
def blip(tmp_path_factory):
    """Batch size 2: a rerank of eight hits runs the ITM head over four batches."""
    return load_encoder(f"blip:{tiny_blip_folder(tmp_path_factory.mktemp('blip') / 'tiny-blip')}", "cpu", 2)


@pytest.fixture(scope="module")
def blip_library(tmp_path_factory, blip):
    base = tmp_path_factory.mktemp("rerank")
    root = blip_corpus(base / "media")
    lib = open_library(base / "lib", encoder=blip)
    summary = lib.index([root])
    assert summary["state"] == "done" and summary["errors"] == 0 and summary["done"] == 8
    yield lib
    lib.close()


def search(lib, text=TEXT, **kw):
    return lib.search(SearchRequest(build_terms(text), **kw))


def picture(lib, hit) -> Image.Image:
    """The picture a hit should be judged on, found here independently of the rerank: an
    image's file; a video's keyframe of the segment its moment's middle lies in."""
    if hit.kind == "image":
        return Image.open(hit.path).convert("RGB")
    middle = (hit.t_start + hit.t_end) / 2
    with lib.store.session() as s:
        rows = s.execute(select(Segment.t_start, Segment.t_end, Segment.keyframe).where(Segment.media_id == hit.id))
        keyframe = next(kf for a, b, kf in rows if a <= middle <= b)
    return Image.open(keyframe).convert("RGB")


def itm_of(lib, blip, hits) -> dict[int, float]:
    scores = blip.itm_scores(TEXT, [picture(lib, h) for h in hits])
    return {h.id: float(p) for h, p in zip(hits, scores)}


@pytest.mark.slow
def test_rerank_orders_the_hits_by_the_itm_head(blip_library, blip):
    plain = search(blip_library, k=8)
    assert len(plain) == 8 and {h.kind for h in plain} == {"image", "video"}
    assert all(h.rerank_score is None for h in plain)
    itm = itm_of(blip_library, blip, plain)
    expected = sorted(plain, key=lambda h: -itm[h.id])  # stable: ties keep the cosine order

    reranked = search(blip_library, k=8, rerank="itm", rerank_top=8)
    assert [h.id for h in reranked] == [h.id for h in expected]
    assert [h.id for h in reranked] != [h.id for h in plain]  # the ITM head disagrees with the cosine
    for hit in reranked:
        assert hit.rerank_score == pytest.approx(itm[hit.id], abs=2e-6)
    assert [h.rerank_score for h in reranked] == sorted((h.rerank_score for h in reranked), reverse=True)
    cosine = {h.id: h.score for h in plain}
    assert {h.id: h.score for h in reranked} == cosine  # score stays the cosine
    videos = [h for h in reranked if h.kind == "video"]
    assert len(videos) == 2 and all(h.t_start is not None for h in videos)  # judged on their moments' keyframes


@pytest.mark.slow
def test_rerank_top_reorders_only_the_first_hits(blip_library, blip):
    plain = search(blip_library, k=8)
    itm = itm_of(blip_library, blip, plain[:3])
    reranked = search(blip_library, k=8, rerank="itm", rerank_top=3)
    assert [h.id for h in reranked[:3]] == [h.id for h in sorted(plain[:3], key=lambda h: -itm[h.id])]
    assert [h.id for h in reranked[3:]] == [h.id for h in plain[3:]]
    assert all(h.rerank_score is None for h in reranked[3:])


@pytest.mark.slow
def test_pages_are_cut_from_the_reranked_order(blip_library):
    whole = search(blip_library, k=8, rerank="itm", rerank_top=6)
    pages = [search(blip_library, k=3, offset=o, rerank="itm", rerank_top=6) for o in (0, 3, 6)]
    assert [h.id for page in pages for h in page] == [h.id for h in whole]
    assert pages[2][0].rerank_score is None  # past the first six: the cosine order


@pytest.mark.slow
def test_kind_filter_applies_before_the_rerank(blip_library, blip):
    plain = search(blip_library, k=8, kind="image")
    assert len(plain) == 6 and all(h.kind == "image" for h in plain)
    itm = itm_of(blip_library, blip, plain)
    reranked = search(blip_library, k=8, kind="image", rerank="itm")
    assert [h.id for h in reranked] == [h.id for h in sorted(plain, key=lambda h: -itm[h.id])]


@pytest.mark.slow
def test_a_hit_whose_file_is_gone_follows_the_scored_ones(tmp_path, blip):
    root = tmp_path / "media"
    root.mkdir()
    for i, im in enumerate(scenes()[:4]):
        im.save(root / f"scene-{i}.png")
    with open_library(tmp_path / "lib", encoder=blip) as lib:
        lib.index([root])
        plain = search(lib, k=4)
        gone = plain[0]
        kept = plain[1:]
        itm = itm_of(lib, blip, kept)
        (root / gone.path.rsplit("/", 1)[1]).unlink()
        reranked = search(lib, k=4, rerank="itm")
    assert [h.id for h in reranked] == [h.id for h in sorted(kept, key=lambda h: -itm[h.id])] + [gone.id]
    assert reranked[-1].rerank_score is None


def test_a_rerank_on_a_library_without_an_itm_head_is_refused(tmp_path, mini_encoder):
    with open_library(tmp_path / "lib", encoder=mini_encoder) as lib:
        with pytest.raises(QueryError) as err:
            search(lib, rerank="itm")
    assert "needs a BLIP library" in str(err.value) and "has no image-text matching head" in str(err.value)


@pytest.mark.slow
@pytest.mark.parametrize(
    "req, message",
    [
        (SearchRequest(build_terms(TEXT), rerank="mmr"), "rerank must be one of ('itm',)"),
        (SearchRequest(build_terms(TEXT), rerank="itm", rerank_top=0), "rerank_top must be between 1 and 200"),
        (SearchRequest(build_terms(TEXT), rerank="itm", rerank_top=201), "rerank_top must be between 1 and 200"),
        (SearchRequest(build_terms('"red" - "circle"'), rerank="itm"), "text terms only, none of them negative"),
        (SearchRequest(build_terms(media_id=1), rerank="itm"), "text terms only"),
        (SearchRequest(build_terms(TEXT, vector=np.ones(24)), rerank="itm"), "text terms only"),
    ],
)
def test_a_rerank_that_cannot_run_is_a_query_error(blip_library, req, message):
    with pytest.raises(QueryError) as err:
        blip_library.search(req)
    assert message in str(err.value)


def test_the_itm_caption_is_the_text_terms_joined(blip):
    assert rerank_text(SearchRequest(build_terms(TEXT), rerank="itm"), blip) == TEXT
    joined = SearchRequest(build_terms('2*"red circle" + "blue square"'), rerank="itm")
    assert rerank_text(joined, blip) == "red circle, blue square"
    assert rerank_text(SearchRequest([Term(text="dog", weight=0.5)], rerank="itm"), blip) == "dog"


@pytest.mark.slow
def test_a_rerank_leaves_the_miss_judged_by_the_cosine_best(blip_library):
    # Before: the miss check read the reranked page's first hit, the best by ITM, not by cosine.
    from mmsearch.services.drawing import GenerateOptions

    def first_stage(**kw):
        outcome = blip_library.search_or_generate(
            SearchRequest(build_terms(TEXT), k=3, **kw), TEXT, GenerateOptions(mode="never")
        )
        return outcome.steps[0]

    plain = first_stage()
    assert plain["best"] == search(blip_library, k=1)[0].score
    for kw in ({"rerank": "itm"}, {"rerank": "itm", "offset": 2}):
        assert first_stage(**kw) == plain
