"""BLIP's image-text matching head (BlipEncoder.itm_scores) over several batches."""

import numpy as np
import pytest
import torch

from mmsearch.encoders import load_encoder

from .tiny_blip import scenes, tiny_blip_folder


@pytest.fixture(scope="module")
def blip(tmp_path_factory):
    """The tiny BLIP with a batch size of 2: six images take three batches."""
    return load_encoder(f"blip:{tiny_blip_folder(tmp_path_factory.mktemp('blip') / 'tiny-blip')}", "cpu", 2)


def test_itm_scores_over_three_batches_equal_the_scores_one_image_at_a_time(blip):
    images = scenes()
    assert blip.batch_size == 2 and len(images) == 6
    batched = blip.itm_scores("a red circle", images)
    one_by_one = np.concatenate([blip.itm_scores("a red circle", [im]) for im in images])
    assert batched.shape == (6,) and batched.dtype == np.float32
    np.testing.assert_allclose(batched, one_by_one, rtol=0, atol=1e-5)
    assert len(np.unique(np.round(batched, 4))) == 6  # six different scores: each batch saw its own images


def test_itm_scores_are_the_models_own_itm_probabilities(blip):
    """The same numbers as BlipForImageTextRetrieval's forward with its ITM head, in every batch."""
    images = scenes()[:5]
    for text in ("a red circle", "a blue square dog"):
        inputs = blip.processor(images=images, text=[text] * len(images), return_tensors="pt", padding=True)
        with torch.inference_mode():
            logits = blip.model(
                input_ids=inputs["input_ids"],
                attention_mask=inputs["attention_mask"],
                pixel_values=inputs["pixel_values"],
                use_itm_head=True,
            ).itm_score
        expected = torch.softmax(logits.float(), dim=-1)[:, 1].numpy()
        np.testing.assert_allclose(blip.itm_scores(text, images), expected, rtol=0, atol=1e-5)


def test_itm_scores_of_no_images_is_empty(blip):
    scores = blip.itm_scores("a red circle", [])
    assert scores.shape == (0,) and scores.dtype == np.float32
