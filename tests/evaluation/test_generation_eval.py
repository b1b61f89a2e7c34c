"""eval-generation's figures on a briefly trained generator (the `trained` fixture,
tests/conftest.py) judged by a briefly trained attribute classifier."""

import json

import pytest

from mmsearch.generation.unclip import MiniGenerator


@pytest.mark.slow
def test_eval_generation_reports_prior_and_decoder_figures(trained, mini_encoder, heldout_corpus, tmp_path):
    from mmsearch.evaluation.attribute_classifier import AttributeClassifier, ClassifierConfig, train_classifier
    from mmsearch.evaluation.generation_eval import evaluate_decoder, evaluate_prior

    base, gen_dir = trained
    report = train_classifier(
        base / "photos",
        tmp_path / "judge",
        steps=3,
        batch_size=8,
        cfg=ClassifierConfig(width=8, non_shapes=True),
        heldout_dir=heldout_corpus,
    )
    assert report["heldout"]["images"] == sum(
        1 for i in json.loads((heldout_corpus / "manifest.json").read_text())["items"] if len(i.get("objects", [])) == 1
    )
    assert set(report["heldout"]) == {
        "images",
        "shape_accuracy",
        "color_accuracy",
        "shape_accuracy_blurred",
        "color_accuracy_blurred",
        "none_rate",
        "none_rate_blurred",
        "non_shapes",
        "non_shape_rejection",
    }
    assert report["heldout"]["non_shapes"] == report["heldout"]["images"] // 6
    judge = AttributeClassifier.load(tmp_path / "judge")
    assert judge.shape_names == ["circle", "square", "triangle", "star", "hexagon", "cross", "none"]
    gen = MiniGenerator(mini_encoder, gen_dir)
    prior = evaluate_prior(gen, mini_encoder, heldout_corpus, max_captions=40)
    assert prior["captions"] == 40 and -1 <= prior["cosine_to_true_image_embedding"] <= 1
    assert 0 <= prior["R@1_prior"] <= 1 and 0 <= prior["R@1_text"] <= 1
    decoder = evaluate_decoder(gen, judge, prompts=3, settings=(("ddim", 2), ("ddim", 1)), draws=2)
    assert decoder["prompts"] == 3 and decoder["images"] == 6
    assert [(r["sampler"], r["steps"]) for r in decoder["rows"]] == [("ddim", 2), ("ddim", 1)]
    assert all(
        0 <= r["shape_accuracy"] <= 1 and 0 <= r["none_rate"] <= 1 and r["seconds_per_image"] > 0
        for r in decoder["rows"]
    )
