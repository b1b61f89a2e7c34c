"""A 64-bit perceptual hash of an image's look (the DCT hash, "pHash"), for confirming that two
images with near-identical embeddings are copies of one picture: resizing, re-encoding and a
slight crop move few of its bits, while two different photos of one scene move about half.

The image is reduced to 32 x 32 grey levels, its 2-D DCT taken, and the 8 x 8 lowest
frequencies compared with their median: each bit says whether a coefficient is above it.
Hashes are stored as 16 hexadecimal digits.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

SIDE = 32  # the grey thumbnail's side
LOW = 8  # the low frequencies kept per axis: LOW * LOW = 64 bits


def _dct_matrix(n: int) -> np.ndarray:
    k = np.arange(n)[:, None]
    m = np.cos(np.pi * (2 * np.arange(n)[None, :] + 1) * k / (2 * n)) * np.sqrt(2 / n)
    m[0] /= np.sqrt(2)
    return m


_DCT = _dct_matrix(SIDE)


def perceptual_hash(image: Image.Image) -> str:
    """The image's hash as 16 hex digits. An image of one flat colour (black aside) hashes to
    8000000000000000: only its mean is above the median (the other coefficients are rounded to
    0, not left to rounding noise)."""
    grey = np.asarray(image.convert("L").resize((SIDE, SIDE), Image.Resampling.BOX), np.float64)
    low = np.round((_DCT @ grey @ _DCT.T)[:LOW, :LOW].ravel(), 6)
    bits = low > np.median(low)
    return f"{int(np.packbits(bits).view('>u8')[0]):016x}"


def hash_distance(a: str, b: str) -> int:
    """How many of the 64 bits differ."""
    return (int(a, 16) ^ int(b, 16)).bit_count()
