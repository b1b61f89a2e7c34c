"""Gaussian diffusion math as pure functions: schedules, the forward process, the posterior,
conversions between what a model predicts, classifier-free guidance, and one DDPM or DDIM
step. Tensors in, tensor out: nothing here calls a model (the loops that do live in
pipelines.py) or draws noise (callers pass it in).

A model's output is what its `prediction` says: the noise "eps", the clean sample "x0", or
"v" = sqrt(a_bar) * eps - sqrt(1 - a_bar) * x0. Schedule tables are kept in float64 and cast
per use, so a 1000-step cosine schedule stays exact near t = 0. In diffusers' terms "eps",
"x0" and "v" are the prediction types "epsilon", "sample" and "v_prediction".
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import lru_cache
from typing import Literal

import torch

Prediction = Literal["eps", "x0", "v"]
PREDICTIONS = ("eps", "x0", "v")
Timestep = int | torch.Tensor  # one step for the whole batch, or one per sample (B,)
ModelFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (x_t, t) -> model output, for loops and losses


def linear_betas(steps: int, start: float = 1e-4, end: float = 0.02) -> torch.Tensor:
    """DDPM's schedule, rescaled so any step count spans the same noise range as 1000 steps."""
    scale = 1000 / steps
    return torch.linspace(scale * start, scale * end, steps, dtype=torch.float64)


def cosine_betas(steps: int, s: float = 0.008, max_beta: float = 0.999) -> torch.Tensor:
    """Nichol & Dhariwal's schedule: alpha_bar(t) = cos^2(((t/T + s)/(1 + s)) * pi/2)."""

    def alpha_bar(t: float) -> float:
        return math.cos((t + s) / (1 + s) * math.pi / 2) ** 2

    return torch.tensor(
        [min(1 - alpha_bar((i + 1) / steps) / alpha_bar(i / steps), max_beta) for i in range(steps)],
        dtype=torch.float64,
    )


def make_betas(schedule: str, steps: int) -> torch.Tensor:
    if schedule == "linear":
        return linear_betas(steps)
    if schedule == "cosine":
        return cosine_betas(steps)
    raise ValueError(f"unknown beta schedule {schedule!r}: use 'linear' or 'cosine'")


def check_prediction(prediction: str) -> None:
    if prediction not in PREDICTIONS:
        raise ValueError(f"unknown prediction {prediction!r}: use one of {PREDICTIONS}")


class NoiseSchedule:
    """The tables every step reads, derived once from the betas (float64)."""

    def __init__(self, betas: torch.Tensor):
        betas = betas.to(torch.float64)
        if betas.ndim != 1 or not bool(((betas > 0) & (betas < 1)).all()):
            raise ValueError("betas must be a 1-d schedule with every value in (0, 1)")
        self.num_steps = len(betas)
        self.betas = betas
        alphas = 1 - betas
        self.alphas_cumprod = torch.cumprod(alphas, 0)
        self.alphas_cumprod_prev = torch.cat([torch.ones(1, dtype=torch.float64), self.alphas_cumprod[:-1]])
        ab, ab_prev = self.alphas_cumprod, self.alphas_cumprod_prev
        self.sqrt_ab, self.sqrt_one_minus_ab = ab.sqrt(), (1 - ab).sqrt()
        self.posterior_variance = betas * (1 - ab_prev) / (1 - ab)
        # The variance at t = 0 is 0; the log uses t = 1's value there (only x_0's mean is used then).
        self.posterior_log_variance = torch.log(torch.cat([self.posterior_variance[1:2], self.posterior_variance[1:]]))
        self.posterior_mean_coef_x0 = betas * ab_prev.sqrt() / (1 - ab)
        self.posterior_mean_coef_xt = (1 - ab_prev) * alphas.sqrt() / (1 - ab)


@lru_cache(maxsize=8)
def noise_schedule(schedule: str = "cosine", steps: int = 1000) -> NoiseSchedule:
    """The named schedule's tables, built once per (name, steps): losses ask for them every batch."""
    return NoiseSchedule(make_betas(schedule, steps))


def _at(table: torch.Tensor, t: Timestep, like: torch.Tensor) -> torch.Tensor:
    """table[t] shaped to broadcast against `like` (batch first), in like's dtype/device."""
    index = t.cpu().long() if isinstance(t, torch.Tensor) else torch.tensor([t])
    values = table[index].to(device=like.device, dtype=like.dtype)
    return values.view(-1, *([1] * (like.ndim - 1)))


# The forward process.
def q_mean_variance(s: NoiseSchedule, x0: torch.Tensor, t: Timestep) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and variance of q(x_t | x_0)."""
    return _at(s.sqrt_ab, t, x0) * x0, (_at(s.sqrt_one_minus_ab, t, x0) ** 2).expand_as(x0)


def q_sample(s: NoiseSchedule, x0: torch.Tensor, t: Timestep, noise: torch.Tensor) -> torch.Tensor:
    """x_t ~ q(x_t | x_0) = N(sqrt(a_bar) x_0, (1 - a_bar) I), for standard normal `noise`."""
    return _at(s.sqrt_ab, t, x0) * x0 + _at(s.sqrt_one_minus_ab, t, x0) * noise


def q_posterior(
    s: NoiseSchedule, x0: torch.Tensor, xt: torch.Tensor, t: Timestep
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Mean, variance and log-variance of q(x_{t-1} | x_t, x_0)."""
    mean = _at(s.posterior_mean_coef_x0, t, xt) * x0 + _at(s.posterior_mean_coef_xt, t, xt) * xt
    return mean, _at(s.posterior_variance, t, xt), _at(s.posterior_log_variance, t, xt)


# Converting between what a model predicts.
def predict_x0(
    s: NoiseSchedule, prediction: Prediction, model_output: torch.Tensor, xt: torch.Tensor, t: Timestep
) -> torch.Tensor:
    """The clean sample a model's output at (x_t, t) stands for."""
    check_prediction(prediction)
    a, sd = _at(s.sqrt_ab, t, xt), _at(s.sqrt_one_minus_ab, t, xt)
    if prediction == "x0":
        return model_output
    if prediction == "eps":
        return (xt - sd * model_output) / a
    return a * xt - sd * model_output


def eps_from_x0(s: NoiseSchedule, xt: torch.Tensor, t: Timestep, x0: torch.Tensor) -> torch.Tensor:
    """The noise that takes x0 to x_t at step t."""
    return (xt - _at(s.sqrt_ab, t, xt) * x0) / _at(s.sqrt_one_minus_ab, t, xt)


def model_target(
    s: NoiseSchedule, prediction: Prediction, x0: torch.Tensor, eps: torch.Tensor, t: Timestep
) -> torch.Tensor:
    """What a perfect model of this prediction type outputs for x_t = q_sample(x0, t, eps):
    the training target."""
    check_prediction(prediction)
    if prediction == "x0":
        return x0
    if prediction == "eps":
        return eps
    return _at(s.sqrt_ab, t, x0) * eps - _at(s.sqrt_one_minus_ab, t, x0) * x0


def classifier_free_guidance(cond: torch.Tensor, uncond: torch.Tensor, scale: float) -> torch.Tensor:
    """Guided output from the conditional and unconditional ones: scale 1 is the conditional."""
    return uncond + scale * (cond - uncond)


def _x0_and_eps(s, prediction, model_output, xt, t, clip):
    x0 = predict_x0(s, prediction, model_output, xt, t)
    if clip is not None:
        x0 = x0.clamp(-clip, clip)
    return x0, eps_from_x0(s, xt, t, x0)


# One step of sampling.
def ddpm_step(
    s: NoiseSchedule,
    model_output: torch.Tensor,
    t: int,
    xt: torch.Tensor,
    *,
    prediction: Prediction,
    noise: torch.Tensor | None = None,
    clip: float | None = None,
) -> torch.Tensor:
    """x_{t-1}: the posterior mean given the predicted x0 (clamped to +-clip when given), plus
    its standard deviation times `noise` (standard normal; None gives the mean, as at t = 0)."""
    x0, _ = _x0_and_eps(s, prediction, model_output, xt, t, clip)
    mean, _, log_var = q_posterior(s, x0, xt, t)
    return mean if noise is None else mean + torch.exp(0.5 * log_var) * noise


def ddim_timesteps(num_steps: int, steps: int) -> list[int]:
    """`steps` timesteps spread evenly over a `num_steps` schedule, highest first, ending at 0
    (diffusers' "linspace" spacing)."""
    if not 1 <= steps <= num_steps:
        raise ValueError(f"DDIM steps must be between 1 and {num_steps}, got {steps}")
    return sorted({round(v) for v in torch.linspace(0, num_steps - 1, steps).tolist()}, reverse=True)


def _alpha_bars(s: NoiseSchedule, t: int, t_prev: int) -> tuple[float, float]:
    # Below step 0 lies the clean sample: alpha_bar 1 (diffusers' set_alpha_to_one).
    return float(s.alphas_cumprod[t]), float(s.alphas_cumprod[t_prev]) if t_prev >= 0 else 1.0


def ddim_sigma(s: NoiseSchedule, t: int, t_prev: int, eta: float) -> float:
    """The noise scale of a DDIM step from t to t_prev: eta = 1 is DDPM's, 0 none at all."""
    ab, ab_prev = _alpha_bars(s, t, t_prev)
    return eta * math.sqrt((1 - ab_prev) / (1 - ab) * (1 - ab / ab_prev))


def ddim_step(
    s: NoiseSchedule,
    model_output: torch.Tensor,
    t: int,
    xt: torch.Tensor,
    *,
    t_prev: int,
    prediction: Prediction,
    eta: float = 0.0,
    noise: torch.Tensor | None = None,
    clip: float | None = None,
) -> torch.Tensor:
    """x at step t_prev (< 0: the clean sample) from x at step t. The noise direction is taken
    from the predicted x0 after clamping (diffusers' use_clipped_model_output=True); `noise`
    (standard normal) is needed only when eta > 0."""
    x0, eps = _x0_and_eps(s, prediction, model_output, xt, t, clip)
    ab, ab_prev = _alpha_bars(s, t, t_prev)
    sigma = ddim_sigma(s, t, t_prev, eta)
    x = math.sqrt(ab_prev) * x0 + math.sqrt(max(0.0, 1 - ab_prev - sigma**2)) * eps
    if sigma > 0:
        if noise is None:
            raise ValueError("a DDIM step with eta > 0 needs its noise")
        x = x + sigma * noise
    return x
