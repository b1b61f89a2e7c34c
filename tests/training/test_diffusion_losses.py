"""The generation models' training losses (mmsearch/training/diffusion_losses.py)."""

import numpy as np
import pytest
import torch

from mmsearch.generation.models import Decoder, DecoderConfig, DiffusionPrior, PriorConfig
from mmsearch.generation.samplers import eps_from_x0, model_target, noise_schedule
from mmsearch.training.diffusion_losses import (
    consistency_loss,
    decoder_loss,
    diffusion_loss,
    own_image_choice_loss,
    prior_loss,
    training_timesteps,
)


def test_choice_loss_rewards_picking_the_own_image():
    e = torch.eye(3)
    own = torch.tensor([0])
    assert own_image_choice_loss(e[:1], own, e).item() == pytest.approx(0.0, abs=1e-9)
    between = torch.nn.functional.normalize(e[0] + e[1], dim=0)[None]
    assert own_image_choice_loss(between, own, e).item() == pytest.approx(np.log(2), abs=1e-6)
    assert own_image_choice_loss(e[1:2] * 5, own, e).item() == pytest.approx(30.0, abs=1e-4)


def test_the_prior_loss_adds_the_choice_loss_only_when_weighted():
    torch.manual_seed(0)
    text, image = (torch.nn.functional.normalize(torch.randn(8, 16), dim=-1) for _ in range(2))
    plain = DiffusionPrior(PriorConfig(dim=16, width=32, layers=1, heads=2, cond_drop=0.0))
    weighted = DiffusionPrior(PriorConfig(dim=16, width=32, layers=1, heads=2, cond_drop=0.0, choice_weight=1.0))
    weighted.load_state_dict(plain.state_dict())
    a = prior_loss(plain, text, image, torch.Generator().manual_seed(1), candidates=image, own=torch.arange(8))
    b = prior_loss(weighted, text, image, torch.Generator().manual_seed(1), candidates=image, own=torch.arange(8))
    assert b.item() > a.item() + 0.1  # an untrained prior cannot tell 8 images apart: ~log 8 more


def test_consistency_loss_is_weighted_cosine_distance_to_the_embedding():
    decoder = Decoder(DecoderConfig(dim=3, channels=16))
    colours = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    x0 = (colours[:, :, None, None].expand(2, 3, 32, 32)) * 2 - 1  # flat images: shifts and blur leave them alike
    target = torch.nn.functional.normalize(torch.tensor([[1.0, 1.0, 0.0], [0.0, 1.0, 0.0]]), dim=-1)
    t = torch.tensor([0, 500])
    mean_colour = lambda pixels: pixels.mean((2, 3))  # noqa: E731  a 3-d "encoder": exact expectations
    schedule = noise_schedule(decoder.cfg.schedule, decoder.cfg.timesteps)
    got = consistency_loss(x0, target, t, schedule, mean_colour, torch.Generator().manual_seed(0))
    ab = schedule.alphas_cumprod
    want = (float(ab[0]) * (1 - 1 / np.sqrt(2)) + float(ab[500]) * 0.0) / 2
    assert got.item() == pytest.approx(want, abs=2e-3)  # the jitter's pixel noise (std 0.02) averages out to ~1e-3


def test_the_consistency_loss_reaches_the_decoder_through_the_frozen_encoder(mini_encoder):
    torch.manual_seed(0)
    decoder = Decoder(DecoderConfig(dim=mini_encoder.dim, channels=16, cond_drop=0.0))
    images = torch.rand(4, 3, 32, 32) * 2 - 1
    embeddings = torch.nn.functional.normalize(torch.randn(4, mini_encoder.dim), dim=-1)

    def grads(weight: float) -> torch.Tensor:
        decoder.zero_grad()
        decoder_loss(
            decoder, images, embeddings, torch.Generator().manual_seed(1), mini_encoder.image_features, weight
        ).backward()
        return torch.cat([p.grad.flatten() for p in decoder.parameters() if p.grad is not None])

    assert not torch.allclose(grads(0.0), grads(1.0))
    assert all(p.grad is None for p in mini_encoder.model.parameters())


def test_training_timesteps_uniform_or_logit_normal():
    gen = torch.Generator().manual_seed(0)
    uniform = training_timesteps(1000, 100_000, gen, "uniform")
    mid = training_timesteps(1000, 100_000, gen, "logit_normal")
    for t in (uniform, mid):
        assert t.dtype == torch.long and int(t.min()) >= 0 and int(t.max()) <= 999
    # t/T = sigmoid(z): the middle half of the steps holds P(|z| < ln 3) = 0.7286 of the draws, not 0.5.
    in_middle = lambda t: float(((t >= 250) & (t < 750)).float().mean())  # noqa: E731
    assert in_middle(uniform) == pytest.approx(0.5, abs=0.01)
    assert in_middle(mid) == pytest.approx(0.7286, abs=0.01)
    assert float((mid < 100).float().mean()) == pytest.approx(0.0141, abs=0.003)  # P(z < -ln 9)


def test_bad_timestep_sampling_raises_a_clear_error():
    with pytest.raises(ValueError, match="timestep sampling"):
        training_timesteps(100, 4, sampling="beta")


@pytest.mark.parametrize("prediction", ["x0", "eps", "v"])
def test_a_perfect_denoiser_has_zero_diffusion_loss_and_predicts_x0(prediction):
    schedule = noise_schedule("cosine", 1000)
    x0 = torch.randn(6, 3, 4, 4, generator=torch.Generator().manual_seed(0))

    def perfect(xt, t):
        return model_target(schedule, prediction, x0, eps_from_x0(schedule, xt, t, x0), t)

    mse, predicted, t = diffusion_loss(perfect, schedule, prediction, x0, torch.Generator().manual_seed(1))
    assert mse.item() == pytest.approx(0.0, abs=1e-8)
    torch.testing.assert_close(predicted, x0, atol=1e-3, rtol=0)
    assert t.shape == (6,) and t.dtype == torch.long
