"""Kandinsky 2.2 through diffusers: KandinskyV22PriorPipeline (text -> CLIP image embedding)
then KandinskyV22Pipeline (image embedding -> image, via a latent unet and the MoVQ decoder).

Samplers: "ddim" and "ddpm" for the decoder (DDIMScheduler / DDPMScheduler built from the
saved scheduler config); the prior always runs its UnCLIPScheduler, which cannot take a single
step, so the prior runs max(steps, 2).

Its space is the CLIP in its prior pipeline (text_encoder + image_encoder + image_processor),
whose image embeddings the prior predicts and the decoder draws from: `clip_space` of
encoders/hf_clip.py, the function the `hf-clip:` encoder names its own space with. A library
indexed with `hf-clip:<the prior pipeline folder>` is in this space, so generate-on-miss
searches with the prior's predicted embedding and indexed images have variations, edits and
interpolations (the `EmbeddingGenerator` methods). Embeddings cross this boundary
L2-normalised, as the library stores them; `decode` scales them back to the norm the decoder
was trained on (see `_embedding_norm`).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ..encoders.base import CheckpointNotFoundError, resolve_device
from ..encoders.hf_clip import clip_space
from .diffusers_common import (
    DEFAULT_HUB_TIMEOUT_S,
    UNCLIP_MIN_STEPS,
    call_default,
    check_request,
    load_pipeline,
    looks_like_path,
    require_diffusers,
    resolve_pipeline,
    sample_side,
    torch_generator,
)

KANDINSKY22_DEFAULT_PRIOR = "kandinsky-community/kandinsky-2-2-prior"
KANDINSKY22_DEFAULT_DECODER = "kandinsky-community/kandinsky-2-2-decoder"
KANDINSKY22_INSTEAD = (
    "a local directory, kandinsky22:/path/to/DIR with prior/ and decoder/ subfolders "
    "(each a pipeline saved with save_pretrained())"
)
QUERY_SEEDS = 4  # prior draws averaged into a prompt's search embedding
QUERY_SEED = 0  # the seed of those draws: the same prompt always searches with the same vector


def _kandinsky_sources(spec: str) -> tuple[str, str, str]:
    """(prior source, decoder source, normalised spec) from a kandinsky22 spec."""
    spec = spec.strip()
    if not spec:
        return (
            KANDINSKY22_DEFAULT_PRIOR,
            KANDINSKY22_DEFAULT_DECODER,
            f"{KANDINSKY22_DEFAULT_PRIOR},{KANDINSKY22_DEFAULT_DECODER}",
        )
    if "," in spec:
        parts = [p.strip() for p in spec.split(",")]
        if len(parts) != 2 or not all(parts):
            raise ValueError(f"kandinsky22 spec {spec!r}: give exactly two sources, prior,decoder")
        return parts[0], parts[1], f"{parts[0]},{parts[1]}"
    path = Path(spec).expanduser()
    if path.is_dir():
        missing = [sub for sub in ("prior", "decoder") if not (path / sub).is_dir()]
        if missing:
            raise CheckpointNotFoundError(
                f"{path} has no {' or '.join(s + '/' for s in missing)} subfolder: a Kandinsky 2.2 folder holds "
                "prior/ (a saved KandinskyV22PriorPipeline) and decoder/ (a saved KandinskyV22Pipeline)"
            )
        return str(path / "prior"), str(path / "decoder"), spec
    if looks_like_path(spec):
        raise CheckpointNotFoundError(f"Kandinsky 2.2 folder {spec} does not exist")
    raise ValueError(
        f"kandinsky22 spec {spec!r} names one hub repo: give prior_id,decoder_id "
        f"(e.g. {KANDINSKY22_DEFAULT_PRIOR},{KANDINSKY22_DEFAULT_DECODER}) or a local directory"
    )


class Kandinsky22Generator:
    """Kandinsky 2.2: a prior (text -> CLIP image embedding) and a decoder (embedding -> image),
    in the space of the CLIP its prior pipeline carries. Samplers: "ddim" and "ddpm" for the
    decoder; the prior always runs its UnCLIPScheduler."""

    SAMPLERS = ("ddim", "ddpm")

    def __init__(self, spec: str = "", device: str = "cpu", *, hub_timeout_s: float = DEFAULT_HUB_TIMEOUT_S):
        diffusers = require_diffusers()
        prior_src, decoder_src, spec = _kandinsky_sources(spec or "")
        self.device = resolve_device(device)
        prior_where, prior_local = resolve_pipeline(
            prior_src, "Kandinsky 2.2 prior", hub_timeout_s, KANDINSKY22_INSTEAD
        )
        decoder_where, decoder_local = resolve_pipeline(
            decoder_src, "Kandinsky 2.2 decoder", hub_timeout_s, KANDINSKY22_INSTEAD
        )
        self.prior = load_pipeline(
            diffusers.KandinskyV22PriorPipeline,
            prior_where,
            prior_local,
            "Kandinsky 2.2 prior pipeline",
            prior_src,
            self.device,
        )
        self.decoder = load_pipeline(
            diffusers.KandinskyV22Pipeline,
            decoder_where,
            decoder_local,
            "Kandinsky 2.2 decoder pipeline",
            decoder_src,
            self.device,
        )
        # Both samplers from the saved scheduler's config. A DDPM config may say
        # variance_type="learned_range" (the unet predicts its variance too); DDIM keeps unknown
        # config keys, and KandinskyV22Pipeline would then pass it the unsplit mean+variance
        # output, so DDIM gets the config without it.
        config = dict(self.decoder.scheduler.config)
        self._schedulers = {
            "ddpm": diffusers.DDPMScheduler.from_config(config),
            "ddim": diffusers.DDIMScheduler.from_config({k: v for k, v in config.items() if k != "variance_type"}),
        }
        self.name = f"kandinsky22:{spec}"
        # The CLIP whose image embeddings the prior predicts and the decoder consumes.
        self.space = clip_space(self.prior.text_encoder, self.prior.image_encoder, self.prior.image_processor)
        self.dim = int(self.prior.image_encoder.config.projection_dim)
        self._scale = 2 ** (len(self.decoder.movq.config.block_out_channels) - 1)
        side = sample_side(self.decoder.unet.config.sample_size, 512 // self._scale) * self._scale
        # KandinskyV22Pipeline rounds the requested side up to a multiple of scale**2.
        self.image_size = math.ceil(side / self._scale**2) * self._scale**2
        self.max_steps = min(int(self.prior.scheduler.config.num_train_timesteps), int(config["num_train_timesteps"]))
        self.default_guidance = call_default(self.decoder, "guidance_scale")
        self.prior_steps = int(call_default(self.prior, "num_inference_steps"))  # for prior_/query_embeddings
        with torch.no_grad():
            self._zero_embed = self.prior.get_zero_embed(1, device=self.device)  # the decoder's negative
            self._norm = self._embedding_norm()

    def _embedding_norm(self) -> float:
        """The norm of a typical image embedding, to scale unit vectors to before decoding: the
        decoder was trained on raw CLIP image embeddings, whose per-dimension mean and spread
        the prior keeps (clip_mean, clip_std), so E|x|^2 = |mean|^2 + |std|^2. A prior without
        those statistics (all zero) falls back to the norm of the empty image's embedding."""
        stats = [getattr(self.prior.prior, k, None) for k in ("clip_mean", "clip_std")]
        norm = math.sqrt(sum(float((s.float() ** 2).sum()) for s in stats if s is not None))
        return norm if norm > 1e-6 else float(self._zero_embed.float().norm())

    def denoising_steps(self, steps: int, sampler: str) -> int:
        """Prior and decoder steps per image (as generate() runs them)."""
        return max(steps, UNCLIP_MIN_STEPS) + steps

    def _prior(self, prompts: list[str], per_prompt: int, seed: int | None) -> np.ndarray:
        """(len(prompts) * per_prompt, dim) L2-normalised image embeddings, prompt by prompt."""
        out = self.prior(
            list(prompts),
            num_images_per_prompt=per_prompt,
            num_inference_steps=max(self.prior_steps, UNCLIP_MIN_STEPS),
            generator=torch_generator(seed),
            output_type="pt",
        ).image_embeds
        return F.normalize(out.float(), dim=-1).cpu().numpy().astype(np.float32)

    def prior_embeddings(self, prompts: list[str], seed: int | None = None) -> np.ndarray:
        """One image embedding drawn from the prior per prompt (L2-normalised float32)."""
        if not prompts:
            return np.zeros((0, self.dim), np.float32)
        return self._prior(prompts, 1, seed)

    def query_embeddings(self, prompts: list[str]) -> np.ndarray:
        """The embedding to search with for each prompt: the mean of QUERY_SEEDS prior draws
        (seeded QUERY_SEED, each prompt on its own, so a prompt's vector never depends on the
        others asked with it), L2-normalised. The same prompt always gives the same vector."""
        out = np.zeros((len(prompts), self.dim), np.float32)
        for i, prompt in enumerate(prompts):
            mean = self._prior([prompt], QUERY_SEEDS, QUERY_SEED).mean(axis=0)
            out[i] = mean / max(float(np.linalg.norm(mean)), 1e-12)
        return out

    def decode(
        self,
        embeddings: np.ndarray,
        seed: int | None = None,
        steps: int = 25,
        guidance: float | None = None,
        sampler: str = "ddim",
    ) -> list[Image.Image]:
        """An image per embedding of this space (e.g. an indexed image's, L2-normalised): scaled
        to the decoder's typical norm and drawn against the empty image's embedding as the
        negative, as a generation would. `steps` drives the decoder only."""
        e = np.asarray(embeddings, np.float32)
        if e.ndim != 2 or e.shape[1] != self.dim:
            raise ValueError(f"embeddings must be (n, {self.dim}) in {self.space}, got shape {e.shape}")
        check_request("kandinsky22", self.SAMPLERS, len(e), steps, sampler, self.max_steps)
        image_embeds = F.normalize(torch.from_numpy(e), dim=-1) * self._norm
        dtype = self._zero_embed.dtype
        return self._draw(
            image_embeds.to(self.device, dtype),
            self._zero_embed.repeat(len(e), 1),
            int(steps),
            guidance,
            sampler,
            torch_generator(seed),
        )

    def generate(
        self,
        prompt: str,
        n: int = 1,
        seed: int | None = None,
        steps: int = 25,
        guidance: float | None = None,
        sampler: str = "ddim",
    ) -> list[Image.Image]:
        """n images for the prompt. `steps` drives the prior (at least 2) and the decoder;
        `guidance` is the decoder's guidance scale (None: the pipeline default, 4.0); the prior
        keeps its default guidance (4.0); `sampler` picks the decoder's scheduler."""
        check_request("kandinsky22", self.SAMPLERS, n, steps, sampler, self.max_steps)
        steps, n = int(steps), int(n)
        generator = torch_generator(seed)
        embeds = self.prior(
            prompt,
            num_images_per_prompt=n,
            num_inference_steps=max(steps, UNCLIP_MIN_STEPS),
            generator=generator,
            output_type="pt",
        )
        return self._draw(embeds.image_embeds, embeds.negative_image_embeds, steps, guidance, sampler, generator)

    def _draw(self, image_embeds, negative, steps: int, guidance: float | None, sampler: str, generator):
        self.decoder.scheduler = self._schedulers[sampler]
        kwargs: dict[str, Any] = {}
        if guidance is not None:
            kwargs["guidance_scale"] = float(guidance)
        out = self.decoder(
            image_embeds=image_embeds,
            negative_image_embeds=negative,
            height=self.image_size,
            width=self.image_size,
            num_inference_steps=steps,
            generator=generator,
            output_type="pil",
            **kwargs,
        )
        return [im.convert("RGB") for im in out.images]
