"""Batch augmentations on image tensors that keep the caption true.

No hue changes (colour names must stay right) and only small shifts and zooms (positions
must stay in their grid cell). Flips are done on the scene attributes too, elsewhere.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def augment_batch(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """x: float images in [0, 1], shape (B, 3, H, W). Returns a new tensor in [0, 1]."""
    b = x.shape[0]

    def u(lo: float, hi: float, *shape: int) -> torch.Tensor:
        return lo + (hi - lo) * torch.rand(*shape, generator=generator)

    # Small zoom and shift (a few per cent of the canvas), edges replicated.
    scale = u(0.9, 1.1, b)
    shift = u(-0.06, 0.06, b, 2)
    theta = torch.zeros(b, 2, 3)
    theta[:, 0, 0] = scale
    theta[:, 1, 1] = scale
    theta[:, :, 2] = shift
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)

    # Blur some images (3x3 box blur blended in by a random amount).
    blur_amount = u(0, 1, b, 1, 1, 1) * (torch.rand(b, 1, 1, 1, generator=generator) < 0.3)
    blurred = F.avg_pool2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), 3, stride=1)
    x = x * (1 - blur_amount) + blurred * blur_amount

    # Brightness and contrast, mildly; no hue or saturation change.
    brightness = u(-0.08, 0.08, b, 1, 1, 1)
    contrast = u(0.8, 1.2, b, 1, 1, 1)
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = (x - mean) * contrast + mean + brightness

    # Sensor noise with a per-image strength.
    sigma = u(0, 0.06, b, 1, 1, 1) * (torch.rand(b, 1, 1, 1, generator=generator) < 0.5)
    x = x + sigma * torch.randn(x.shape, generator=generator)
    return x.clamp(0, 1)
