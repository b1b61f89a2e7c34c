"""Batch augmentations on image tensors that keep the caption true.

No hue changes here (colour names must stay right) and only small shifts and zooms
(positions must stay in their grid cell). Flips are done on the scene attributes too, and
hue rotation (`rotate_hue`) only on images whose captions name no colour, elsewhere.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..pixels import affine_resample

# RGB <-> YIQ: hue is the angle in the (I, Q) plane, so a rotation there changes hue and
# keeps luma, which is what shape recognition must not depend on.
_RGB_TO_YIQ = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])
_YIQ_TO_RGB = torch.linalg.inv(_RGB_TO_YIQ)


def rotate_hue(image: torch.Tensor, degrees: float) -> torch.Tensor:
    """image: (3, H, W) in [0, 1]; the same image with every hue turned by `degrees`."""
    c, s = math.cos(math.radians(degrees)), math.sin(math.radians(degrees))
    rotation = torch.tensor([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])
    matrix = _YIQ_TO_RGB @ rotation @ _RGB_TO_YIQ
    return torch.einsum("ij,jhw->ihw", matrix, image).clamp(0, 1)


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
    x = affine_resample(x, theta)

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
