"""Region (mask) maths of spatial control (Gatys et al. 2017): coverage, compositing, guided Gram losses.

Masks are a (K, 1, H, W) float tensor in [0, 1], one region per style image (loaded by
:mod:`impasto.io.masks`). Overlapping masks share a position between their styles; positions outside every
region keep the content. For the optimization method each style layer gets one guided Gram loss per region
(:class:`RegionStyleLoss`), the masks averaged down to the layer's resolution.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .losses import StyleLoss, gram_matrix


def coverage(masks: torch.Tensor) -> torch.Tensor:
    """(1, 1, H, W) share of each position that some style covers (0: unstyled, 1: fully styled)."""
    return masks.sum(0, keepdim=True).clamp(max=1.0)


def composite(stylized: torch.Tensor, content: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Blend the result back into the content outside the masks, so unstyled regions are the content."""
    cover = coverage(masks).to(stylized.device, stylized.dtype)
    return stylized * cover + content.to(stylized.device, stylized.dtype) * (1 - cover)


def normalized(masks: torch.Tensor) -> torch.Tensor:
    """Masks scaled so overlapping regions sum to at most 1 at each position."""
    return masks / masks.sum(0, keepdim=True).clamp_min(1.0)


class RegionStyleLoss(nn.Module):
    """Style loss of one layer with guided Gram matrices: one :class:`StyleLoss` per region, each comparing
    the Gram matrix of the features under that region's mask with its own style's Gram matrix."""

    def __init__(self, losses: Sequence[StyleLoss], masks: torch.Tensor) -> None:
        super().__init__()
        self.losses = nn.ModuleList(losses)
        self.register_buffer("masks", masks.float())  # (K, 1, h, w) at the layer's resolution

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        total = torch.zeros((), device=features.device)
        for loss, mask in zip(self.losses, self.masks, strict=True):
            if float(mask.sum()) > 0:
                total = total + loss(features, mask.unsqueeze(0))
        return total


def region_style_losses(
    style_features: Sequence[dict[str, torch.Tensor]],
    content_features: dict[str, torch.Tensor],
    masks: torch.Tensor,
    layers: Sequence[str],
    gram_norm: str = "positions",
    normalize: bool = False,
    layer_norm: str = "none",
) -> dict[str, RegionStyleLoss]:
    """Guided Gram losses per layer: region k of the content matches the Gram matrix of style k.

    ``style_features[k]`` holds style k's features at ``layers``; masks are averaged down to each layer's
    resolution (taken from ``content_features``).
    """
    masks = normalized(masks)
    out: dict[str, RegionStyleLoss] = {}
    for name in layers:
        layer_masks = F.interpolate(masks.float(), size=tuple(content_features[name].shape[-2:]), mode="area")
        losses = []
        for k, feats in enumerate(style_features):
            target = gram_matrix(feats[name], "positions")
            if gram_norm == "elements":
                target = target / feats[name].shape[1]
            elif gram_norm == "none":  # raw Gram matrices grow with the region's mass
                target = target * float(layer_masks[k].sum())
            losses.append(StyleLoss([target], None, gram_norm, normalize, layer_norm))
        out[name] = RegionStyleLoss(losses, layer_masks.to(content_features[name].device))
    return out
