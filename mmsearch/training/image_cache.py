"""Training images decoded once: squashed to size x size, uint8 NHWC, cached as .npy."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from ..imageio import decode_rgb
from ..storage.files import atomic_path


def image_array(paths: list[Path], size: int, cache: Path | None = None) -> np.ndarray:
    """The images squashed to size x size, uint8 (N, size, size, 3); cached as .npy if asked."""
    if cache is not None and cache.exists():
        arr = np.load(cache, mmap_mode="r")
        if arr.shape[0] == len(paths) and arr.shape[1] == size:
            return arr
    out = np.empty((len(paths), size, size, 3), np.uint8)
    for k, p in enumerate(paths):
        out[k] = np.asarray(decode_rgb(p).resize((size, size), Image.BICUBIC))
    if cache is not None:
        # A file object: np.save would add ".npy" to the temporary name.
        with atomic_path(cache, durable=False) as tmp, open(tmp, "wb") as f:  # a cache: made again if lost
            np.save(f, out)
    return out
