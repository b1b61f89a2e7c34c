"""services.miss_signal: the label-free miss rule, its calibration per media kind, kept in the
library folder, and the README's video moment (a correct video hit is not "No close match")."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mmsearch.datasets import synth
from mmsearch.search.query import SearchRequest, parse_text
from mmsearch.services import miss_signal
from mmsearch.services.drawing import GenerateOptions
from mmsearch.services.miss_signal import (
    CALIBRATION_FILE,
    PROBES_ID,
    RULE_VERSION,
    KindCalibration,
    MissSignal,
    best_of,
    miss_signal_for,
    probe_null,
    probe_z,
    threshold_of,
)

from ..helpers import make_corpus, open_library


def test_probe_z_reads_each_item_against_the_probes_on_that_item():
    probes = np.array([[1.0, 0.0], [0.0, 1.0]])
    items = np.array([[1.0, 0.0], [0.6, 0.8]])
    # Probe scores per item: [1, 0] (mean 0.5, std 0.5) and [0.6, 0.8] (mean 0.7, std 0.1).
    z = probe_z(np.array([0.8, 0.6]), probes, items)
    assert z.shape == (1, 2)
    assert z[0] == pytest.approx([(0.8 - 0.5) / 0.5, (0.96 - 0.7) / 0.1])


def test_the_null_reads_each_probe_against_the_others():
    rng = np.random.default_rng(0)
    probes, items = rng.normal(size=(5, 8)), rng.normal(size=(30, 8))
    null = probe_null(probes, items)
    assert null.shape == (5,)
    assert null[2] == pytest.approx(probe_z(probes[2], np.delete(probes, 2, axis=0), items).max())
    assert threshold_of(null) == pytest.approx(np.median(null))


def test_a_video_segment_stands_out_by_the_mean_of_its_two_best_frames():
    z = np.array([[1.0, 3.0, 2.6, 5.0, 0.0], [0.0, 4.0, 4.0, 1.0, 1.0]])
    segments = np.array([7, 7, 7, 9, 9])
    # Row 0: segment 7 (3 + 2.6) / 2 = 2.8 beats segment 9, whose one odd frame (5) has a poor second (0).
    # Row 1: a tie for a segment's best is its own second.
    assert best_of(z, segments).tolist() == pytest.approx([2.8, 4.0])
    assert best_of(z).tolist() == [5.0, 4.0]  # images: the best item
    # frames in any order; a segment of one frame is that frame
    assert best_of(np.array([[2.0, 6.0, 1.0]]), np.array([3, 8, 3])).tolist() == [6.0]
    assert best_of(np.zeros((2, 0)), np.zeros(0, np.int64)).tolist() == [-np.inf, -np.inf]


def test_a_calibration_is_stale_when_its_kind_grew_or_shrank_by_a_quarter_or_the_probes_changed():
    c = KindCalibration("image", "image", "space", threshold=1.0, count=100)
    assert not c.stale(100) and not c.stale(125) and not c.stale(80)
    assert c.stale(126) and c.stale(79)
    assert KindCalibration("image", "image", "space", 1.0, 100, probes="other").stale(100)
    assert KindCalibration("video", "segment", "space", 1.0, 100, rule=1).stale(100)


@pytest.fixture(scope="module")
def site(tmp_path_factory, mini_encoder):
    """40 images and 3 videos with default settings: the library of the web page's tests,
    where the README's video-moment example runs."""
    base = tmp_path_factory.mktemp("miss")
    make_corpus(base / "photos", n=40)
    manifest = synth.generate(base / "clips", 0, 3, seed=21, split="train")
    lib = open_library(base / "lib", encoder=mini_encoder)
    summary = lib.index([base / "photos", base / "clips"])
    assert summary["state"] == "done" and summary["errors"] == 0
    yield lib, base, manifest
    lib.close()


def _search(lib, text: str, kind: str, **filters):
    request = SearchRequest(terms=parse_text(text), k=5, kind=kind, **filters)
    return lib.search_or_generate(request, text, GenerateOptions(mode="never"))


def test_the_readme_video_moment_is_a_hit(site):
    lib, base, manifest = site
    item = next(i for i in manifest["items"] if len(i["shots"]) >= 2)
    outcome = _search(lib, item["shots"][-1]["caption"], "video")
    assert outcome.hits[0].path == str((base / "clips" / item["file"]).resolve())
    step = outcome.steps[0]
    assert step["rule"] == "calibrated" and step["kind"] == "video"
    assert step["signal"] >= step["threshold"] and not outcome.miss  # the page shows no "No close match"
    assert step["best"] == pytest.approx(outcome.hits[0].score, abs=1e-6)


def test_each_kind_is_calibrated_on_its_own_vectors_and_kept_in_the_library_folder(site):
    lib, _, _ = site
    signal = miss_signal_for(lib.engine, lib.dir)
    assert miss_signal_for(lib.engine, lib.dir) is signal  # one per engine: its cache
    kinds = signal.calibrate(force=True)
    assert set(kinds) == {"image", "video"}
    assert (kinds["image"].vectors, kinds["video"].vectors) == ("image", "frame")
    assert kinds["image"].count == 40 and kinds["video"].count == lib.indexes.size("segment")
    assert kinds["image"].threshold != kinds["video"].threshold and kinds["video"].rule == RULE_VERSION
    table = json.loads((lib.dir / CALIBRATION_FILE).read_text())
    recorded = table[lib.encoder.space]
    assert recorded["image"]["threshold"] == kinds["image"].threshold and recorded["video"]["probes"] == PROBES_ID
    # Another process (a fresh MissSignal) reads the record instead of calibrating again.
    again = MissSignal(lib.engine, lib.dir)
    assert again.calibration("image") == kinds["image"]


def test_on_a_small_library_the_runtime_rule_is_the_exact_one(site):
    """With fewer vectors than the candidates read, the index path sees every vector: the
    threshold and the signal are those of the plain computation over all of them."""
    lib, _, _ = site
    signal = MissSignal(lib.engine, None)
    vectors = np.concatenate([v for _, v in lib.store.iter_vectors(lib.indexes.space_of("image"), ("image",))])
    probes = signal.probes()
    assert signal.calibration("image").threshold == pytest.approx(threshold_of(probe_null(probes, vectors)), abs=1e-3)
    q = lib.engine.query_vectors(parse_text("red circle"), "image")
    verdict = signal.judge(q, SearchRequest(terms=parse_text("red circle"), kind="image"))
    assert verdict.kind == "image"
    assert verdict.signal == pytest.approx(probe_z(q.main, probes, vectors).max(), abs=1e-3)
    # videos: every frame, by segment
    segments, frames = (np.concatenate(x) for x in zip(*lib.store.iter_segment_frames(lib.indexes.space_of("frame"))))
    assert signal.calibration("video").threshold == pytest.approx(
        threshold_of(probe_null(probes, frames, segments)), abs=1e-3
    )
    q = lib.engine.query_vectors(parse_text("red circle"), "video")
    verdict = signal.judge(q, SearchRequest(terms=parse_text("red circle"), kind="video"))
    assert verdict.kind == "video"
    assert verdict.signal == pytest.approx(best_of(probe_z(q.main, probes, frames), segments)[0], abs=1e-3)


def test_a_calibration_recorded_by_the_segment_vector_rule_is_redone(site, tmp_path):
    lib, _, _ = site
    current = MissSignal(lib.engine, None).calibration("video")
    old = {"kind": "video", "vectors": "segment", "space": current.space, "threshold": 9.0, "count": current.count}
    (tmp_path / CALIBRATION_FILE).write_text(json.dumps({lib.encoder.space: {"video": old}}))
    again = MissSignal(lib.engine, tmp_path).calibration("video")
    assert (again.vectors, again.rule, again.threshold) == ("frame", RULE_VERSION, current.threshold)
    recorded = json.loads((tmp_path / CALIBRATION_FILE).read_text())[lib.encoder.space]["video"]
    assert (recorded["vectors"], recorded["rule"]) == ("frame", RULE_VERSION)


def test_a_large_kind_is_calibrated_on_every_nth_vector(site, monkeypatch):
    lib, _, _ = site
    exact = MissSignal(lib.engine, None).calibration("image")
    monkeypatch.setattr(miss_signal, "CALIBRATION_VECTORS", 10)  # 40 images: every 4th id
    sampled = MissSignal(lib.engine, None).calibration("image")
    assert sampled.count == exact.count == 40
    assert sampled.threshold <= exact.threshold  # each probe's best over fewer vectors is no higher


def test_any_kind_is_a_hit_when_one_kind_stands_out_and_filters_narrow_what_is_judged(site):
    lib, base, _ = site
    signal = miss_signal_for(lib.engine, lib.dir)
    q = lib.engine.query_vectors(parse_text("red circle"), "any")
    both = signal.judge(q, SearchRequest(terms=parse_text("red circle"), kind="any"))
    only_clips = signal.judge(
        q, SearchRequest(terms=parse_text("red circle"), kind="any", path_prefix=str((base / "clips").resolve()))
    )
    assert only_clips.kind == "video"
    assert both.signal - both.threshold >= only_clips.signal - only_clips.threshold
    nowhere = SearchRequest(terms=parse_text("red circle"), kind="any", path_prefix=str(base / "no-such-folder"))
    assert signal.judge(q, nowhere) is None
    assert _search(lib, "red circle", "any", path_prefix=str(base / "no-such-folder")).steps[0]["rule"] == "empty"


def test_a_configured_threshold_still_wins(site):
    lib, _, _ = site
    before = lib.settings
    lib.settings = before.with_overrides(miss_threshold=0.99)
    try:
        outcome = _search(lib, "red circle", "image")
    finally:
        lib.settings = before
    assert outcome.miss and outcome.steps[0] == {
        "stage": "text",
        "rule": "configured",
        "best": outcome.hits[0].score,
        "threshold": 0.99,
    }


def test_a_library_that_grew_by_more_than_a_quarter_is_calibrated_again(tmp_path, mini_encoder):
    make_corpus(tmp_path / "a", n=12, seed=3)
    make_corpus(tmp_path / "b", n=12, seed=4)
    with open_library(tmp_path / "lib", encoder=mini_encoder) as lib:
        lib.index([tmp_path / "a"])
        signal = miss_signal_for(lib.engine, lib.dir)
        first = signal.calibration("image")
        assert first.count == 12 and signal.calibration("video") is None  # no video yet: nothing to calibrate
        assert _search(lib, "red circle", "video").steps[0]["rule"] == "empty"
        lib.index([tmp_path / "b"])
        second = signal.calibration("image")
        assert second.count == 24 and second.calibrated_at >= first.calibrated_at
        recorded = json.loads((lib.dir / CALIBRATION_FILE).read_text())[lib.encoder.space]["image"]
        assert recorded["count"] == 24
