"""Gaussian diffusion: schedules, the forward process, the posterior, and DDPM/DDIM sampling.

Pure math over tensors; the denoiser is any `model_fn(x_t, t) -> output` whose output is
what `prediction` says (the noise "eps", the clean sample "x0", or "v" = sqrt(a)*eps -
sqrt(1-a)*x0). Schedule tables are kept in float64 and cast per use, so a 1000-step cosine
schedule stays exact near t = 0. Sampling noise comes from a CPU generator: a seed gives
the same result on every device.
"""

from __future__ import annotations

import math
from typing import Callable, Literal

import torch

Prediction = Literal["eps", "x0", "v"]
ModelFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
PREDICTIONS = ("eps", "x0", "v")
TIMESTEP_SAMPLINGS = ("uniform", "logit_normal")


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


def classifier_free_guidance(
    forward: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor],
    cond: torch.Tensor,
    null_cond: torch.Tensor,
    scale: float,
) -> ModelFn:
    """A model_fn giving uncond + scale * (cond - uncond), both halves in one batched call.
    `forward(x, t, c)` is the conditional denoiser; `null_cond` is its "no condition" input
    (broadcast to cond's shape). Scale 1 is the plain conditional model, skipped as such."""
    if scale == 1.0:
        return lambda x, t: forward(x, t, cond)
    both = torch.cat([cond, null_cond.expand_as(cond)])

    def model_fn(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        out_cond, out_uncond = forward(torch.cat([x, x]), torch.cat([t, t]), both).chunk(2)
        return out_uncond + scale * (out_cond - out_uncond)

    return model_fn


class GaussianDiffusion:
    def __init__(self, betas: torch.Tensor, prediction: Prediction = "eps"):
        if prediction not in PREDICTIONS:
            raise ValueError(f"unknown prediction {prediction!r}: use one of {PREDICTIONS}")
        betas = betas.to(torch.float64)
        if betas.ndim != 1 or not bool(((betas > 0) & (betas < 1)).all()):
            raise ValueError("betas must be a 1-d schedule with every value in (0, 1)")
        self.prediction = prediction
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

    @classmethod
    def make(cls, schedule: str = "cosine", steps: int = 1000, prediction: Prediction = "eps") -> "GaussianDiffusion":
        return cls(make_betas(schedule, steps), prediction)

    @staticmethod
    def _at(table: torch.Tensor, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """table[t] shaped to broadcast against `like` (batch first), in like's dtype/device."""
        values = table[t.cpu().long()].to(device=like.device, dtype=like.dtype)
        return values.view(-1, *([1] * (like.ndim - 1)))

    # Forward process.
    def q_mean_variance(self, x0: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self._at(self.sqrt_ab, t, x0) * x0, (self._at(self.sqrt_one_minus_ab, t, x0) ** 2).expand_as(x0)

    def q_sample(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        """A draw of x_t ~ q(x_t | x_0) = N(sqrt(a_bar) x_0, (1 - a_bar) I)."""
        noise = torch.randn_like(x0) if noise is None else noise
        return self._at(self.sqrt_ab, t, x0) * x0 + self._at(self.sqrt_one_minus_ab, t, x0) * noise

    def q_posterior(
        self, x0: torch.Tensor, xt: torch.Tensor, t: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Mean, variance and log-variance of q(x_{t-1} | x_t, x_0)."""
        mean = self._at(self.posterior_mean_coef_x0, t, xt) * x0 + self._at(self.posterior_mean_coef_xt, t, xt) * xt
        return mean, self._at(self.posterior_variance, t, xt), self._at(self.posterior_log_variance, t, xt)

    # Converting between what a model predicts.
    def predict_x0(self, model_out: torch.Tensor, xt: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        a, s = self._at(self.sqrt_ab, t, xt), self._at(self.sqrt_one_minus_ab, t, xt)
        if self.prediction == "x0":
            return model_out
        if self.prediction == "eps":
            return (xt - s * model_out) / a
        return a * xt - s * model_out

    def eps_from_x0(self, xt: torch.Tensor, t: torch.Tensor, x0: torch.Tensor) -> torch.Tensor:
        return (xt - self._at(self.sqrt_ab, t, xt) * x0) / self._at(self.sqrt_one_minus_ab, t, xt)

    def training_target(self, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if self.prediction == "x0":
            return x0
        if self.prediction == "eps":
            return noise
        return self._at(self.sqrt_ab, t, x0) * noise - self._at(self.sqrt_one_minus_ab, t, x0) * x0

    def training_timesteps(
        self, n: int, generator: torch.Generator | None = None, sampling: str = "uniform"
    ) -> torch.Tensor:
        """n training steps: uniform, or logit-normal (t/T = sigmoid(z), z ~ N(0, 1)), which puts
        most samples at the middle noise levels (SNR near 1 on the cosine schedule), where an
        image's layout and outlines are decided, and few at the ends."""
        if sampling == "uniform":
            return torch.randint(0, self.num_steps, (n,), generator=generator)
        if sampling == "logit_normal":
            u = torch.sigmoid(torch.randn(n, generator=generator, dtype=torch.float64))
            return (u * self.num_steps).long().clamp(0, self.num_steps - 1)
        raise ValueError(f"unknown timestep sampling {sampling!r}: use one of {TIMESTEP_SAMPLINGS}")

    def training_loss(
        self, model_fn: ModelFn, x0: torch.Tensor, generator: torch.Generator | None = None, sampling: str = "uniform"
    ) -> torch.Tensor:
        """Mean squared error of the model's prediction at one drawn step per sample."""
        return self.training_outputs(model_fn, x0, generator, sampling)[0]

    def training_outputs(
        self, model_fn: ModelFn, x0: torch.Tensor, generator: torch.Generator | None = None, sampling: str = "uniform"
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The squared-error loss, the clean sample the model predicts (for extra losses on
        it) and the steps drawn."""
        t = self.training_timesteps(x0.shape[0], generator, sampling).to(x0.device)
        noise = torch.randn(x0.shape, generator=generator).to(x0.device, x0.dtype)
        xt = self.q_sample(x0, t, noise)
        out = model_fn(xt, t)
        return torch.mean((out - self.training_target(x0, noise, t)) ** 2), self.predict_x0(out, xt, t), t

    # Sampling.
    def _x0_and_eps(self, model_fn: ModelFn, x: torch.Tensor, t: torch.Tensor, clip: float | None):
        x0 = self.predict_x0(model_fn(x, t), x, t)
        if clip is not None:
            x0 = x0.clamp(-clip, clip)
        return x0, self.eps_from_x0(x, t, x0)

    @staticmethod
    def _noise(shape, generator: torch.Generator | None, like: torch.Tensor) -> torch.Tensor:
        return torch.randn(shape, generator=generator, dtype=torch.float32).to(like.device, like.dtype)

    @torch.inference_mode()
    def ddpm_sample(
        self, model_fn: ModelFn, x_T: torch.Tensor, generator: torch.Generator | None = None, clip: float | None = None
    ) -> torch.Tensor:
        """Ancestral sampling through every step, from x_T (pass standard normal noise)."""
        x = x_T
        for step in reversed(range(self.num_steps)):
            t = torch.full((x.shape[0],), step, dtype=torch.long, device=x.device)
            x0, _ = self._x0_and_eps(model_fn, x, t, clip)
            mean, _, log_var = self.q_posterior(x0, x, t)
            x = mean + (torch.exp(0.5 * log_var) * self._noise(x.shape, generator, x) if step > 0 else 0)
        return x

    def ddim_timesteps(self, steps: int) -> list[int]:
        """`steps` timesteps spread evenly over the schedule, highest first, ending at 0."""
        if not 1 <= steps <= self.num_steps:
            raise ValueError(f"DDIM steps must be between 1 and {self.num_steps}, got {steps}")
        return sorted({round(v) for v in torch.linspace(0, self.num_steps - 1, steps).tolist()}, reverse=True)

    @torch.inference_mode()
    def ddim_sample(
        self,
        model_fn: ModelFn,
        x_T: torch.Tensor,
        steps: int,
        eta: float = 0.0,
        generator: torch.Generator | None = None,
        clip: float | None = None,
    ) -> torch.Tensor:
        """DDIM over a subset of steps; eta = 0 is deterministic, eta = 1 matches DDPM's noise."""
        x = x_T
        timesteps = self.ddim_timesteps(steps)
        for k, step in enumerate(timesteps):
            t = torch.full((x.shape[0],), step, dtype=torch.long, device=x.device)
            x0, eps = self._x0_and_eps(model_fn, x, t, clip)
            ab = float(self.alphas_cumprod[step])
            ab_prev = float(self.alphas_cumprod[timesteps[k + 1]]) if k + 1 < len(timesteps) else 1.0
            sigma = eta * math.sqrt((1 - ab_prev) / (1 - ab) * (1 - ab / ab_prev))
            x = math.sqrt(ab_prev) * x0 + math.sqrt(max(0.0, 1 - ab_prev - sigma**2)) * eps
            if sigma > 0:
                x = x + sigma * self._noise(x.shape, generator, x)
        return x

    def sample(
        self,
        model_fn: ModelFn,
        x_T: torch.Tensor,
        sampler: str = "ddim",
        steps: int | None = None,
        eta: float = 0.0,
        generator: torch.Generator | None = None,
        clip: float | None = None,
    ) -> torch.Tensor:
        if sampler == "ddpm":
            return self.ddpm_sample(model_fn, x_T, generator, clip)
        if sampler == "ddim":
            return self.ddim_sample(model_fn, x_T, steps or self.num_steps, eta, generator, clip)
        raise ValueError(f"unknown sampler {sampler!r}: use 'ddim' or 'ddpm'")
