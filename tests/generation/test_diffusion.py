import math

import numpy as np
import pytest
import torch

from mmsearch.generation.diffusion import GaussianDiffusion, classifier_free_guidance, cosine_betas, linear_betas


def test_schedules_span_the_expected_noise_range():
    lin = linear_betas(1000)
    assert float(lin[0]) == pytest.approx(1e-4) and float(lin[-1]) == pytest.approx(0.02)
    cos = GaussianDiffusion(cosine_betas(1000))
    assert float(cos.alphas_cumprod[0]) > 0.9999  # almost no noise at the first step
    assert float(cos.alphas_cumprod[-1]) < 1e-4  # almost pure noise at the last
    assert bool((cos.alphas_cumprod[1:] < cos.alphas_cumprod[:-1]).all())
    # The cosine schedule's alpha_bar follows its closed form.
    t, s = 500, 0.008
    f = lambda u: math.cos((u + s) / (1 + s) * math.pi / 2) ** 2  # noqa: E731
    assert float(cos.alphas_cumprod[t - 1]) == pytest.approx(f(t / 1000) / f(0), rel=1e-6)


def test_q_sample_mean_and_variance_match_the_closed_form():
    d = GaussianDiffusion.make("linear", 1000)
    x0 = torch.tensor([1.5, -0.5, 0.0])
    n = 200_000
    torch.manual_seed(0)
    for step in (10, 300, 900):
        t = torch.full((n,), step)
        xt = d.q_sample(x0.expand(n, 3), t)
        ab = float(d.alphas_cumprod[step])
        np.testing.assert_allclose(xt.mean(0).numpy(), math.sqrt(ab) * x0.numpy(), atol=0.01)
        np.testing.assert_allclose(xt.var(0).numpy(), [1 - ab] * 3, rtol=0.02)
        mean, var = d.q_mean_variance(x0[None], t[:1])
        np.testing.assert_allclose(mean[0].numpy(), math.sqrt(ab) * x0.numpy(), rtol=1e-6)
        assert float(var[0, 0]) == pytest.approx(1 - ab, rel=1e-5)


def test_posterior_mean_and_variance_equal_the_formula():
    betas = linear_betas(100).numpy()
    d = GaussianDiffusion(torch.from_numpy(betas))
    alphas = 1 - betas
    ab = np.cumprod(alphas)
    x0, xt = torch.tensor([[0.7, -1.2]]), torch.tensor([[0.1, 0.4]])
    for step in (1, 50, 99):
        mean, var, _ = d.q_posterior(x0, xt, torch.tensor([step]))
        ab_t, ab_prev = ab[step], ab[step - 1]
        expected = (math.sqrt(ab_prev) * betas[step] / (1 - ab_t)) * x0.numpy() + (
            math.sqrt(alphas[step]) * (1 - ab_prev) / (1 - ab_t)
        ) * xt.numpy()
        np.testing.assert_allclose(mean.numpy(), expected, rtol=1e-5)
        assert float(var[0, 0]) == pytest.approx(betas[step] * (1 - ab_prev) / (1 - ab_t), rel=1e-5)


def test_posterior_is_the_distribution_of_x_t_minus_1_given_x_t_and_x0():
    """Empirically: draw x_{t-1} ~ q(. | x0), then x_t ~ q(x_t | x_{t-1}); among draws whose
    x_t lands near a chosen value, x_{t-1} averages to the posterior mean."""
    d = GaussianDiffusion.make("linear", 100)
    step, x0, n = 40, 0.8, 2_000_000
    gen = torch.Generator().manual_seed(1)
    prev = d.q_sample(torch.full((n, 1), x0), torch.full((n,), step - 1), torch.randn(n, 1, generator=gen))
    beta = float(d.betas[step])
    xt = math.sqrt(1 - beta) * prev + math.sqrt(beta) * torch.randn(n, 1, generator=gen)
    target = float(xt.median())
    near = (xt - target).abs() < 0.01
    mean, var, _ = d.q_posterior(torch.tensor([[x0]]), torch.tensor([[target]]), torch.tensor([step]))
    assert float(prev[near].mean()) == pytest.approx(float(mean), abs=0.01)
    assert float(prev[near].var()) == pytest.approx(float(var), rel=0.1)


def _perfect_model(d: GaussianDiffusion, x0: torch.Tensor):
    """A denoiser that knows x0 and answers in d's prediction type."""

    def model_fn(xt, t):
        eps = d.eps_from_x0(xt, t, x0)
        return d.training_target(x0, eps, t)

    return model_fn


@pytest.mark.parametrize("prediction", ["x0", "eps", "v"])
def test_ddpm_and_ddim_with_all_steps_and_a_perfect_predictor_recover_x0(prediction):
    d = GaussianDiffusion.make("cosine", 200, prediction)
    x0 = torch.randn(4, 3, 8, 8, generator=torch.Generator().manual_seed(0)).clamp(-1, 1)
    x_T = torch.randn(x0.shape, generator=torch.Generator().manual_seed(1))
    model_fn = _perfect_model(d, x0)
    ddpm = d.ddpm_sample(model_fn, x_T, torch.Generator().manual_seed(2))
    ddim = d.ddim_sample(model_fn, x_T, steps=200)
    torch.testing.assert_close(ddpm, x0, atol=1e-4, rtol=0)
    torch.testing.assert_close(ddim, x0, atol=1e-4, rtol=0)
    assert d.ddim_timesteps(200) == list(range(199, -1, -1))


def test_ddim_eta_zero_is_deterministic_and_eta_one_depends_on_the_seed():
    d = GaussianDiffusion.make("cosine", 1000, "eps")
    net = torch.nn.Sequential(torch.nn.Linear(5, 16), torch.nn.Tanh(), torch.nn.Linear(16, 4))
    model_fn = lambda x, t: net(torch.cat([x, t[:, None].float() / 1000], 1))  # noqa: E731
    x_T = torch.randn(3, 4, generator=torch.Generator().manual_seed(0))

    def run(eta, seed):
        return d.ddim_sample(model_fn, x_T.clone(), steps=25, eta=eta, generator=torch.Generator().manual_seed(seed))

    assert torch.equal(run(0.0, 1), run(0.0, 2))  # no noise drawn at all
    assert torch.equal(run(1.0, 1), run(1.0, 1))
    assert not torch.allclose(run(1.0, 1), run(1.0, 2))
    assert len(d.ddim_timesteps(25)) == 25 and d.ddim_timesteps(25)[0] == 999 and d.ddim_timesteps(25)[-1] == 0


def test_classifier_free_guidance_extrapolates_from_uncond_in_one_batched_call():
    calls = []

    def forward(x, t, c):
        calls.append(x.shape[0])
        return x + c  # cond moves the output by c, the null condition (0) does not

    x, t = torch.ones(2, 3), torch.zeros(2, dtype=torch.long)
    cond, null = torch.full((2, 3), 0.5), torch.zeros(1, 3)
    out = classifier_free_guidance(forward, cond, null, scale=3.0)(x, t)
    torch.testing.assert_close(out, x + 3.0 * 0.5)  # uncond + 3 * (cond - uncond)
    assert calls == [4]


def test_training_timesteps_uniform_or_logit_normal():
    d = GaussianDiffusion.make("cosine", 1000)
    gen = torch.Generator().manual_seed(0)
    uniform = d.training_timesteps(100_000, gen, "uniform")
    mid = d.training_timesteps(100_000, gen, "logit_normal")
    for t in (uniform, mid):
        assert t.dtype == torch.long and int(t.min()) >= 0 and int(t.max()) <= 999
    # t/T = sigmoid(z): the middle half of the steps holds P(|z| < ln 3) = 0.7286 of the draws, not 0.5.
    in_middle = lambda t: float(((t >= 250) & (t < 750)).float().mean())  # noqa: E731
    assert in_middle(uniform) == pytest.approx(0.5, abs=0.01)
    assert in_middle(mid) == pytest.approx(0.7286, abs=0.01)
    assert float((mid < 100).float().mean()) == pytest.approx(0.0141, abs=0.003)  # P(z < -ln 9)


def test_bad_settings_raise_clear_errors():
    with pytest.raises(ValueError, match="schedule"):
        GaussianDiffusion.make("quadratic")
    with pytest.raises(ValueError, match="prediction"):
        GaussianDiffusion.make("linear", 10, "score")
    with pytest.raises(ValueError, match="DDIM steps"):
        GaussianDiffusion.make("linear", 100).ddim_timesteps(101)
    with pytest.raises(ValueError, match="timestep sampling"):
        GaussianDiffusion.make("linear", 100).training_timesteps(4, sampling="beta")
