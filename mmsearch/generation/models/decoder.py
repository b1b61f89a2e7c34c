"""The unCLIP decoder network: a small UNet that draws an image from an image embedding.

The embedding conditions the UNet twice, as unCLIP does: projected and added to the
timestep embedding (every residual block sees it as a scale and shift), and as a few
context tokens that the attention layers at the low resolutions attend to beside the
image tokens. A learned null embedding stands in for the embedding (for a share of
training samples) so classifier-free guidance works. Images are in [-1, 1], channels first.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from ..checkpoint import load_pretrained, save_pretrained
from .embeddings import timestep_embedding

CONFIG_NAME, WEIGHTS_NAME = "decoder_config.json", "decoder.safetensors"
# How training draws timesteps (DecoderConfig.timestep_sampling): uniformly, or logit-normal,
# which puts most draws at the middle noise levels (mmsearch/training/diffusion_losses.py).
TIMESTEP_SAMPLINGS = ("uniform", "logit_normal")


@dataclass
class DecoderConfig:
    dim: int = 256  # embedding dimension of the encoder space
    image_size: int = 32
    channels: int = 32
    channel_mults: list[int] = field(default_factory=lambda: [1, 2, 2])
    attention_levels: list[int] = field(
        default_factory=lambda: [2]
    )  # levels with attention (0 = full size): 8x8 at 32 px
    context_tokens: int = 4
    timesteps: int = 1000
    schedule: str = "cosine"
    prediction: str = "v"  # v-prediction: stays well-behaved at the few steps DDIM-25 takes
    cond_drop: float = 0.1
    timestep_sampling: str = "uniform"  # one of TIMESTEP_SAMPLINGS
    # Classifier-free guidance scale when the caller names none. 1.5 drew the asked shape far
    # more often than 3 (stronger guidance bends thin parts such as a star's arms; BENCHMARKS.md).
    guidance: float = 1.5
    space: str = ""


def _norm(ch: int) -> nn.GroupNorm:
    return nn.GroupNorm(min(8, ch), ch)


class ResBlock(nn.Module):
    def __init__(self, cin: int, cout: int, emb: int):
        super().__init__()
        self.norm1, self.conv1 = _norm(cin), nn.Conv2d(cin, cout, 3, padding=1)
        self.emb = nn.Linear(emb, 2 * cout)
        self.norm2, self.conv2 = _norm(cout), nn.Conv2d(cout, cout, 3, padding=1)
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        scale, shift = self.emb(F.silu(emb))[:, :, None, None].chunk(2, dim=1)
        h = self.norm2(h) * (1 + scale) + shift
        return self.skip(x) + self.conv2(F.silu(h))


class AttentionBlock(nn.Module):
    """Self-attention over the pixels, with the condition's context tokens as extra keys."""

    def __init__(self, ch: int, context_dim: int, heads: int = 4):
        super().__init__()
        self.norm = _norm(ch)
        self.context = nn.Linear(context_dim, ch)
        self.attn = nn.MultiheadAttention(ch, heads, batch_first=True)
        nn.init.zeros_(self.attn.out_proj.weight)
        nn.init.zeros_(self.attn.out_proj.bias)

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        q = self.norm(x).flatten(2).transpose(1, 2)  # (B, HW, C)
        kv = torch.cat([q, self.context(context)], dim=1)
        out, _ = self.attn(q, kv, kv, need_weights=False)
        return x + out.transpose(1, 2).reshape(b, c, h, w)


class Decoder(nn.Module):
    def __init__(self, cfg: DecoderConfig):
        super().__init__()
        self.cfg = cfg
        ch, emb = cfg.channels, cfg.channels * 4
        self.time = nn.Sequential(nn.Linear(ch, emb), nn.SiLU(), nn.Linear(emb, emb))
        self.cond = nn.Sequential(nn.Linear(cfg.dim, emb), nn.SiLU(), nn.Linear(emb, emb))
        self.to_context = nn.Linear(cfg.dim, cfg.context_tokens * emb)
        self.null_embedding = nn.Parameter(torch.zeros(cfg.dim))
        self.stem = nn.Conv2d(3, ch, 3, padding=1)

        widths = [ch * m for m in cfg.channel_mults]
        self.down, self.downsample = nn.ModuleList(), nn.ModuleList()
        skips, cur = [ch], ch
        for level, width in enumerate(widths):
            blocks = nn.ModuleList()
            for _ in range(2):
                blocks.append(self._stage(cur, width, emb, level))
                cur = width
                skips.append(cur)
            self.down.append(blocks)
            last = level == len(widths) - 1
            self.downsample.append(nn.Identity() if last else nn.Conv2d(cur, cur, 3, stride=2, padding=1))
            if not last:
                skips.append(cur)
        self.mid = self._stage(cur, cur, emb, len(widths) - 1, attention=True)
        self.up, self.upsample = nn.ModuleList(), nn.ModuleList()
        for level, width in reversed(list(enumerate(widths))):
            blocks = nn.ModuleList()
            for _ in range(3):
                blocks.append(self._stage(cur + skips.pop(), width, emb, level))
                cur = width
            self.up.append(blocks)
            self.upsample.append(
                nn.Identity()
                if level == 0
                else nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(cur, cur, 3, padding=1))
            )
        self.out = nn.Sequential(_norm(cur), nn.SiLU(), nn.Conv2d(cur, 3, 3, padding=1))

    @property
    def prediction(self) -> str:
        return self.cfg.prediction

    def _stage(self, cin: int, cout: int, emb: int, level: int, attention: bool | None = None) -> nn.ModuleList:
        with_attention = level in self.cfg.attention_levels if attention is None else attention
        return nn.ModuleList([ResBlock(cin, cout, emb)] + ([AttentionBlock(cout, emb)] if with_attention else []))

    @staticmethod
    def _run(stage: nn.ModuleList, h: torch.Tensor, emb: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        h = stage[0](h, emb)
        return stage[1](h, context) if len(stage) > 1 else h

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, embedding: torch.Tensor) -> torch.Tensor:
        """x_t: noised images (B, 3, S, S); embedding: unit image embeddings (B, dim) or the null one."""
        cond = embedding * math.sqrt(self.cfg.dim)
        emb = self.time(timestep_embedding(t, self.cfg.channels)) + self.cond(cond)
        context = self.to_context(cond).view(x_t.shape[0], self.cfg.context_tokens, -1)
        h = self.stem(x_t)
        hs = [h]
        for blocks, down in zip(self.down, self.downsample):
            for stage in blocks:
                h = self._run(stage, h, emb, context)
                hs.append(h)
            if not isinstance(down, nn.Identity):
                h = down(h)
                hs.append(h)
        h = self._run(self.mid, h, emb, context)
        for blocks, up in zip(self.up, self.upsample):
            for stage in blocks:
                h = self._run(stage, torch.cat([h, hs.pop()], dim=1), emb, context)
            h = up(h)
        return self.out(h)

    def save(self, out_dir) -> None:
        save_pretrained(self, out_dir, CONFIG_NAME, WEIGHTS_NAME)

    @classmethod
    def load(cls, model_dir, device: str = "cpu") -> "Decoder":
        return load_pretrained(cls, DecoderConfig, model_dir, CONFIG_NAME, WEIGHTS_NAME, device)
