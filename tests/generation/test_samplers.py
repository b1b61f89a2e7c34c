"""The diffusion math of generation/samplers.py, checked alone: closed forms of the schedules,
the forward process and the posterior, the prediction conversions, guidance, and one step."""

import math

import numpy as np
import pytest
import torch

from mmsearch.generation.samplers import (
    NoiseSchedule,
    classifier_free_guidance,
    cosine_betas,
    ddim_step,
    ddim_timesteps,
    ddpm_step,
    eps_from_x0,
    linear_betas,
    model_target,
    noise_schedule,
    predict_x0,
    q_mean_variance,
    q_posterior,
    q_sample,
)


def test_schedules_span_the_expected_noise_range():
    lin = linear_betas(1000)
    assert float(lin[0]) == pytest.approx(1e-4) and float(lin[-1]) == pytest.approx(0.02)
    cos = NoiseSchedule(cosine_betas(1000))
    assert float(cos.alphas_cumprod[0]) > 0.9999  # almost no noise at the first step
    assert float(cos.alphas_cumprod[-1]) < 1e-4  # almost pure noise at the last
    assert bool((cos.alphas_cumprod[1:] < cos.alphas_cumprod[:-1]).all())
    # The cosine schedule's alpha_bar follows its closed form.
    t, s = 500, 0.008
    f = lambda u: math.cos((u + s) / (1 + s) * math.pi / 2) ** 2  # noqa: E731
    assert float(cos.alphas_cumprod[t - 1]) == pytest.approx(f(t / 1000) / f(0), rel=1e-6)


def test_q_sample_mean_and_variance_match_the_closed_form():
    d = noise_schedule("linear", 1000)
    x0 = torch.tensor([1.5, -0.5, 0.0])
    n = 200_000
    torch.manual_seed(0)
    for step in (10, 300, 900):
        t = torch.full((n,), step)
        xt = q_sample(d, x0.expand(n, 3), t, torch.randn(n, 3))
        ab = float(d.alphas_cumprod[step])
        np.testing.assert_allclose(xt.mean(0).numpy(), math.sqrt(ab) * x0.numpy(), atol=0.01)
        np.testing.assert_allclose(xt.var(0).numpy(), [1 - ab] * 3, rtol=0.02)
        mean, var = q_mean_variance(d, x0[None], t[:1])
        np.testing.assert_allclose(mean[0].numpy(), math.sqrt(ab) * x0.numpy(), rtol=1e-6)
        assert float(var[0, 0]) == pytest.approx(1 - ab, rel=1e-5)


def test_posterior_mean_and_variance_equal_the_formula():
    betas = linear_betas(100).numpy()
    d = NoiseSchedule(torch.from_numpy(betas))
    alphas = 1 - betas
    ab = np.cumprod(alphas)
    x0, xt = torch.tensor([[0.7, -1.2]]), torch.tensor([[0.1, 0.4]])
    for step in (1, 50, 99):
        mean, var, _ = q_posterior(d, x0, xt, torch.tensor([step]))
        ab_t, ab_prev = ab[step], ab[step - 1]
        expected = (math.sqrt(ab_prev) * betas[step] / (1 - ab_t)) * x0.numpy() + (
            math.sqrt(alphas[step]) * (1 - ab_prev) / (1 - ab_t)
        ) * xt.numpy()
        np.testing.assert_allclose(mean.numpy(), expected, rtol=1e-5)
        assert float(var[0, 0]) == pytest.approx(betas[step] * (1 - ab_prev) / (1 - ab_t), rel=1e-5)


def test_posterior_is_the_distribution_of_x_t_minus_1_given_x_t_and_x0():
    """Empirically: draw x_{t-1} ~ q(. | x0), then x_t ~ q(x_t | x_{t-1}); among draws whose
    x_t lands near a chosen value, x_{t-1} averages to the posterior mean."""
    d = noise_schedule("linear", 100)
    step, x0, n = 40, 0.8, 2_000_000
    gen = torch.Generator().manual_seed(1)
    prev = q_sample(d, torch.full((n, 1), x0), torch.full((n,), step - 1), torch.randn(n, 1, generator=gen))
    beta = float(d.betas[step])
    xt = math.sqrt(1 - beta) * prev + math.sqrt(beta) * torch.randn(n, 1, generator=gen)
    target = float(xt.median())
    near = (xt - target).abs() < 0.01
    mean, var, _ = q_posterior(d, torch.tensor([[x0]]), torch.tensor([[target]]), torch.tensor([step]))
    assert float(prev[near].mean()) == pytest.approx(float(mean), abs=0.01)
    assert float(prev[near].var()) == pytest.approx(float(var), rel=0.1)


@pytest.mark.parametrize("prediction", ["x0", "eps", "v"])
def test_each_prediction_type_converts_back_to_x0_and_its_noise(prediction):
    d = noise_schedule("cosine", 1000)
    gen = torch.Generator().manual_seed(0)
    x0, eps = (
        torch.randn(5, 7, generator=gen, dtype=torch.float64),
        torch.randn(5, 7, generator=gen, dtype=torch.float64),
    )
    t = torch.tensor([0, 10, 500, 900, 999])
    xt = q_sample(d, x0, t, eps)
    out = model_target(d, prediction, x0, eps, t)
    torch.testing.assert_close(predict_x0(d, prediction, out, xt, t), x0, atol=1e-9, rtol=0)
    torch.testing.assert_close(eps_from_x0(d, xt, t, x0), eps, atol=1e-9, rtol=0)


def test_classifier_free_guidance_is_uncond_plus_scale_times_the_difference():
    cond, uncond = torch.tensor([1.0, 2.0]), torch.tensor([0.5, -1.0])
    torch.testing.assert_close(classifier_free_guidance(cond, uncond, 3.0), torch.tensor([2.0, 8.0]))
    assert torch.equal(classifier_free_guidance(cond, uncond, 1.0), cond)
    assert torch.equal(classifier_free_guidance(cond, uncond, 0.0), uncond)


def test_one_step_from_a_perfect_prediction_lands_on_the_forward_process():
    """With the true x0 and the x_t it was noised to, DDIM (eta 0) steps to q_sample at t_prev
    with the same noise, and DDPM without noise to the posterior mean."""
    d = noise_schedule("cosine", 1000)
    gen = torch.Generator().manual_seed(0)
    x0, eps = (
        torch.randn(3, 4, generator=gen, dtype=torch.float64),
        torch.randn(3, 4, generator=gen, dtype=torch.float64),
    )
    xt = q_sample(d, x0, 600, eps)
    prev = ddim_step(d, model_target(d, "v", x0, eps, 600), 600, xt, t_prev=550, prediction="v")
    torch.testing.assert_close(prev, q_sample(d, x0, 550, eps), atol=1e-9, rtol=0)
    clean = ddim_step(d, x0, 600, xt, t_prev=-1, prediction="x0")
    torch.testing.assert_close(clean, x0, atol=1e-9, rtol=0)
    mean, _, _ = q_posterior(d, x0, xt, 600)
    torch.testing.assert_close(ddpm_step(d, eps, 600, xt, prediction="eps"), mean, atol=1e-9, rtol=0)
    with pytest.raises(ValueError, match="noise"):
        ddim_step(d, x0, 600, xt, t_prev=550, prediction="x0", eta=1.0)


def test_bad_settings_raise_clear_errors():
    with pytest.raises(ValueError, match="schedule"):
        noise_schedule("quadratic")
    with pytest.raises(ValueError, match="prediction"):
        predict_x0(noise_schedule("linear", 100), "score", torch.zeros(1, 2), torch.zeros(1, 2), 0)
    with pytest.raises(ValueError, match="DDIM steps"):
        ddim_timesteps(noise_schedule("linear", 100).num_steps, 101)
    with pytest.raises(ValueError, match="betas"):
        NoiseSchedule(torch.tensor([0.5, 1.0]))
