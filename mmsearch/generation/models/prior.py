"""The DALL-E 2 diffusion prior network: text embedding -> image embedding, in one encoder's space.

A causal transformer reads [text embedding, timestep, noised image embedding, learned
query] and predicts the clean image embedding (x0) at the query token. Embeddings are
unit vectors; the diffusion runs on them scaled by sqrt(dim) so each component has
roughly unit variance, as the noise does. A learned null token stands in for the text
(for a share of training samples) so classifier-free guidance works at sampling time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch

from ..checkpoint import load_pretrained, save_pretrained
from .embeddings import timestep_embedding

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
    # timestep, see PriorPipeline.expected) to pick its own image out of every training image.
    # Mean squared error alone learns E[image | text], which drifts towards the typical image:
    # near the truth in cosine, but less able than the text to single an image out. Only
    # that one timestep gets the loss: applied at every step it spoiled sampled embeddings.
    choice_weight: float = 0.0
    space: str = ""  # the encoder space the prior was trained in


class DiffusionPrior(torch.nn.Module):
    TOKENS = 4  # text, time, noised image embedding, query
    # It predicts the clean embedding: from pure noise at the last step that is E[image | text],
    # the estimate search uses.
    prediction = "x0"

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

    @property
    def scale(self) -> float:
        """Unit embeddings times this are what the diffusion runs on."""
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

    def save(self, out_dir: str | Path) -> None:
        save_pretrained(self, out_dir, CONFIG_NAME, WEIGHTS_NAME)

    @classmethod
    def load(cls, model_dir: str | Path, device: str = "cpu") -> "DiffusionPrior":
        return load_pretrained(cls, PriorConfig, model_dir, CONFIG_NAME, WEIGHTS_NAME, device)
