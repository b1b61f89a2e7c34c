"""services.generate_on_miss: which generator a request gets, that a drawing on a miss
takes its seed from the one place that draws seeds, and which rule decides the miss."""

from __future__ import annotations

import numpy as np
import pytest

from mmsearch.search.engine import Hit, QueryVectors
from mmsearch.search.query import SearchRequest, parse_text
from mmsearch.services import drawing
from mmsearch.services.drawing import GenerateOptions
from mmsearch.services.drawing_queue import DrawingQueue
from mmsearch.services.generate_on_miss import MissThresholds, generator_for, judge_text, search_or_generate
from mmsearch.services.miss_signal import Verdict
from mmsearch.storage.generated import GenerationParams

from .test_drawing import FakeGenerator


def unavailable():
    raise drawing.GenerationUnavailable("generation is turned off")


def test_the_generator_is_loaded_only_when_the_request_may_draw():
    def must_not_load():
        raise AssertionError("loaded")

    assert generator_for("never", "a cat", must_not_load) == (None, None)
    assert generator_for("auto", None, must_not_load) == (None, None)
    generator = FakeGenerator()
    assert generator_for("auto", "a cat", lambda: generator) == (generator, None)
    assert generator_for("always", "a cat", lambda: generator) == (generator, None)


def test_auto_answers_without_a_generator_and_says_why_always_fails():
    assert generator_for("auto", "a cat", unavailable) == (None, "generation is turned off")
    with pytest.raises(drawing.GenerationUnavailable, match="generation is turned off"):
        generator_for("always", "a cat", unavailable)


class WeakEngine:
    """An engine whose best hit always misses; it scores what it is given at 0.5."""

    def query_vectors(self, terms, kind):
        return QueryVectors.single(np.ones(4, np.float32), "text")

    def search_vectors(self, q, req):
        return [Hit(id=1, path="/m/a.jpg", kind="image", score=0.1)]

    def search_query(self, q, req):  # no words name anything here
        return self.search_vectors(q, req)

    def hits_for_media(self, q, ids, via):
        return [Hit(id=i, path=f"/lib/{i}.png", kind="image", score=0.5, generated=True, via=via) for i in ids]


def test_always_draws_with_one_default_seed_and_stores_what_it_drew(monkeypatch):
    drawn = []
    monkeypatch.setattr(drawing.random, "randrange", lambda stop: drawn.append(stop) or 77)
    saved = []

    def save(images, params):
        saved.append((images, params))
        return [10, 11]

    generator = FakeGenerator()
    request = SearchRequest(terms=parse_text("a red circle"), k=2, kind="image")
    outcome = search_or_generate(
        WeakEngine(),
        request,
        "a red circle",
        generator,
        GenerateOptions(mode="always", n=2, steps=3),
        MissThresholds(0.3),
        save,
        DrawingQueue(),
    )
    assert drawn == [2**31]
    assert saved == [(["image 0", "image 1"], GenerationParams("a red circle", "fake", 77, 3, 4.0, "ddpm"))]
    assert [h.id for h in outcome.hits] == [10, 11] and outcome.via == "generated" and outcome.miss
    assert outcome.steps == [
        {"stage": "text", "rule": "configured", "best": 0.1, "threshold": 0.3},
        {"stage": "generated", "media": [10, 11]},
    ]


class FixedSignal:
    """A calibrated rule that answers what it is told, and counts its calls."""

    def __init__(self, verdict):
        self.verdict, self.calls = verdict, 0

    def judge(self, q, req):
        self.calls += 1
        return self.verdict


def _query():
    return QueryVectors.single(np.ones(4, np.float32), "text"), SearchRequest(terms=parse_text("x"), kind="video")


def test_a_configured_threshold_wins_over_the_calibrated_rule():
    signal = FixedSignal(Verdict("video", 0.1, 0.5))
    q, req = _query()
    step, miss = judge_text(q, req, 0.4, MissThresholds(text=0.3, signal=signal))
    assert (step, miss, signal.calls) == (
        {"stage": "text", "rule": "configured", "best": 0.4, "threshold": 0.3},
        False,
        0,
    )


def test_the_calibrated_rule_decides_and_says_so():
    q, req = _query()
    hit = judge_text(q, req, 0.345, MissThresholds(signal=FixedSignal(Verdict("video", 1.2, 0.9))))
    assert hit == (
        {"stage": "text", "rule": "calibrated", "best": 0.345, "threshold": 0.9, "kind": "video", "signal": 1.2},
        False,
    )
    step, miss = judge_text(q, req, 0.345, MissThresholds(signal=FixedSignal(Verdict("image", 0.2, 0.9))))
    assert miss and step["rule"] == "calibrated" and step["kind"] == "image"


def test_nothing_found_is_a_miss_and_a_library_without_vectors_answers_what_it_found():
    q, req = _query()
    signal = FixedSignal(None)
    assert judge_text(q, req, None, MissThresholds(signal=signal)) == (
        {"stage": "text", "rule": "empty", "best": None, "threshold": None},
        True,
    )
    assert signal.calls == 0  # nothing to judge
    assert judge_text(q, req, 0.2, MissThresholds(signal=signal)) == (
        {"stage": "text", "rule": "uncalibrated", "best": 0.2, "threshold": None},
        False,
    )
