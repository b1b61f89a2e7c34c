"""The DALL-E 2 diffusion prior: text embedding -> image embedding, in one encoder's space.

A causal transformer reads [text embedding, timestep, noised image embedding, learned
query] and predicts the clean image embedding (x0) at the query token. Embeddings are
unit vectors; the diffusion runs on them scaled by sqrt(dim) so each component has
roughly unit variance, as the noise does. The text is dropped (replaced by a learned null
token) for a share of training samples so classifier-free guidance works at sampling time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from .checkpoint import load_pretrained, save_pretrained
from .diffusion import GaussianDiffusion, classifier_free_guidance

CONFIG_NAME, WEIGHTS_NAME = "prior_config.json", "prior.safetensors"


@dataclass
class PriorConfig:
    dim: int = 256  # embedding dimension of the encoder space
    width: int = 256
    layers: int = 4
    heads: int = 4
    timesteps: int = 1000
    schedule: str = "cosine"
    cond_drop: float = 0.1  # share of training samples without their text
    # Weight of a loss asking the prediction search uses (x0 from pure noise at the last
    # timestep, see `expected`) to pick its own image out of every training image. Mean
    # squared error alone learns E[image | text], which drifts towards the typical image:
    # near the truth in cosine, but less able than the text to single an image out. Only
    # that one timestep gets the loss: applied at every step it spoiled sampled embeddings.
    choice_weight: float = 0.0
    space: str = ""  # the encoder space the prior was trained in


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal features of integer timesteps, (B,) -> (B, dim)."""
    half = dim // 2
    freqs = torch.exp(-math.log(10_000) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t.float()[:, None] * freqs[None]
    return torch.cat([args.cos(), args.sin()], dim=-1)


def own_image_choice_loss(
    predicted: torch.Tensor, own: torch.Tensor, candidates: torch.Tensor, scale: float = 30.0
) -> torch.Tensor:
    """Cross-entropy of picking, by cosine, each prediction's own image (row `own` of the
    unit `candidates`) out of all of them."""
    return F.cross_entropy(scale * F.normalize(predicted, dim=-1) @ candidates.T, own)


class DiffusionPrior(torch.nn.Module):
    TOKENS = 4  # text, time, noised image embedding, query

    def __init__(self, cfg: PriorConfig):
        super().__init__()
        self.cfg = cfg
        w = cfg.width
        self.text_in = torch.nn.Linear(cfg.dim, w)
        self.image_in = torch.nn.Linear(cfg.dim, w)
        self.time_in = torch.nn.Sequential(torch.nn.Linear(w, w), torch.nn.SiLU(), torch.nn.Linear(w, w))
        self.null_text = torch.nn.Parameter(torch.zeros(cfg.dim))
        self.query = torch.nn.Parameter(torch.randn(w) * 0.02)
        self.positions = torch.nn.Parameter(torch.randn(self.TOKENS, w) * 0.02)
        layer = torch.nn.TransformerEncoderLayer(
            w, cfg.heads, 4 * w, dropout=0.0, activation="gelu", batch_first=True, norm_first=True
        )
        self.transformer = torch.nn.TransformerEncoder(layer, cfg.layers, enable_nested_tensor=False)
        self.out = torch.nn.Sequential(torch.nn.LayerNorm(w), torch.nn.Linear(w, cfg.dim))
        self.register_buffer(
            "causal_mask", torch.triu(torch.full((self.TOKENS, self.TOKENS), float("-inf")), 1), persistent=False
        )
        self.diffusion = GaussianDiffusion.make(cfg.schedule, cfg.timesteps, "x0")

    @property
    def scale(self) -> float:
        return math.sqrt(self.cfg.dim)

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        """x_t: noised scaled image embeddings (B, dim); text: unit text embeddings (B, dim)
        (or the null token). Returns the predicted clean scaled image embedding."""
        tokens = (
            torch.stack(
                [
                    self.text_in(text * self.scale),
                    self.time_in(timestep_embedding(t, self.cfg.width)),
                    self.image_in(x_t),
                    self.query.expand(x_t.shape[0], -1),
                ],
                dim=1,
            )
            + self.positions
        )
        hidden = self.transformer(tokens, mask=self.causal_mask, is_causal=True)
        return self.out(hidden[:, -1])

    def loss(
        self,
        text: torch.Tensor,
        image: torch.Tensor,
        generator: torch.Generator | None = None,
        candidates: torch.Tensor | None = None,
        own: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Training loss on a batch of (unit text embedding, unit image embedding) pairs; the
        choice loss (when weighted) picks from `candidates` (N, dim) unit image embeddings, of
        which row own[i] is pair i's image."""
        drop = torch.rand(text.shape[0], generator=generator).to(text.device) < self.cfg.cond_drop
        text = torch.where(drop[:, None], self.null_text.expand_as(text), text)
        mse = self.diffusion.training_loss(lambda x, t: self(x, t, text), image * self.scale, generator)
        if not self.cfg.choice_weight or candidates is None or drop.all():
            return mse
        keep = ~drop
        target = image[keep] * self.scale
        last = torch.full((target.shape[0],), self.diffusion.num_steps - 1, dtype=torch.long, device=text.device)
        x_T = self.diffusion.q_sample(target, last, torch.randn(target.shape, generator=generator).to(target.device))
        x0 = self.diffusion.predict_x0(self(x_T, last, text[keep]), x_T, last)
        # The squared error at that step too, so the prediction stays near its image (in
        # cosine) while it learns to single it out.
        last_mse = F.mse_loss(x0, target)
        return mse + last_mse + self.cfg.choice_weight * own_image_choice_loss(x0, own[keep], candidates)

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
        model_fn = classifier_free_guidance(self, repeated, self.null_text[None], guidance)
        x_T = torch.randn((b * candidates, self.cfg.dim), generator=generator).to(text.device)
        draws = F.normalize(self.diffusion.sample(model_fn, x_T, sampler, steps, generator=generator), dim=-1)
        draws = draws.view(b, candidates, -1)
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
        last = torch.full((text.shape[0],), self.diffusion.num_steps - 1, dtype=torch.long, device=text.device)
        model_fn = classifier_free_guidance(self, text, self.null_text[None], guidance)
        total = torch.zeros(text.shape[0], self.cfg.dim, device=text.device)
        for _ in range(draws):
            x_T = torch.randn((text.shape[0], self.cfg.dim), generator=generator).to(text.device)
            total += F.normalize(self.diffusion.predict_x0(model_fn(x_T, last), x_T, last), dim=-1)
        return F.normalize(total, dim=-1)

    def save(self, out_dir: str | Path) -> None:
        save_pretrained(self, out_dir, CONFIG_NAME, WEIGHTS_NAME)

    @classmethod
    def load(cls, model_dir: str | Path, device: str = "cpu") -> "DiffusionPrior":
        return load_pretrained(cls, PriorConfig, model_dir, CONFIG_NAME, WEIGHTS_NAME, device)
