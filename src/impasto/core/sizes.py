"""Image sizes: fitting a longest side, resizing image tensors."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def fit_size(width: int, height: int, longest: int) -> tuple[int, int]:
    """(width, height) scaled so the longest side is ``longest``, aspect ratio kept (each side >= 1)."""
    scale = longest / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def resize_tensor(t: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resize a (N, C, H, W) image tensor to (H, W) = ``size`` with antialiased bicubic, clamped to [0, 1]."""
    if tuple(t.shape[-2:]) == tuple(size):
        return t
    down = size[0] < t.shape[-2]
    out = F.interpolate(t, size=size, mode="bicubic", align_corners=False, antialias=down)
    return out.clamp(0, 1)
