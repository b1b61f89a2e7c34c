"""evaluation.miss_signal_eval and evaluation.miss_calibration: the miss rules measured against
the truth of synthetic corpora, per media kind."""

from __future__ import annotations

import numpy as np
import pytest

from mmsearch.config import Settings
from mmsearch.datasets.video_features import corpus_video_features
from mmsearch.encoders.temporal import resolve_pooler
from mmsearch.encoders.video import SamplingConfig
from mmsearch.evaluation.miss_calibration import best_split, calibrate
from mmsearch.evaluation.miss_signal_eval import COMBOS, KindData, evaluate_kind, image_data, video_data


def test_best_split_picks_the_cutoff_that_tells_the_two_apart():
    threshold, accuracy = best_split(np.array([0.5, 0.6, 0.7]), np.array([0.1, 0.2, 0.55]))
    assert accuracy == pytest.approx((2 / 3 + 1) / 2) and 0.2 < threshold <= 0.6


class ToyEncoder:
    """Texts and items in a 2-d space: a combo's text points along its own axis."""

    space = "toy"

    def embed_texts(self, texts):
        return np.array([[1.0, 0.0] if "red circle" in t else [0.0, 1.0] for t in texts], np.float32)


def test_evaluate_kind_counts_present_and_absent_queries_per_fold():
    # Ten images, each showing red circles: every fold that leaves red circle out has an empty library.
    shows = [{("red", "circle")} for _ in range(10)]
    data = KindData("image", np.tile([[1.0, 0.0]], (10, 1)).astype(np.float32), np.arange(10), shows, shows)
    report = evaluate_kind(data, ToyEncoder(), folds=4, previous=0.5)
    # Present: red circle, in three phrasings, in the three folds that keep it. Absent: every combination,
    # in three phrasings, in the fold that leaves it out; elsewhere the others are neither: uncounted.
    assert report["queries"] == {"set": "short", "present": 9, "absent": 3 * 72}
    assert report["previous"]["hit_rate_present"] == 1.0
    assert 0 <= report["calibrated"]["balanced_accuracy"] <= 1 and len(report["calibrated"]["thresholds"]) == 4
    assert len(COMBOS) == 72
    with pytest.raises(ValueError, match="short or captions"):
        evaluate_kind(data, ToyEncoder(), queries="typed")


@pytest.mark.slow
def test_the_calibrated_rule_tells_present_from_absent_on_heldout_images(mini_encoder, heldout_corpus):
    data = image_data(mini_encoder, heldout_corpus)
    assert data.media == 160 and data.captions
    report = evaluate_kind(data, mini_encoder)
    assert report["calibrated"]["balanced_accuracy"] >= 0.7  # 160 images: few matches per query, a hard case
    assert report["labelled_ceiling"] >= report["calibrated"]["balanced_accuracy"] - 0.05
    captions = evaluate_kind(data, mini_encoder, queries="captions")
    assert captions["queries"]["set"] == "captions" and captions["queries"]["present"] > 0
    labelled = calibrate(mini_encoder, heldout_corpus)  # the labelled calibration stays for measurement
    assert labelled["space"] == mini_encoder.space and 0 < labelled["text"]["threshold"] < 1


@pytest.mark.slow
def test_video_data_judges_frames_by_segment_and_keeps_the_engines_segment_and_pooled_vectors(mini_encoder, videos):
    root, manifest = videos
    settings = Settings(model="mini")
    features = corpus_video_features(root, mini_encoder, SamplingConfig.of(settings))
    data = video_data(features, resolve_pooler(settings))
    assert data.media == 8 and data.pooled.shape == (8, mini_encoder.dim)
    frames = sum(len(f.frames) for f in features)
    assert len(data.vectors) == len(data.owner) == len(data.segments) == frames
    assert set(data.owner.tolist()) == set(range(8))
    # segments are numbered across the corpus: as many as the engine's segment vectors, each of one video
    assert sorted(set(data.segments.tolist())) == list(range(len(data.ranked))) and len(data.ranked) >= 8
    assert all(len(set(data.owner[data.segments == k].tolist())) == 1 for k in range(len(data.ranked)))
    assert [data.ranked_owner[k] for k in data.segments.tolist()] == data.owner.tolist()
    shots = [s for i in manifest["items"] for s in i["shots"]]
    assert len(data.captions) == sum(s["motion"] != "changing color" for s in shots)
    report = evaluate_kind(data, mini_encoder, folds=2)
    assert report["kind"] == "video" and report["queries"]["present"] > 0 and report["queries"]["absent"] > 0
