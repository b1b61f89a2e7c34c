"""Small pixel-tensor operations shared by training, generation and evaluation."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def unit_pixels(images: np.ndarray) -> torch.Tensor:
    """uint8 images (B, S, S, 3) -> floats in [0, 1], (B, 3, S, S)."""
    return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() / 255


def affine_resample(images: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """Resample (B, C, H, W) images through per-image 2x3 affine maps (grid units: the side
    spans [-1, 1]), bilinear, with the border pixels repeated where the map looks outside."""
    grid = F.affine_grid(theta.to(images), list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)
