"""Training losses of the generation models: the diffusion loss (squared error of a model's
prediction at a drawn timestep), the prior's own-image choice loss and the decoder's
embedding-consistency loss. Built on the pure math of generation/samplers.py; runtime
generation never imports this module.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F

from ..generation import samplers
from ..generation.models import Decoder, DiffusionPrior
from ..generation.models.decoder import TIMESTEP_SAMPLINGS
from ..generation.samplers import ModelFn, NoiseSchedule, Prediction
from ..pixels import affine_resample

ImageFeatures = Callable[[torch.Tensor], torch.Tensor]  # pixels in [0, 1] (B, 3, S, S) -> image embeddings (B, dim)


def training_timesteps(
    num_steps: int, n: int, generator: torch.Generator | None = None, sampling: str = "uniform"
) -> torch.Tensor:
    """n training steps: uniform, or logit-normal (t/T = sigmoid(z), z ~ N(0, 1)), which puts
    most samples at the middle noise levels (SNR near 1 on the cosine schedule), where an
    image's layout and outlines are decided, and few at the ends."""
    if sampling == "uniform":
        return torch.randint(0, num_steps, (n,), generator=generator)
    if sampling == "logit_normal":
        u = torch.sigmoid(torch.randn(n, generator=generator, dtype=torch.float64))
        return (u * num_steps).long().clamp(0, num_steps - 1)
    raise ValueError(f"unknown timestep sampling {sampling!r}: use one of {TIMESTEP_SAMPLINGS}")


def diffusion_loss(
    model_fn: ModelFn,
    schedule: NoiseSchedule,
    prediction: Prediction,
    x0: torch.Tensor,
    generator: torch.Generator | None = None,
    sampling: str = "uniform",
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Mean squared error of the model's prediction at one drawn step per sample, with the
    clean sample the model predicts (for extra losses on it) and the steps drawn."""
    t = training_timesteps(schedule.num_steps, x0.shape[0], generator, sampling).to(x0.device)
    noise = torch.randn(x0.shape, generator=generator).to(x0.device, x0.dtype)
    xt = samplers.q_sample(schedule, x0, t, noise)
    out = model_fn(xt, t)
    mse = torch.mean((out - samplers.model_target(schedule, prediction, x0, noise, t)) ** 2)
    return mse, samplers.predict_x0(schedule, prediction, out, xt, t), t


def _schedule(model) -> NoiseSchedule:
    return samplers.noise_schedule(model.cfg.schedule, model.cfg.timesteps)


def own_image_choice_loss(
    predicted: torch.Tensor, own: torch.Tensor, candidates: torch.Tensor, scale: float = 30.0
) -> torch.Tensor:
    """Cross-entropy of picking, by cosine, each prediction's own image (row `own` of the
    unit `candidates`) out of all of them."""
    return F.cross_entropy(scale * F.normalize(predicted, dim=-1) @ candidates.T, own)


def prior_loss(
    prior: DiffusionPrior,
    text: torch.Tensor,
    image: torch.Tensor,
    generator: torch.Generator | None = None,
    candidates: torch.Tensor | None = None,
    own: torch.Tensor | None = None,
) -> torch.Tensor:
    """Training loss on a batch of (unit text embedding, unit image embedding) pairs; the
    choice loss (when the config weights it) picks from `candidates` (N, dim) unit image
    embeddings, of which row own[i] is pair i's image."""
    schedule, cfg = _schedule(prior), prior.cfg
    # Some texts are dropped for the null token, so classifier-free guidance has an unconditional model.
    drop = torch.rand(text.shape[0], generator=generator).to(text.device) < cfg.cond_drop
    text = torch.where(drop[:, None], prior.null_text.expand_as(text), text)
    mse, _, _ = diffusion_loss(
        lambda x, t: prior(x, t, text), schedule, prior.prediction, image * prior.scale, generator
    )
    if not cfg.choice_weight or candidates is None or drop.all():
        return mse
    keep = ~drop
    target = image[keep] * prior.scale
    last = torch.full((target.shape[0],), schedule.num_steps - 1, dtype=torch.long, device=text.device)
    noise = torch.randn(target.shape, generator=generator).to(target.device)
    x_T = samplers.q_sample(schedule, target, last, noise)
    x0 = samplers.predict_x0(schedule, prior.prediction, prior(x_T, last, text[keep]), x_T, last)
    # The squared error at that step too, so the prediction stays near its image (in
    # cosine) while it learns to single it out.
    last_mse = F.mse_loss(x0, target)
    return mse + last_mse + cfg.choice_weight * own_image_choice_loss(x0, own[keep], candidates)


def jitter(pixels: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Per image: a random rotation (up to 15 degrees), scale (0.9-1.1) and shift (up to 1/12
    of the side), resampled with border padding; then a 3x3 binomial blur on a random half,
    and noise of std 0.02."""
    n, device = len(pixels), pixels.device
    u = torch.rand((n, 4), generator=generator).to(device) * 2 - 1
    angle, scale, shift = u[:, 0] * math.radians(15), 1 + 0.1 * u[:, 1], u[:, 2:] / 6  # grid units: the side spans 2
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1)
    pixels = affine_resample(pixels, theta)
    k = torch.tensor([1.0, 2.0, 1.0], device=device)
    kernel = (k[:, None] * k[None, :] / 16).expand(3, 1, 3, 3)
    blurred = F.conv2d(F.pad(pixels, (1, 1, 1, 1), mode="replicate"), kernel, groups=3)
    blur = (torch.rand(n, generator=generator) < 0.5).to(device)
    pixels = torch.where(blur[:, None, None, None], blurred, pixels)
    return pixels + 0.02 * torch.randn(pixels.shape, generator=generator).to(pixels)


def consistency_loss(
    x0: torch.Tensor,
    embeddings: torch.Tensor,
    t: torch.Tensor,
    schedule: NoiseSchedule,
    image_features: ImageFeatures,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """1 - cosine between the encoder's embedding of each predicted clean image and the
    embedding it was drawn for, weighted by alpha_bar(t) (how much of the image a prediction
    at that noise level can know). The squared error teaches outlines slowly (a blob and a
    star differ in a few pixels); this asks directly that the drawing reads as its embedding
    says (BENCHMARKS.md, session 7). The encoder sees each drawing turned, scaled and shifted
    a little, half of them blurred, all with a little noise: patterns that please the
    encoder only while pixel-exact and sharp do not pay, the outline has to."""
    if len(x0) == 0:
        return x0.sum()
    features = F.normalize(image_features(jitter((x0.clamp(-1, 1) + 1) / 2, generator)), dim=-1)
    weight = schedule.alphas_cumprod[t.cpu()].to(features)
    return torch.mean(weight * (1 - (features * embeddings).sum(-1)))


def decoder_loss(
    decoder: Decoder,
    images: torch.Tensor,
    embeddings: torch.Tensor,
    generator: torch.Generator | None = None,
    image_features: ImageFeatures | None = None,
    consistency_weight: float = 0.0,
) -> torch.Tensor:
    """images in [-1, 1] (B, 3, S, S) with their unit image embeddings (B, dim). With an
    image encoder and a weight, the embedding-consistency loss is added."""
    schedule, cfg = _schedule(decoder), decoder.cfg
    drop = torch.rand(images.shape[0], generator=generator).to(images.device) < cfg.cond_drop
    cond = torch.where(drop[:, None], decoder.null_embedding.expand_as(embeddings), embeddings)
    mse, x0, t = diffusion_loss(
        lambda x, tt: decoder(x, tt, cond), schedule, decoder.prediction, images, generator, cfg.timestep_sampling
    )
    if image_features is None or consistency_weight == 0:
        return mse
    keep = ~drop
    return mse + consistency_weight * consistency_loss(
        x0[keep], embeddings[keep], t[keep], schedule, image_features, generator
    )
