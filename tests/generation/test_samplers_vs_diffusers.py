"""Our schedules and steps against diffusers' DDIMScheduler and DDPMScheduler on the same betas.

How diffusers is configured to be our sampler:
- trained_betas = our betas; prediction_type "epsilon" / "sample" / "v_prediction" for our
  "eps" / "x0" / "v" (the decoder predicts v, the prior x0);
- clip_sample with clip_sample_range 1.0 where we clamp x0 to [-1, 1] (the decoder), off
  where we do not (the prior); use_clipped_model_output=True, because we always take the
  noise direction from the (clamped) x0;
- set_alpha_to_one=True: the last step goes to alpha_bar = 1, the clean sample, as ours does.
- Spacing: our DDIM timesteps are diffusers' "linspace" ones. But DDIMScheduler.step always
  goes from t to t - T // n, which is the next timestep only when the timesteps are T // n
  apart ("leading" with steps_offset 0, or all T steps); we step to the next timestep of the
  grid. So one step is compared on the "leading" grid, passing t_prev = t - T // n, and a
  whole run with all T steps.
- Precision: diffusers keeps alphas_cumprod in float32, whose 1 - alpha_bar near t = 0
  (about 4e-5 on the cosine schedule) is off by up to ~1e-3 relative; ours are float64 tables
  on purpose. Comparing in float64 with diffusers' table set to the same float64 cumprod (the
  numbers it computes, kept at that precision) leaves only rounding: tolerance 1e-12. As
  shipped (float32 tables) the same steps agree within 2e-4.
"""

import pytest
import torch

from mmsearch.generation import samplers
from mmsearch.generation.pipelines import ddim_loop

diffusers = pytest.importorskip("diffusers")

DIFFUSERS_PREDICTION = {"eps": "epsilon", "x0": "sample", "v": "v_prediction"}
T = 1000


def ddim_scheduler(schedule, prediction, clip, spacing, float64=True):
    scheduler = diffusers.DDIMScheduler(
        num_train_timesteps=schedule.num_steps,
        trained_betas=schedule.betas.numpy(),
        clip_sample=clip is not None,
        clip_sample_range=1.0,
        set_alpha_to_one=True,
        steps_offset=0,
        prediction_type=DIFFUSERS_PREDICTION[prediction],
        timestep_spacing=spacing,
    )
    if float64:
        scheduler.alphas_cumprod = schedule.alphas_cumprod.clone()
        scheduler.final_alpha_cumprod = torch.tensor(1.0, dtype=torch.float64)
    return scheduler


def test_our_schedules_are_diffusers_cosine_and_linear_ones():
    cosine = diffusers.DDIMScheduler(num_train_timesteps=T, beta_schedule="squaredcos_cap_v2")
    torch.testing.assert_close(samplers.cosine_betas(T).float(), cosine.betas, atol=0, rtol=1e-6)
    linear = diffusers.DDIMScheduler(num_train_timesteps=T, beta_schedule="linear")
    torch.testing.assert_close(samplers.linear_betas(T).float(), linear.betas, atol=0, rtol=1e-6)


@pytest.mark.parametrize("steps", [1, 2, 25, 64, 333, 999, 1000])
def test_our_ddim_timesteps_are_diffusers_linspace_spacing(steps):
    scheduler = ddim_scheduler(samplers.noise_schedule("cosine", T), "v", 1.0, "linspace")
    scheduler.set_timesteps(steps)
    assert samplers.ddim_timesteps(T, steps) == scheduler.timesteps.tolist()


@pytest.mark.parametrize("float64", [True, False])
@pytest.mark.parametrize("eta", [0.0, 1.0])
@pytest.mark.parametrize("prediction, clip", [("v", 1.0), ("x0", None), ("eps", None), ("eps", 1.0)])
def test_one_ddim_step_is_diffusers_step(prediction, clip, eta, float64):
    schedule = samplers.noise_schedule("cosine", T)
    scheduler = ddim_scheduler(schedule, prediction, clip, "leading", float64)
    scheduler.set_timesteps(25)
    dtype = torch.float64 if float64 else torch.float32
    gen = torch.Generator().manual_seed(0)
    for t in scheduler.timesteps.tolist():  # 960, 920, ..., 0: every step, the last to alpha_bar 1
        x_t, out, noise = (torch.randn(4, 3, 8, 8, generator=gen, dtype=dtype) for _ in range(3))
        want = scheduler.step(out, t, x_t, eta=eta, use_clipped_model_output=True, variance_noise=noise).prev_sample
        got = samplers.ddim_step(
            schedule, out, t, x_t, t_prev=t - T // 25, prediction=prediction, eta=eta, noise=noise, clip=clip
        )
        tolerance = 1e-12 if float64 else 2e-4
        torch.testing.assert_close(got, want, atol=tolerance, rtol=0)


@pytest.mark.parametrize("prediction", ["eps", "x0", "v"])
def test_a_whole_ddim_run_over_every_step_is_diffusers_run(prediction):
    """With all T steps both grids are t -> t - 1, so our loop and diffusers' agree end to end."""
    schedule = samplers.noise_schedule("cosine", 50)
    scheduler = ddim_scheduler(schedule, prediction, 1.0, "linspace")
    scheduler.set_timesteps(50)
    w = torch.randn(16, 16, generator=torch.Generator().manual_seed(3), dtype=torch.float64) / 4

    def model_fn(x, t):
        return torch.tanh(x @ w + t[:, None].double() / 50)

    x_T = torch.randn(4, 16, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    x = x_T
    for t in scheduler.timesteps.tolist():
        x = scheduler.step(model_fn(x, torch.full((4,), t)), t, x, use_clipped_model_output=True).prev_sample
    torch.testing.assert_close(
        ddim_loop(model_fn, schedule, prediction, x_T, steps=50, clip=1.0), x, atol=1e-12, rtol=0
    )


@pytest.mark.parametrize("prediction, clip", [("v", 1.0), ("x0", None), ("eps", None)])
def test_one_ddpm_step_is_diffusers_step(prediction, clip):
    """DDPMScheduler with variance_type "fixed_small" (the posterior variance, ours), same noise."""
    schedule = samplers.noise_schedule("cosine", T)
    scheduler = diffusers.DDPMScheduler(
        num_train_timesteps=T,
        trained_betas=schedule.betas.numpy(),
        variance_type="fixed_small",
        clip_sample=clip is not None,
        clip_sample_range=1.0,
        prediction_type=DIFFUSERS_PREDICTION[prediction],
    )
    scheduler.alphas_cumprod = schedule.alphas_cumprod.clone()  # float64, as above
    scheduler.one = torch.tensor(1.0, dtype=torch.float64)
    gen = torch.Generator().manual_seed(0)
    for t in (999, 700, 300, 20, 1, 0):
        x_t, out = (torch.randn(4, 3, 8, 8, generator=gen, dtype=torch.float64) for _ in range(2))
        want = scheduler.step(out, t, x_t, generator=torch.Generator().manual_seed(t)).prev_sample
        noise = torch.randn(x_t.shape, generator=torch.Generator().manual_seed(t), dtype=torch.float64) if t else None
        got = samplers.ddpm_step(schedule, out, t, x_t, prediction=prediction, noise=noise, clip=clip)
        torch.testing.assert_close(got, want, atol=1e-12, rtol=0)
