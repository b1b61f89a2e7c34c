"""A small image autoencoder, so the decoder's diffusion can run on latents.

Kandinsky 2.2 and Stable Diffusion denoise in an autoencoder's latent space rather than
pixels: a 4x smaller grid per side leaves the diffusion model a far simpler and cheaper
job, which is what lets the built-in decoder learn crisp shapes on a CPU budget. The
encoder maps a 32 px image to an 8x8 grid of a few channels; the decoder maps it back.
Noise on the latents during training keeps the decoder tolerant of the slightly-off
latents a diffusion sampler ends on. `latent_scale` (measured after training) brings the
latents to unit variance, as the diffusion's noise expects.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .checkpoint import load_pretrained, save_pretrained

CONFIG_NAME, WEIGHTS_NAME = "autoencoder_config.json", "autoencoder.safetensors"


@dataclass
class AutoencoderConfig:
    image_size: int = 32
    channels: int = 64  # at the latent resolution; half of it at full resolution
    latent_channels: int = 4
    downsamples: int = 2  # each halves the side: 32 px -> 8x8 latents
    latent_noise: float = 0.1  # training noise on the latents, relative to their spread

    @property
    def latent_size(self) -> int:
        return self.image_size // 2 ** self.downsamples


def _norm(ch: int) -> nn.GroupNorm:
    return nn.GroupNorm(min(8, ch), ch)


class _Res(nn.Module):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.body = nn.Sequential(_norm(cin), nn.SiLU(), nn.Conv2d(cin, cout, 3, padding=1),
                                  _norm(cout), nn.SiLU(), nn.Conv2d(cout, cout, 3, padding=1))
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.skip(x) + self.body(x)


class ImageAutoencoder(nn.Module):
    def __init__(self, cfg: AutoencoderConfig):
        super().__init__()
        self.cfg = cfg
        widths = [max(cfg.channels // 2 ** (cfg.downsamples - level), 16) for level in range(cfg.downsamples + 1)]
        enc: list[nn.Module] = [nn.Conv2d(3, widths[0], 3, padding=1)]
        for level in range(cfg.downsamples):
            enc += [_Res(widths[level], widths[level]), nn.Conv2d(widths[level], widths[level + 1], 3, stride=2, padding=1)]
        enc += [_Res(widths[-1], widths[-1]), _Res(widths[-1], widths[-1]), _norm(widths[-1]), nn.SiLU(),
                nn.Conv2d(widths[-1], cfg.latent_channels, 1)]
        self.encoder = nn.Sequential(*enc)
        dec: list[nn.Module] = [nn.Conv2d(cfg.latent_channels, widths[-1], 3, padding=1), _Res(widths[-1], widths[-1]),
                                _Res(widths[-1], widths[-1])]
        for level in reversed(range(cfg.downsamples)):
            dec += [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(widths[level + 1], widths[level], 3, padding=1),
                    _Res(widths[level], widths[level])]
        dec += [_norm(widths[0]), nn.SiLU(), nn.Conv2d(widths[0], 3, 3, padding=1)]
        self.decoder = nn.Sequential(*dec)
        self.register_buffer("latent_scale", torch.ones(()))

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """Images in [-1, 1] (B, 3, S, S) -> unit-variance latents (B, C, S/4, S/4)."""
        return self.encoder(images) * self.latent_scale

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Unit-variance latents -> images in [-1, 1] (unclamped)."""
        return self.decoder(latents / self.latent_scale)

    def loss(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """L1 reconstruction (sharper edges than squared error) through noised latents, plus a
        light pull of the latents towards zero so their scale stays put."""
        z = self.encoder(images)
        noise = torch.randn(z.shape, generator=generator).to(z.device)
        recon = self.decoder(z + self.cfg.latent_noise * z.detach().std() * noise)
        return F.l1_loss(recon, images) + 1e-4 * z.pow(2).mean()

    @torch.no_grad()
    def calibrate(self, images: torch.Tensor) -> float:
        """Set latent_scale so the latents of these (representative) images have unit spread."""
        self.latent_scale.fill_(1.0 / float(self.encoder(images).std()))
        return float(self.latent_scale)

    def save(self, out_dir: str | Path) -> None:
        save_pretrained(self, out_dir, CONFIG_NAME, WEIGHTS_NAME)

    @classmethod
    def load(cls, model_dir: str | Path, device: str = "cpu") -> "ImageAutoencoder":
        return load_pretrained(cls, AutoencoderConfig, model_dir, CONFIG_NAME, WEIGHTS_NAME, device)
