"""Encoders: text / image (/ video) -> L2-normalised float32 vectors in one space.

The package imports nothing heavy itself: decode worker processes import
`mmsearch.encoders.video` and must not pay for torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .base import Encoder, EncoderError


def load_encoder(
    spec: str = "mini", device: str = "auto", batch_size: int = 64, hub_timeout_s: float = 5.0
) -> "Encoder":
    """Build the encoder a spec string names (see openclip.py, blip.py and hf_clip.py for the forms)."""
    if spec.startswith("hf-clip:"):
        from .hf_clip import HfClipEncoder

        return HfClipEncoder(spec[len("hf-clip:") :], device=device, batch_size=batch_size, hub_timeout_s=hub_timeout_s)
    if spec.startswith("blip:"):
        from .blip import BlipEncoder

        return BlipEncoder(spec[len("blip:") :], device=device, batch_size=batch_size, hub_timeout_s=hub_timeout_s)
    from .openclip import OpenClipEncoder

    return OpenClipEncoder(spec, device=device, batch_size=batch_size, hub_timeout_s=hub_timeout_s)


def encoder_for(settings) -> "Encoder":
    """The encoder a Settings object names (its model, device, batch size and hub timeout)."""
    from ..config import DEFAULT_MODEL

    return load_encoder(
        settings.model or DEFAULT_MODEL,
        device=settings.device,
        batch_size=settings.batch_size,
        hub_timeout_s=settings.hub_timeout_s,
    )


def __getattr__(name: str):
    if name in ("Encoder", "EncoderError"):
        from . import base

        return getattr(base, name)
    raise AttributeError(name)


__all__ = ["Encoder", "EncoderError", "encoder_for", "load_encoder"]
