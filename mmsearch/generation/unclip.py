"""Text-to-image generation behind one protocol, and the built-in unCLIP backend.

A Generator turns a prompt into images, declaring the embedding space its image embeddings
live in. When that is the search encoder's space (the built-in backend; Kandinsky 2.2 on a
library indexed with `hf-clip:` over its prior's CLIP), the search engine can also use the
prior on its own: a text mapped to a predicted image embedding is a better query than the
raw text embedding ("via: prior"), and variations and edits decode from embeddings of
indexed images.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ..config import builtin_weights
from .models import Decoder, DiffusionPrior
from .pipelines import SAMPLERS, DecoderPipeline, PriorPipeline

BUILTIN_DIR = builtin_weights("mini")


@runtime_checkable
class Generator(Protocol):
    name: str
    space: str  # embedding space of the image embeddings it decodes
    image_size: int  # side of the images it returns
    default_guidance: float  # the guidance scale a request without one gets

    def generate(
        self,
        prompt: str,
        n: int = 1,
        seed: int | None = None,
        steps: int = 25,
        guidance: float | None = None,
        sampler: str = "ddim",
    ) -> list[Image.Image]: ...

    def denoising_steps(self, steps: int, sampler: str) -> int:
        """Denoiser steps one image costs with these settings: what a request's budget counts."""
        ...


class EmbeddingGenerator(Generator, Protocol):
    """A generator that can also work in embedding space (the DALL-E 2 tricks). Embeddings
    are (n, dim) float32 of its `space`, L2-normalised as the library stores them."""

    def prior_embeddings(self, prompts: list[str], seed: int | None = None) -> np.ndarray: ...

    def query_embeddings(self, prompts: list[str]) -> np.ndarray:
        """The image embedding to search with for each prompt (deterministic)."""
        ...

    def decode(
        self,
        embeddings: np.ndarray,
        seed: int | None = None,
        steps: int = 25,
        guidance: float | None = None,
        sampler: str = "ddim",
    ) -> list[Image.Image]: ...


def check_sampling(steps: int, sampler: str, max_steps: int) -> None:
    if sampler not in SAMPLERS:
        raise ValueError(f"unknown sampler {sampler!r}: use one of {SAMPLERS}")
    if not 1 <= steps <= max_steps:
        raise ValueError(f"steps must be between 1 and {max_steps}, got {steps}")


def slerp(a: np.ndarray, b: np.ndarray, alpha: float) -> np.ndarray:
    """Spherical interpolation between unit vectors a (alpha = 0) and b (alpha = 1)."""
    a, b = a / np.linalg.norm(a), b / np.linalg.norm(b)
    omega = math.acos(float(np.clip(a @ b, -1.0, 1.0)))
    if omega < 1e-6:
        return a.copy()
    out = (math.sin((1 - alpha) * omega) * a + math.sin(alpha * omega) * b) / math.sin(omega)
    return (out / np.linalg.norm(out)).astype(np.float32)


def text_diff_edit(image: np.ndarray, source: np.ndarray, target: np.ndarray, strength: float = 1.0) -> np.ndarray:
    """DALL-E 2's text diff: move an image embedding along (target text - source text)."""
    direction = target / np.linalg.norm(target) - source / np.linalg.norm(source)
    out = image / np.linalg.norm(image) + strength * direction
    return (out / np.linalg.norm(out)).astype(np.float32)


def to_pil(images: torch.Tensor, size: int | None = None) -> list[Image.Image]:
    """(B, 3, H, W) in [0, 1] -> PIL images, resized to size x size if given."""
    arr = (images.clamp(0, 1).permute(0, 2, 3, 1).cpu().numpy() * 255).round().astype(np.uint8)
    out = [Image.fromarray(a) for a in arr]
    return [im.resize((size, size), Image.BICUBIC) for im in out] if size and size != arr.shape[1] else out


class MiniGenerator:
    """The built-in prior + decoder, in the search encoder's own space.

    The decoder draws small images (32 px for the shipped one); they are returned upscaled
    to `output_size` so they display and index like other media."""

    SAMPLERS = SAMPLERS

    def __init__(
        self,
        encoder,
        model_dir: str | Path = BUILTIN_DIR,
        device: str = "cpu",
        output_size: int = 128,
        prior_guidance: float = 4.0,
        candidates: int = 2,
    ):
        self.encoder = encoder
        self.device = device
        self.prior = PriorPipeline(DiffusionPrior.load(model_dir, device))
        self.decoder = DecoderPipeline(Decoder.load(model_dir, device))
        for part, space in (("prior", self.prior.cfg.space), ("decoder", self.decoder.cfg.space)):
            if space != encoder.space:
                raise ValueError(
                    f"the {part} in {model_dir} was trained in space {space!r}, not the encoder's {encoder.space!r}: "
                    "train it on this library with `mmsearch train prior/decoder`"
                )
        self.name = f"mini:{model_dir}" if Path(model_dir) != BUILTIN_DIR else "mini"
        self.space = encoder.space
        self.image_size = output_size
        self.default_guidance = self.decoder.cfg.guidance
        self.prior_guidance, self.candidates = prior_guidance, candidates

    def denoising_steps(self, steps: int, sampler: str) -> int:
        """The decoder's steps per image: DDPM runs its whole schedule, whatever `steps` says."""
        return self.decoder.schedule.num_steps if sampler == "ddpm" else steps

    @staticmethod
    def _generator(seed: int | None) -> torch.Generator:
        return torch.Generator().manual_seed(seed if seed is not None else int(torch.randint(0, 2**31 - 1, ()).item()))

    def prior_embeddings(self, prompts: list[str], seed: int | None = None) -> np.ndarray:
        text = torch.from_numpy(self.encoder.embed_texts(prompts)).to(self.device)
        out = self.prior.sample(
            text, candidates=self.candidates, guidance=self.prior_guidance, generator=self._generator(seed)
        )
        return out.cpu().numpy().astype(np.float32)

    def query_embeddings(self, prompts: list[str]) -> np.ndarray:
        text = torch.from_numpy(self.encoder.embed_texts(prompts)).to(self.device)
        return self.prior.expected(text, generator=self._generator(0)).cpu().numpy().astype(np.float32)

    def decode(
        self,
        embeddings: np.ndarray,
        seed: int | None = None,
        steps: int = 25,
        guidance: float | None = None,
        sampler: str = "ddim",
    ) -> list[Image.Image]:
        check_sampling(steps, sampler, self.decoder.schedule.num_steps)
        e = F.normalize(torch.as_tensor(np.asarray(embeddings, np.float32)).to(self.device), dim=-1)
        images = self.decoder.sample(
            e, steps=steps, sampler=sampler, guidance=guidance, generator=self._generator(seed)
        )
        return to_pil(images, self.image_size)

    def generate(
        self,
        prompt: str,
        n: int = 1,
        seed: int | None = None,
        steps: int = 25,
        guidance: float | None = None,
        sampler: str = "ddim",
    ) -> list[Image.Image]:
        check_sampling(steps, sampler, self.decoder.schedule.num_steps)
        embeddings = self.prior_embeddings([prompt] * n, seed)
        return self.decode(embeddings, seed, steps, guidance, sampler)
