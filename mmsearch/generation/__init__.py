"""Image generation (unCLIP), laid out as diffusers is: the networks (models/), the diffusion
math as pure functions (samplers.py), the sampling loops (pipelines.py), the built-in
generator (unclip.py) and the diffusers backends."""

from __future__ import annotations

from pathlib import Path


def load_generator(spec: str, encoder=None, device: str = "auto"):
    """A Generator from its spec: `mini` (the built-in prior + decoder, in the `mini`
    encoder's space), `mini:DIR` (ones trained with `mmsearch train prior/decoder --out DIR`),
    `karlo:PATH_OR_ID` or `kandinsky22:PATH_OR_IDS` (diffusers pipelines)."""
    from ..encoders.base import resolve_device

    device = str(resolve_device(device))
    kind, _, rest = spec.partition(":")
    if kind == "mini":
        from .unclip import BUILTIN_DIR, MiniGenerator

        if encoder is None:
            raise ValueError("the mini generator works in the search encoder's space: pass the encoder")
        model_dir = Path(rest).expanduser() if rest else BUILTIN_DIR
        return MiniGenerator(encoder, model_dir, device=device)
    if kind in ("karlo", "kandinsky22"):
        from .diffusers_backends import load_diffusers_generator

        return load_diffusers_generator(spec, device=device)
    raise ValueError(f"unknown generator {spec!r}: use mini, mini:DIR, karlo:PATH_OR_ID or kandinsky22:PATH_OR_IDS")
