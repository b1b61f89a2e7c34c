"""Text-to-image backends on Hugging Face diffusers: Karlo (unCLIP, karlo.py) and Kandinsky 2.2
(kandinsky.py), with what they share in diffusers_common.py.

Both are DALL-E 2 style (a prior maps the prompt to a CLIP image embedding, a decoder draws
the image). Karlo works in its own space (a plain `Generator`). Kandinsky 2.2 declares the
space of the CLIP its prior pipeline carries (`clip_space` of encoders/hf_clip.py) and is an
`EmbeddingGenerator`: on a library indexed with `hf-clip:<its prior folder>` the prior stage of
generate-on-miss and variations of indexed media work with it.

Specs (see `load_diffusers_generator`):

  karlo:<dir or hub id>                 a saved UnCLIPPipeline folder, or a hub id
                                        (empty: kakaobrain/karlo-v1-alpha)
  kandinsky22:<dir>                     a folder with prior/ and decoder/ subfolders, each a
                                        saved pipeline (KandinskyV22PriorPipeline, KandinskyV22Pipeline)
  kandinsky22:<prior>,<decoder>         two folders or hub ids (empty: the kandinsky-community ones)

A hub id that is not in the local Hugging Face cache needs the hub; when it cannot be reached
the constructor fails within `hub_timeout_s` (HubUnreachableError, naming what to pass
instead) rather than letting huggingface_hub retry for minutes.

Samplers: Karlo "ddpm" only; Kandinsky "ddim" and "ddpm" for its decoder (see each module).
diffusers (and transformers) are imported only when a backend is built.
"""

from __future__ import annotations

from .diffusers_common import DEFAULT_HUB_TIMEOUT_S, UNCLIP_MIN_STEPS
from .kandinsky import KANDINSKY22_DEFAULT_DECODER, KANDINSKY22_DEFAULT_PRIOR, Kandinsky22Generator
from .karlo import KARLO_DEFAULT, KARLO_SUPER_RES_STEPS, KarloGenerator

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


__all__ = [
    "DEFAULT_HUB_TIMEOUT_S",
    "KANDINSKY22_DEFAULT_DECODER",
    "KANDINSKY22_DEFAULT_PRIOR",
    "KARLO_DEFAULT",
    "KARLO_SUPER_RES_STEPS",
    "PREFIXES",
    "UNCLIP_MIN_STEPS",
    "Kandinsky22Generator",
    "KarloGenerator",
    "load_diffusers_generator",
]
