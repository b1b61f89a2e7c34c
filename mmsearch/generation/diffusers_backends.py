"""Text-to-image backends on Hugging Face diffusers: Karlo (unCLIP) and Kandinsky 2.2.

Both are DALL-E 2 style (a prior maps the prompt to a CLIP image embedding, a decoder draws
the image), but in their own CLIP space, not the search encoder's: they implement the plain
`Generator` protocol, not `EmbeddingGenerator`.

Specs (see `load_diffusers_generator`):

  karlo:<dir or hub id>                 a saved UnCLIPPipeline folder, or a hub id
                                        (empty: kakaobrain/karlo-v1-alpha)
  kandinsky22:<dir>                     a folder with prior/ and decoder/ subfolders, each a
                                        saved pipeline (KandinskyV22PriorPipeline, KandinskyV22Pipeline)
  kandinsky22:<prior>,<decoder>         two folders or hub ids (empty: the kandinsky-community ones)

A hub id that is not in the local Hugging Face cache needs the hub; when it cannot be reached
the constructor fails within `hub_timeout_s` (HubUnreachableError, naming what to pass
instead) rather than letting huggingface_hub retry for minutes.

Samplers:

  Karlo        "ddpm" only. UnCLIPPipeline hands `prev_timestep=` to `scheduler.step` for the
               prior, decoder and super-res stages; only UnCLIPScheduler (an ancestral DDPM
               sampler over strided timesteps, with Karlo's learned-range variance) accepts it.
               DDIMScheduler.step / DDPMScheduler.step reject that argument (TypeError), so
               "ddim" is refused with a ValueError.
  Kandinsky    "ddim" and "ddpm" for the decoder (DDIMScheduler / DDPMScheduler built from the
               saved scheduler config); the prior always runs its UnCLIPScheduler.

`steps` drives every stage. UnCLIPScheduler cannot take a single step (its timestep spacing
divides by steps - 1), so the UnCLIPScheduler stages (both priors, Karlo's decoder and
super-res) run max(steps, 2). Karlo's super-res stage runs min(max(steps, 2), 7): 7 is the
pipeline's own default, and the upsampler gains little from more.

diffusers (and transformers) are imported only when a backend is built.
"""

from __future__ import annotations

import inspect
import math
import numbers
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from ..encoders.base import CheckpointNotFoundError, resolve_device
from ..encoders.hub import cached_hf_snapshot, hf_endpoint, require_hub

KARLO_DEFAULT = "kakaobrain/karlo-v1-alpha"
KANDINSKY22_DEFAULT_PRIOR = "kandinsky-community/kandinsky-2-2-prior"
KANDINSKY22_DEFAULT_DECODER = "kandinsky-community/kandinsky-2-2-decoder"
KARLO_INSTEAD = "a local directory, karlo:/path/to/DIR (an UnCLIPPipeline saved with save_pretrained(DIR))"
KANDINSKY22_INSTEAD = (
    "a local directory, kandinsky22:/path/to/DIR with prior/ and decoder/ subfolders "
    "(each a pipeline saved with save_pretrained())"
)
KARLO_SUPER_RES_STEPS = 7  # UnCLIPPipeline's default for the super-resolution stage
UNCLIP_MIN_STEPS = 2  # UnCLIPScheduler.set_timesteps divides by (steps - 1)
DEFAULT_HUB_TIMEOUT_S = 5.0


def _require_diffusers():
    """Import diffusers (and transformers, which its unCLIP/Kandinsky pipelines need), or say how to get them."""
    try:
        import diffusers
        import transformers  # noqa: F401
    except ImportError as e:
        raise ImportError(
            f"the diffusers generation backends need diffusers and transformers ({e}): "
            "install mmsearch[diffusers] (pip install 'mmsearch[diffusers]')"
        ) from e
    return diffusers


def _looks_like_path(source: str) -> bool:
    """A hub id is exactly ORG/NAME; anything else that is not an existing folder is a missing path."""
    return source.startswith(("/", ".", "~")) or "\\" in source or source.count("/") != 1


def _resolve_pipeline(source: str, what: str, timeout_s: float, instead: str) -> tuple[str, bool]:
    """(folder or hub id, is_local) for one saved diffusers pipeline. Cached hub repos load from
    the cache without network; an uncached hub id needs the hub to answer within timeout_s."""
    path = Path(source).expanduser()
    if path.is_dir():
        if not (path / "model_index.json").is_file():
            raise CheckpointNotFoundError(
                f"{path} has no model_index.json: it is not a diffusers pipeline folder (save one with "
                "pipeline.save_pretrained(DIR))"
            )
        return str(path), True
    if _looks_like_path(source):
        raise CheckpointNotFoundError(f"{what} folder {source} does not exist (and is not a hub id ORG/NAME)")
    snapshot = cached_hf_snapshot(source)
    if snapshot and (Path(snapshot) / "model_index.json").is_file():
        return snapshot, True
    require_hub(f"{what} {source}", hf_endpoint(), timeout_s, instead)
    return source, False


def _load_pipeline(cls, where: str, local: bool, what: str, source: str, device: torch.device):
    try:
        pipe = cls.from_pretrained(where, local_files_only=local)
    except (OSError, ValueError) as e:
        raise CheckpointNotFoundError(f"cannot load the {what} from {source}: {e}") from e
    return _ready(pipe, device)


def _ready(pipe, device: torch.device):
    pipe = pipe.to(device)
    pipe.set_progress_bar_config(disable=True)
    return pipe


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


def _side(sample_size: Any, default: int) -> int:
    if sample_size is None:
        return default
    if isinstance(sample_size, (list, tuple)):
        return int(sample_size[0])
    return int(sample_size)


def _torch_generator(seed: int | None) -> torch.Generator:
    """A CPU generator (diffusers draws on CPU and moves the noise, so seeds match across devices)."""
    if seed is None:
        seed = int(torch.randint(0, 2**31 - 1, ()).item())
    return torch.Generator("cpu").manual_seed(int(seed))


def _call_default(pipeline, parameter: str) -> float:
    """The default a pipeline's __call__ gives a parameter (what a request without it gets)."""
    return float(inspect.signature(type(pipeline).__call__).parameters[parameter].default)


def _check_request(backend: str, supported: tuple[str, ...], n: int, steps: int, sampler: str, max_steps: int) -> None:
    if sampler not in supported:
        why = (
            " (UnCLIPPipeline can only step its UnCLIPScheduler, an ancestral DDPM sampler)"
            if backend == "karlo" and sampler == "ddim"
            else ""
        )
        raise ValueError(
            f"sampler {sampler!r} is not supported by the {backend} backend{why}: "
            f"it supports {', '.join(repr(s) for s in supported)}"
        )
    if isinstance(steps, bool) or not isinstance(steps, numbers.Integral) or not 1 <= steps <= max_steps:
        raise ValueError(f"steps must be an integer between 1 and {max_steps}, got {steps!r}")
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")


class KarloGenerator:
    """Karlo (kakaobrain's unCLIP) through diffusers' UnCLIPPipeline: prior, 64 px decoder and
    a 256 px super-resolution stage for the released weights. Samplers: "ddpm" only (see the module doc)."""

    SAMPLERS = ("ddpm",)

    def __init__(self, spec: str = KARLO_DEFAULT, device: str = "cpu", *, hub_timeout_s: float = DEFAULT_HUB_TIMEOUT_S):
        diffusers = _require_diffusers()
        spec = (spec or KARLO_DEFAULT).strip()
        self.device = resolve_device(device)
        where, local = _resolve_pipeline(spec, "Karlo UnCLIPPipeline", hub_timeout_s, KARLO_INSTEAD)
        self.pipe = _ready(diffusers.UnCLIPPipeline(**_karlo_components(where, local, spec)), self.device)
        self.name = f"karlo:{spec}"
        self.space = f"karlo:{spec}"  # Karlo's own CLIP space, not the search encoder's
        # The pipeline always runs its super-res stage, whose unet fixes the output side.
        self.image_size = _side(
            self.pipe.super_res_first.config.sample_size, _side(self.pipe.decoder.config.sample_size, 256)
        )
        self.max_steps = min(
            int(s.config.num_train_timesteps)
            for s in (self.pipe.prior_scheduler, self.pipe.decoder_scheduler, self.pipe.super_res_scheduler)
        )
        self.default_guidance = _call_default(self.pipe, "decoder_guidance_scale")

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
        _check_request("karlo", self.SAMPLERS, n, steps, sampler, self.max_steps)
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
            generator=_torch_generator(seed),
            output_type="pil",
            **kwargs,
        )
        return [im.convert("RGB") for im in out.images]


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
    if _looks_like_path(spec):
        raise CheckpointNotFoundError(f"Kandinsky 2.2 folder {spec} does not exist")
    raise ValueError(
        f"kandinsky22 spec {spec!r} names one hub repo: give prior_id,decoder_id "
        f"(e.g. {KANDINSKY22_DEFAULT_PRIOR},{KANDINSKY22_DEFAULT_DECODER}) or a local directory"
    )


class Kandinsky22Generator:
    """Kandinsky 2.2 through diffusers: KandinskyV22PriorPipeline (text -> CLIP image embedding)
    then KandinskyV22Pipeline (embedding -> image via a latent unet and the MoVQ decoder).
    Samplers: "ddim" and "ddpm" for the decoder; the prior always runs its UnCLIPScheduler."""

    SAMPLERS = ("ddim", "ddpm")

    def __init__(self, spec: str = "", device: str = "cpu", *, hub_timeout_s: float = DEFAULT_HUB_TIMEOUT_S):
        diffusers = _require_diffusers()
        prior_src, decoder_src, spec = _kandinsky_sources(spec or "")
        self.device = resolve_device(device)
        prior_where, prior_local = _resolve_pipeline(
            prior_src, "Kandinsky 2.2 prior", hub_timeout_s, KANDINSKY22_INSTEAD
        )
        decoder_where, decoder_local = _resolve_pipeline(
            decoder_src, "Kandinsky 2.2 decoder", hub_timeout_s, KANDINSKY22_INSTEAD
        )
        self.prior = _load_pipeline(
            diffusers.KandinskyV22PriorPipeline,
            prior_where,
            prior_local,
            "Kandinsky 2.2 prior pipeline",
            prior_src,
            self.device,
        )
        self.decoder = _load_pipeline(
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
        self.space = f"kandinsky22:{spec}"  # Kandinsky's own CLIP space, not the search encoder's
        self._scale = 2 ** (len(self.decoder.movq.config.block_out_channels) - 1)
        side = _side(self.decoder.unet.config.sample_size, 512 // self._scale) * self._scale
        # KandinskyV22Pipeline rounds the requested side up to a multiple of scale**2.
        self.image_size = math.ceil(side / self._scale**2) * self._scale**2
        self.max_steps = min(int(self.prior.scheduler.config.num_train_timesteps), int(config["num_train_timesteps"]))
        self.default_guidance = _call_default(self.decoder, "guidance_scale")

    def denoising_steps(self, steps: int, sampler: str) -> int:
        """Prior and decoder steps per image (as generate() runs them)."""
        return max(steps, UNCLIP_MIN_STEPS) + steps

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
        _check_request("kandinsky22", self.SAMPLERS, n, steps, sampler, self.max_steps)
        steps, n = int(steps), int(n)
        generator = _torch_generator(seed)
        embeds = self.prior(
            prompt,
            num_images_per_prompt=n,
            num_inference_steps=max(steps, UNCLIP_MIN_STEPS),
            generator=generator,
            output_type="pt",
        )
        self.decoder.scheduler = self._schedulers[sampler]
        kwargs: dict[str, Any] = {}
        if guidance is not None:
            kwargs["guidance_scale"] = float(guidance)
        out = self.decoder(
            image_embeds=embeds.image_embeds,
            negative_image_embeds=embeds.negative_image_embeds,
            height=self.image_size,
            width=self.image_size,
            num_inference_steps=steps,
            generator=generator,
            output_type="pil",
            **kwargs,
        )
        return [im.convert("RGB") for im in out.images]


PREFIXES = ("karlo", "kandinsky22")


def load_diffusers_generator(spec: str, device: str = "cpu", *, hub_timeout_s: float = DEFAULT_HUB_TIMEOUT_S):
    """Build the diffusers backend a spec names: karlo:<dir or hub id> or
    kandinsky22:<dir with prior/ and decoder/, or prior,decoder>. A bare prefix means the default weights."""
    prefix, _, rest = spec.partition(":")
    if prefix == "karlo":
        return KarloGenerator(rest, device, hub_timeout_s=hub_timeout_s)
    if prefix == "kandinsky22":
        return Kandinsky22Generator(rest, device, hub_timeout_s=hub_timeout_s)
    raise ValueError(
        f"unknown generator spec {spec!r}: use karlo:<dir or hub id> or "
        "kandinsky22:<dir with prior/ and decoder/, or prior_id,decoder_id>"
    )


__all__ = ["KarloGenerator", "Kandinsky22Generator", "load_diffusers_generator", "PREFIXES"]
