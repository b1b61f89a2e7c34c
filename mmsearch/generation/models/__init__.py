"""The generation networks: config, forward, and save/load. Their sampling runs in
generation/pipelines.py, their training losses in mmsearch/training/diffusion_losses.py."""

from .decoder import Decoder, DecoderConfig
from .prior import DiffusionPrior, PriorConfig

__all__ = ["Decoder", "DecoderConfig", "DiffusionPrior", "PriorConfig"]
