import numpy as np
import pytest
from typer.testing import CliRunner

from mmsearch.cli import app
from mmsearch.evaluation.encoder_eval import attribute_queries, evaluate_encoder, precision_at_k


def test_precision_at_k_counts_relevant_items_in_the_top_k():
    scores = np.array([0.9, 0.8, 0.7, 0.1, 0.95])
    relevant = np.array([True, False, True, True, False])
    assert precision_at_k(scores, relevant, k=2) == 0.5
    assert precision_at_k(scores, relevant, k=4) == 0.5
    assert precision_at_k(scores, relevant, k=5) == 0.6


def test_attribute_queries_cover_the_vocabulary():
    groups = attribute_queries()
    assert len(groups["color"]) == 12 and len(groups["shape"]) == 6
    assert (
        "red circle",
        {"objects": [{"color": "red", "shape": "circle"}], "relation": None, "background": None},
    ) in groups["color+shape"]
    assert any(text == "large star" for text, _ in groups["size+shape"])


@pytest.mark.slow
def test_mini_ranks_heldout_images_by_attributes(mini_encoder, heldout_corpus):
    report = evaluate_encoder(mini_encoder, heldout_corpus)
    gallery = report["unique_caption_gallery"]
    assert gallery["size"] > 100 and not gallery["meets_min_size"]
    # A trained model is far above chance (1/size) on the unique-caption gallery.
    assert gallery["R@10"] >= 0.5
    groups = report["attribute_queries"]
    assert groups["color"]["P@10"] >= 0.9 and groups["position"]["P@10"] >= 0.9 and groups["size"]["P@10"] >= 0.9


@pytest.mark.slow
def test_eval_cli_prints_json(heldout_corpus):
    result = CliRunner().invoke(app, ["eval-encoder", "--model", "mini", "--data", str(heldout_corpus), "--json"])
    assert result.exit_code == 0, result.output
    assert '"R@1"' in result.output


def test_eval_cli_offline_hub_model_fails_fast(heldout_corpus, monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    result = CliRunner().invoke(
        app, ["eval-encoder", "--model", "ViT-B-32/laion2b_s34b_b79k", "--data", str(heldout_corpus)]
    )
    assert result.exit_code == 2
    assert "--model mini" in result.output
