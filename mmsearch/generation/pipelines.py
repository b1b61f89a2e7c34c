"""Sampling with the generation networks: the loops that call a model (with classifier-free
guidance) at each timestep and apply one step of samplers.py, and the prior and decoder
pipelines built on them.

Sampling noise comes from a CPU generator: a seed gives the same result on every device.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from . import samplers
from .models import Decoder, DiffusionPrior
from .samplers import ModelFn, NoiseSchedule, Prediction

SAMPLERS = ("ddim", "ddpm")


def guided(
    forward: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor],
    cond: torch.Tensor,
    null_cond: torch.Tensor,
    scale: float,
) -> ModelFn:
    """A model_fn giving the classifier-free guided output, both halves in one batched call.
    `forward(x, t, c)` is the conditional denoiser; `null_cond` is its "no condition" input
    (broadcast to cond's shape). Scale 1 is the plain conditional model, skipped as such."""
    if scale == 1.0:
        return lambda x, t: forward(x, t, cond)
    both = torch.cat([cond, null_cond.expand_as(cond)])

    def model_fn(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        out_cond, out_uncond = forward(torch.cat([x, x]), torch.cat([t, t]), both).chunk(2)
        return samplers.classifier_free_guidance(out_cond, out_uncond, scale)

    return model_fn


def _noise(shape, generator: torch.Generator | None, like: torch.Tensor) -> torch.Tensor:
    return torch.randn(shape, generator=generator, dtype=torch.float32).to(like.device, like.dtype)


def _batch_t(step: int, x: torch.Tensor) -> torch.Tensor:
    return torch.full((x.shape[0],), step, dtype=torch.long, device=x.device)


@torch.inference_mode()
def ddpm_loop(
    model_fn: ModelFn,
    schedule: NoiseSchedule,
    prediction: Prediction,
    x_T: torch.Tensor,
    generator: torch.Generator | None = None,
    clip: float | None = None,
) -> torch.Tensor:
    """Ancestral sampling through every step, from x_T (pass standard normal noise)."""
    x = x_T
    for step in reversed(range(schedule.num_steps)):
        out = model_fn(x, _batch_t(step, x))
        noise = _noise(x.shape, generator, x) if step > 0 else None  # the last step adds none
        x = samplers.ddpm_step(schedule, out, step, x, prediction=prediction, noise=noise, clip=clip)
    return x


@torch.inference_mode()
def ddim_loop(
    model_fn: ModelFn,
    schedule: NoiseSchedule,
    prediction: Prediction,
    x_T: torch.Tensor,
    steps: int,
    eta: float = 0.0,
    generator: torch.Generator | None = None,
    clip: float | None = None,
) -> torch.Tensor:
    """DDIM over `steps` timesteps; eta = 0 is deterministic, eta = 1 matches DDPM's noise."""
    x = x_T
    timesteps = samplers.ddim_timesteps(schedule.num_steps, steps)
    for k, step in enumerate(timesteps):
        prev = timesteps[k + 1] if k + 1 < len(timesteps) else -1
        out = model_fn(x, _batch_t(step, x))
        noise = _noise(x.shape, generator, x) if samplers.ddim_sigma(schedule, step, prev, eta) > 0 else None
        x = samplers.ddim_step(
            schedule, out, step, x, t_prev=prev, prediction=prediction, eta=eta, noise=noise, clip=clip
        )
    return x


def sample_loop(
    model_fn: ModelFn,
    schedule: NoiseSchedule,
    prediction: Prediction,
    x_T: torch.Tensor,
    sampler: str = "ddim",
    steps: int | None = None,
    eta: float = 0.0,
    generator: torch.Generator | None = None,
    clip: float | None = None,
) -> torch.Tensor:
    """The clean sample from x_T by `sampler`: DDIM over `steps` (None: all), or DDPM (always all)."""
    if sampler == "ddpm":
        return ddpm_loop(model_fn, schedule, prediction, x_T, generator, clip)
    if sampler == "ddim":
        return ddim_loop(model_fn, schedule, prediction, x_T, steps or schedule.num_steps, eta, generator, clip)
    raise ValueError(f"unknown sampler {sampler!r}: use one of {SAMPLERS}")


class _Pipeline:
    """A network with the noise schedule and prediction type its config names."""

    def __init__(self, model):
        samplers.check_prediction(model.prediction)
        self.model = model
        self.prediction: Prediction = model.prediction
        self.schedule = samplers.noise_schedule(model.cfg.schedule, model.cfg.timesteps)

    @property
    def cfg(self):
        return self.model.cfg


class PriorPipeline(_Pipeline):
    """Text embeddings -> image embeddings with a DiffusionPrior."""

    model: DiffusionPrior

    @torch.inference_mode()
    def sample(
        self,
        text: torch.Tensor,
        candidates: int = 2,
        steps: int = 64,
        sampler: str = "ddim",
        guidance: float = 4.0,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Unit image embeddings (B, dim) for unit text embeddings (B, dim): `candidates`
        draws per text, keeping the one closest to the text (DALL-E 2's rejection step)."""
        b = text.shape[0]
        repeated = text.repeat_interleave(candidates, 0)
        model_fn = guided(self.model, repeated, self.model.null_text[None], guidance)
        x_T = torch.randn((b * candidates, self.cfg.dim), generator=generator).to(text.device)
        x0 = sample_loop(model_fn, self.schedule, self.prediction, x_T, sampler, steps, generator=generator)
        draws = F.normalize(x0, dim=-1).view(b, candidates, -1)
        best = (draws @ text[:, :, None]).squeeze(-1).argmax(1)
        return draws[torch.arange(b), best]

    @torch.inference_mode()
    def expected(
        self, text: torch.Tensor, draws: int = 4, guidance: float = 1.0, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Unit estimates of E[image embedding | text], for search: the x0 prediction from pure
        noise at the last timestep, where an x0-predicting model learns the conditional mean,
        averaged over a few noise draws. One model call per draw instead of a whole sampling
        run, and closer to the true embedding than a sample (a sample adds the variety a
        drawing needs and a query does not)."""
        last = torch.full((text.shape[0],), self.schedule.num_steps - 1, dtype=torch.long, device=text.device)
        model_fn = guided(self.model, text, self.model.null_text[None], guidance)
        total = torch.zeros(text.shape[0], self.cfg.dim, device=text.device)
        for _ in range(draws):
            x_T = torch.randn((text.shape[0], self.cfg.dim), generator=generator).to(text.device)
            x0 = samplers.predict_x0(self.schedule, self.prediction, model_fn(x_T, last), x_T, last)
            total += F.normalize(x0, dim=-1)
        return F.normalize(total, dim=-1)


class DecoderPipeline(_Pipeline):
    """Image embeddings -> images with a Decoder."""

    model: Decoder

    @torch.inference_mode()
    def sample(
        self,
        embeddings: torch.Tensor,
        steps: int = 25,
        sampler: str = "ddim",
        guidance: float | None = None,
        generator: torch.Generator | None = None,
        eta: float = 0.0,
    ) -> torch.Tensor:
        """Images in [0, 1], (B, 3, S, S), drawn for unit image embeddings (B, dim); guidance
        None means the config's."""
        size = self.cfg.image_size
        guidance = self.cfg.guidance if guidance is None else guidance
        model_fn = guided(self.model, embeddings, self.model.null_embedding[None], guidance)
        x_T = torch.randn((embeddings.shape[0], 3, size, size), generator=generator).to(embeddings.device)
        # Images live in [-1, 1]: each predicted x0 is clamped there.
        x0 = sample_loop(model_fn, self.schedule, self.prediction, x_T, sampler, steps, eta, generator, clip=1.0)
        return (x0 + 1) / 2
