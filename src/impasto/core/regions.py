"""Region (mask) maths of spatial control (Gatys et al. 2017): coverage, compositing, guided Gram losses.

Masks are a (K, 1, H, W) float tensor in [0, 1], one region per style image (loaded by
:mod:`impasto.io.masks`). Overlapping masks share a position between their styles; positions outside every
region keep the content. For the optimization method each style layer gets one guided Gram loss per region
(:class:`RegionStyleLoss`), the masks averaged down to the layer's resolution. Photorealistic transfer
(Luan et al. 2017) matches regions of two label maps (:func:`match_regions`) and takes each region's target
Gram matrix over the style image's own region.
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
    the Gram matrix of the features under that region's mask with its own target, weighted by ``weights``
    (default 1 each)."""

    def __init__(self, losses: Sequence[StyleLoss], masks: torch.Tensor, weights: Sequence[float] | None = None
                 ) -> None:  # fmt: skip
        super().__init__()
        self.losses = nn.ModuleList(losses)
        self.register_buffer("masks", masks.float())  # (K, 1, h, w) at the layer's resolution
        self.weights = [1.0] * len(losses) if weights is None else [float(w) for w in weights]

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        total = torch.zeros((), device=features.device)
        for loss, mask, weight in zip(self.losses, self.masks, self.weights, strict=True):
            if weight > 0 and float(mask.sum()) > 0:
                total = total + weight * loss(features, mask.unsqueeze(0))
        return total


def layer_masks(masks: torch.Tensor, hw: Sequence[int]) -> torch.Tensor:
    """Region masks (K, 1, H, W) carried down to a layer of size ``hw``: averaged over the pixels each feature
    position covers (area interpolation), so every region keeps its share of the picture."""
    return F.interpolate(masks.float(), size=tuple(hw), mode="area")


def match_regions(
    content_masks: torch.Tensor, content_labels: Sequence[str], style_masks: torch.Tensor, style_labels: Sequence[str]
) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """Match the regions of a content and a style label map by label: ``(content (K, 1, H, W), style
    (K, 1, h, w), labels)``, one pair per content label.

    A label in both maps pairs its two regions. A label only in the content map takes the whole style image
    (there is nothing better to match it with; the regularizer and the content loss keep it photographic). A
    label only in the style map is ignored. Content masks are normalized to sum to 1 at each position.
    """
    index = {name: i for i, name in enumerate(style_labels)}
    whole = torch.ones_like(style_masks[:1])
    pairs = [style_masks[index[n] : index[n] + 1] if n in index else whole for n in content_labels]
    return normalized(content_masks), torch.cat(pairs), list(content_labels)


def region_style_losses(
    style_features: Sequence[dict[str, torch.Tensor]],
    content_features: dict[str, torch.Tensor],
    masks: torch.Tensor,
    layers: Sequence[str],
    gram_norm: str = "positions",
    normalize: bool = False,
    layer_norm: str = "none",
    style_masks: torch.Tensor | None = None,
    weighted: bool = False,
) -> dict[str, RegionStyleLoss]:
    """Guided Gram losses per layer: region k of the content matches the Gram matrix of ``style_features[k]``,
    taken over the whole style image or, with ``style_masks`` (K, 1, h, w) at that style image's size, over
    the style's own region k (Luan et al. 2017).

    ``style_features[k]`` holds the features at ``layers`` that region k matches; every mask is carried down to
    each layer's resolution (:func:`layer_masks`: content masks at ``content_features``' sizes, style masks
    at the style features'). ``weighted`` weights each region's loss by its share of the content, so that one
    region covering everything is the plain style loss.
    """
    masks = normalized(masks)
    shares = (masks.sum((1, 2, 3)) / (masks.shape[-2] * masks.shape[-1])).tolist() if weighted else None
    out: dict[str, RegionStyleLoss] = {}
    for name in layers:
        content_masks = layer_masks(masks, content_features[name].shape[-2:])
        losses = []
        for k, feats in enumerate(style_features):
            f = feats[name]
            mask = None if style_masks is None else layer_masks(style_masks[k : k + 1], f.shape[-2:]).to(f.device)
            target = gram_matrix(f, "positions", mask)
            if gram_norm == "elements":
                target = target / f.shape[1]
            elif gram_norm == "none":  # raw Gram matrices grow with the region's mass
                target = target * float(content_masks[k].sum())
            losses.append(StyleLoss([target], None, gram_norm, normalize, layer_norm))
        out[name] = RegionStyleLoss(losses, content_masks.to(content_features[name].device), shares)
    return out
