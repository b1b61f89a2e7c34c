"""The Encoder protocol and the errors every encoder raises."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol, Sequence, runtime_checkable

import numpy as np
import torch
from PIL import Image

from ..imageio import UnreadableImageError, decode_rgb


class EncoderError(Exception):
    """Base class: anything that went wrong loading or running an encoder."""


class UnknownModelError(EncoderError, ValueError):
    """The model spec names no model we can build."""


class CheckpointNotFoundError(EncoderError, FileNotFoundError):
    """A local checkpoint (or its config) the spec points at does not exist."""


class HubUnreachableError(EncoderError, ConnectionError):
    """Weights must come from a model hub that cannot be reached, and are not cached."""


class ImageDecodeError(EncoderError, ValueError):
    """An input image cannot be decoded; `index` is its position in the batch."""

    def __init__(self, index: int, reason: str):
        super().__init__(f"image {index} cannot be decoded: {reason}")
        self.index = index


ImageInput = Image.Image | str | Path


@runtime_checkable
class Encoder(Protocol):
    """Maps texts and images into one embedding space; outputs are L2-normalised float32."""

    name: str
    space: str  # model + weights + preprocessing; vectors from different spaces never mix
    dim: int

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray: ...

    def embed_images(self, images: Sequence[ImageInput]) -> np.ndarray: ...


def resolve_device(device: str = "auto") -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise EncoderError("device 'cuda' was asked for but CUDA is not available; use --device cpu or auto")
    return torch.device(device)


def load_rgb(image: ImageInput, index: int) -> Image.Image:
    """Decode fully (truncated files fail here, not later), EXIF-oriented, RGB."""
    try:
        return decode_rgb(image)
    except UnreadableImageError as e:
        raise ImageDecodeError(index, str(e)) from e


def l2_normalise(x: torch.Tensor) -> np.ndarray:
    x = x.float()
    return torch.nn.functional.normalize(x, dim=-1).cpu().numpy().astype(np.float32, copy=False)


def embed_batched(items: Sequence, batch_size: int, dim: int, embed_chunk) -> np.ndarray:
    """Run embed_chunk(chunk, offset) -> tensor over items in batches, under inference mode;
    returns the L2-normalised float32 rows ((0, dim) for no items)."""
    if isinstance(items, str):
        raise TypeError("expected a list, not one string")
    items = list(items)
    out = [np.zeros((0, dim), np.float32)]
    with torch.inference_mode():
        for start in range(0, len(items), batch_size):
            out.append(l2_normalise(embed_chunk(items[start : start + batch_size], start)))
    return np.concatenate(out)
