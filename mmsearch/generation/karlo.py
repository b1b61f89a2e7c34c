"""Karlo (kakaobrain's unCLIP) through diffusers' UnCLIPPipeline.

Sampler: "ddpm" only. UnCLIPPipeline hands `prev_timestep=` to `scheduler.step` for the prior,
decoder and super-res stages; only UnCLIPScheduler (an ancestral DDPM sampler over strided
timesteps, with Karlo's learned-range variance) accepts it. DDIMScheduler.step /
DDPMScheduler.step reject that argument (TypeError), so "ddim" is refused with a ValueError.

`steps` drives every stage. UnCLIPScheduler cannot take a single step (its timestep spacing
divides by steps - 1), so the prior, decoder and super-res stages run max(steps, 2); the
super-res stage runs min(max(steps, 2), 7): 7 is the pipeline's own default, and the
upsampler gains little from more.

Its space is its own (`karlo:<spec>`), never a library's: UnCLIPPipeline carries only the
text tower of the CLIP (ViT-L/14) whose image embeddings its prior predicts, not the vision
tower, so which image space that is cannot be read from the weights it loads; and the
pipeline runs its prior and decoder as one call. So Karlo is a plain `Generator`: no prior
stage in generate-on-miss and no variations of indexed media.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PIL import Image

from ..encoders.base import CheckpointNotFoundError, resolve_device
from .diffusers_common import (
    DEFAULT_HUB_TIMEOUT_S,
    UNCLIP_MIN_STEPS,
    call_default,
    check_request,
    ready,
    require_diffusers,
    resolve_pipeline,
    sample_side,
    torch_generator,
)

KARLO_DEFAULT = "kakaobrain/karlo-v1-alpha"
KARLO_INSTEAD = "a local directory, karlo:/path/to/DIR (an UnCLIPPipeline saved with save_pretrained(DIR))"
KARLO_SUPER_RES_STEPS = 7  # UnCLIPPipeline's default for the super-resolution stage


def _karlo_components(where: str, local: bool, source: str) -> dict[str, Any]:
    """UnCLIPPipeline's components, each loaded from its subfolder.

    UnCLIPPipeline.from_pretrained cannot load them from model_index.json in current diffusers:
    the pipeline moved to diffusers.pipelines.deprecated, so neither the hub repo's
    ["unclip", "UnCLIPTextProjModel"] entry nor the ["diffusers", "UnCLIPTextProjModel"] that
    save_pretrained now writes resolves to a class (ValueError, even when text_proj is passed in)."""
    from diffusers import PriorTransformer, UnCLIPScheduler, UNet2DConditionModel, UNet2DModel
    from diffusers.pipelines.deprecated.unclip.text_proj import UnCLIPTextProjModel
    from transformers import CLIPTextModelWithProjection, CLIPTokenizer

    classes = {
        "prior": PriorTransformer,
        "decoder": UNet2DConditionModel,
        "text_proj": UnCLIPTextProjModel,
        "super_res_first": UNet2DModel,
        "super_res_last": UNet2DModel,
        "text_encoder": CLIPTextModelWithProjection,
        "tokenizer": CLIPTokenizer,
        "prior_scheduler": UnCLIPScheduler,
        "decoder_scheduler": UnCLIPScheduler,
        "super_res_scheduler": UnCLIPScheduler,
    }
    if local:
        missing = [name for name in classes if not (Path(where) / name).is_dir()]
        if missing:
            raise CheckpointNotFoundError(
                f"{source} is not a saved UnCLIPPipeline: it has no {', '.join(missing)} subfolder(s)"
            )
    components = {}
    for name, cls in classes.items():
        try:
            components[name] = cls.from_pretrained(where, subfolder=name, local_files_only=local)
        except (OSError, ValueError) as e:
            raise CheckpointNotFoundError(f"cannot load the Karlo {name} from {source}: {e}") from e
    return components


class KarloGenerator:
    """Karlo (kakaobrain's unCLIP) through diffusers' UnCLIPPipeline: prior, 64 px decoder and
    a 256 px super-resolution stage for the released weights. Samplers: "ddpm" only (see the module doc)."""

    SAMPLERS = ("ddpm",)

    def __init__(self, spec: str = KARLO_DEFAULT, device: str = "cpu", *, hub_timeout_s: float = DEFAULT_HUB_TIMEOUT_S):
        diffusers = require_diffusers()
        spec = (spec or KARLO_DEFAULT).strip()
        self.device = resolve_device(device)
        where, local = resolve_pipeline(spec, "Karlo UnCLIPPipeline", hub_timeout_s, KARLO_INSTEAD)
        self.pipe = ready(diffusers.UnCLIPPipeline(**_karlo_components(where, local, spec)), self.device)
        self.name = f"karlo:{spec}"
        self.space = f"karlo:{spec}"  # Karlo's own CLIP space, not the search encoder's
        # The pipeline always runs its super-res stage, whose unet fixes the output side.
        self.image_size = sample_side(
            self.pipe.super_res_first.config.sample_size, sample_side(self.pipe.decoder.config.sample_size, 256)
        )
        self.max_steps = min(
            int(s.config.num_train_timesteps)
            for s in (self.pipe.prior_scheduler, self.pipe.decoder_scheduler, self.pipe.super_res_scheduler)
        )
        self.default_guidance = call_default(self.pipe, "decoder_guidance_scale")

    def denoising_steps(self, steps: int, sampler: str) -> int:
        """Prior, decoder and super-res steps per image (as generate() runs them)."""
        unclip_steps = max(steps, UNCLIP_MIN_STEPS)
        return 2 * unclip_steps + min(unclip_steps, KARLO_SUPER_RES_STEPS)

    def generate(
        self,
        prompt: str,
        n: int = 1,
        seed: int | None = None,
        steps: int = 25,
        guidance: float | None = None,
        sampler: str = "ddpm",
    ) -> list[Image.Image]:
        """n images for the prompt. `steps` drives the prior and decoder (at least 2 each) and the
        super-res stage (between 2 and 7); `guidance` is the decoder's guidance scale (None: the
        pipeline default, 8.0); the prior keeps its default guidance (4.0)."""
        check_request("karlo", self.SAMPLERS, n, steps, sampler, self.max_steps)
        steps, n = int(steps), int(n)
        unclip_steps = max(steps, UNCLIP_MIN_STEPS)
        kwargs: dict[str, Any] = {}
        if guidance is not None:
            kwargs["decoder_guidance_scale"] = float(guidance)
        out = self.pipe(
            prompt,
            num_images_per_prompt=n,
            prior_num_inference_steps=unclip_steps,
            decoder_num_inference_steps=unclip_steps,
            super_res_num_inference_steps=min(unclip_steps, KARLO_SUPER_RES_STEPS),
            generator=torch_generator(seed),
            output_type="pil",
            **kwargs,
        )
        return [im.convert("RGB") for im in out.images]
