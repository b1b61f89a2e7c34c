import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mmsearch.datasets import synth
from mmsearch.datasets.vocab import COLOR_NAMES
from mmsearch.encoders import load_encoder
from mmsearch.training.augment import rotate_hue
from mmsearch.training.clip_trainer import (
    WEIGHTS_NAME,
    ClipTrainConfig,
    build_batch,
    load_image_cache,
    multi_positive_clip_loss,
    train_clip,
)


def test_loss_reduces_to_clip_loss_with_one_positive_each():
    torch.manual_seed(0)
    logits = torch.randn(6, 6) * 3
    labels = torch.arange(6)
    expected = (F.cross_entropy(logits, labels) + F.cross_entropy(logits.t(), labels)) / 2
    assert torch.allclose(multi_positive_clip_loss(logits, torch.eye(6)), expected)


def test_loss_spreads_targets_over_every_fitting_caption():
    logits = torch.zeros(2, 2)
    fits = torch.ones(2, 2)  # both captions fit both images: uniform logits are optimal
    assert multi_positive_clip_loss(logits, fits).item() == pytest.approx(math.log(2))


def test_batches_pair_images_with_captions_that_fit(tmp_path):
    manifest = synth.generate(tmp_path, 40, 0, seed=3)
    items = manifest["items"]
    images = load_image_cache(tmp_path, items, 64)
    assert images.shape == (40, 64, 64, 3)
    rng, gen = np.random.default_rng(0), torch.Generator().manual_seed(0)
    batch = build_batch(images, items, np.arange(16), rng, gen)
    x, texts, fits = batch.images, batch.texts, batch.fits
    assert x.shape == (16, 3, 64, 64) and 0 <= x.min() and x.max() <= 1
    assert len(texts) == 16 and all(texts)
    assert torch.all(torch.diagonal(fits) == 1)
    assert fits.sum() > 16  # short captions such as "a red shape" fit several images


@pytest.mark.slow
def test_training_resumes_and_exports_a_loadable_model(tmp_path):
    data = tmp_path / "data"
    synth.generate(data, 48, 0, seed=4)
    out = tmp_path / "model"
    cfg = ClipTrainConfig(steps=2, batch_size=16, warmup=1, checkpoint_every=1)
    assert train_clip(data, out, cfg)["steps"] == 2
    state = torch.load(out / "train-state.pt", weights_only=False)
    assert state["step"] == 2
    summary = train_clip(data, out, ClipTrainConfig(steps=3, batch_size=16, warmup=1, checkpoint_every=1))
    assert summary["steps"] == 3
    assert torch.load(out / "train-state.pt", weights_only=False)["step"] == 3
    enc = load_encoder(str(out), device="cpu")
    v = enc.embed_texts(["a red circle"])
    assert v.shape == (1, 256) and abs(float(np.linalg.norm(v)) - 1) < 1e-4


@pytest.mark.slow
def test_training_at_another_image_size_carries_the_weights_over(tmp_path):
    """--image-size 64 with --init from the shipped (96 px) weights: a 64 px model whose
    convolutions are the shipped ones and whose attention-pool position embedding is resized
    (3x3 grid + pooled token -> 2x2 + pooled token, the pooled token unchanged)."""
    from safetensors.torch import load_file

    from mmsearch.training.clip_trainer import BUILTIN_CONFIG

    data = tmp_path / "data"
    manifest = synth.generate(data, 24, 0, seed=5)
    out = tmp_path / "model64"
    shipped = BUILTIN_CONFIG.parent / WEIGHTS_NAME
    train_clip(
        data, out, ClipTrainConfig(steps=1, batch_size=8, lr=0.0, warmup=1, image_size=64, init_weights=str(shipped))
    )
    before, after = load_file(str(shipped)), load_file(str(out / WEIGHTS_NAME))
    key = "visual.attnpool.positional_embedding"
    assert before[key].shape[0] == 3 * 3 + 1 and after[key].shape == (2 * 2 + 1, before[key].shape[1])
    assert torch.equal(after[key][0], before[key][0])
    assert torch.equal(after["visual.conv1.weight"], before["visual.conv1.weight"])
    enc = load_encoder(str(out), device="cpu")
    assert enc.space.endswith("squash64pad1.6") and enc.embed_images([data / manifest["items"][0]["file"]]).shape == (
        1,
        256,
    )


def test_hard_negatives_fit_no_image_they_were_made_for(tmp_path):
    manifest = synth.generate(tmp_path, 32, 0, seed=6)
    images = load_image_cache(tmp_path, manifest["items"], 64)
    rng, gen = np.random.default_rng(1), torch.Generator().manual_seed(1)
    batch = build_batch(images, manifest["items"], np.arange(12), rng, gen, hard_negatives=True)
    texts, fits = batch.texts, batch.fits
    assert len(texts) == 24 and fits.shape == (12, 24)
    assert torch.all(torch.diagonal(fits[:, :12]) == 1)
    single = torch.tensor([len(i["objects"]) == 1 for i in manifest["items"][:12]])
    assert single.sum() >= 6
    # A changed attribute makes the caption false for a one-object image (with two objects the
    # changed value may belong to the other one; the fits matrix then counts it as a positive).
    assert torch.all(torch.diagonal(fits[:, 12:])[single] == 0)
    loss = multi_positive_clip_loss(torch.randn(12, 24), fits)
    assert torch.isfinite(loss)


def test_greyscale_images_get_colourless_captions_and_skip_colour_pairs(tmp_path):
    manifest = synth.generate(tmp_path, 32, 0, seed=8)
    items = manifest["items"]
    images = load_image_cache(tmp_path, items, 64)
    rng, gen = np.random.default_rng(2), torch.Generator().manual_seed(2)
    batch = build_batch(images, items, np.arange(16), rng, gen, hard_negatives=True, gray_prob=0.5)
    gray = batch.colorless
    assert 0 < int(gray.sum()) < 16
    # Greyscale images have equal channels (up to the per-image noise added afterwards).
    channel_spread = (batch.images[gray].max(1).values - batch.images[gray].min(1).values).mean()
    assert float(channel_spread) < 0.08
    colour_words = set(COLOR_NAMES)
    for k in torch.nonzero(gray).flatten().tolist():
        assert not colour_words & set(batch.texts[k].replace(",", " ").split()), batch.texts[k]
        assert batch.fits[k, k] == 1
    # Colour captions are neither positives nor negatives for greyscale images, and only for them.
    assert torch.all(batch.ignore[~gray] == 0)
    assert torch.all(batch.fits[batch.ignore] == 0)
    assert batch.ignore[gray].any()
    loss = multi_positive_clip_loss(torch.randn(16, 32), batch.fits, batch.ignore)
    assert torch.isfinite(loss)


def test_recoloured_images_keep_luma_and_get_colourless_captions(tmp_path):
    red = torch.tensor([0.8, 0.1, 0.1]).view(3, 1, 1).expand(3, 4, 4)

    def luma(im: torch.Tensor) -> float:
        return float((im[:, 0, 0] * torch.tensor([0.299, 0.587, 0.114])).sum())

    assert torch.allclose(rotate_hue(red, 0), red, atol=1e-5)
    turned = rotate_hue(red, 180)[:, 0, 0]
    assert turned[0] < turned[1] and turned[0] < turned[2]  # red turned half way round is cyan-ish
    muted = torch.tensor([0.6, 0.4, 0.35]).view(3, 1, 1).expand(3, 4, 4)  # no channel clipped when turned
    assert abs(luma(rotate_hue(muted, 120)) - luma(muted)) < 1e-3

    manifest = synth.generate(tmp_path, 16, 0, seed=9)
    items = manifest["items"]
    images = load_image_cache(tmp_path, items, 64)
    batch = build_batch(
        images, items, np.arange(16), np.random.default_rng(3), torch.Generator().manual_seed(3), recolor_prob=1.0
    )
    assert bool(batch.colorless.all())
    colour_words = set(COLOR_NAMES)
    assert not any(colour_words & set(t.replace(",", " ").split()) for t in batch.texts)
