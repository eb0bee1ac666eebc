"""Loss terms of Gatys et al.: content (feature MSE), style (Gram matrix MSE) and total variation.

Each loss is a small module holding its fixed target; calling it with the current features returns a
scalar computed in float32, whatever precision the network ran in.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

GRAM_NORMS = ("positions", "elements", "none")


def gram_matrix(features: torch.Tensor, norm: str = "positions", mask: torch.Tensor | None = None) -> torch.Tensor:
    """Gram matrix G = F F^T of (N, C, H, W) features, per batch item, in float32.

    ``norm``: ``positions`` divides by H*W (sizes of style and content may differ), ``elements`` by C*H*W
    (the PyTorch tutorial, batch 1), ``none`` leaves it raw (the article). ``mask`` (N, 1, H, W) weights
    positions, giving the guided Gram matrix of Gatys et al. 2017 (normalized by the mask's mass).
    """
    n, c, h, w = features.shape
    f = features.float().reshape(n, c, h * w)
    if mask is not None:
        m = mask.float().reshape(n, 1, h * w)
        g = torch.bmm(f * m, f.transpose(1, 2))
        mass = m.sum(dim=2, keepdim=True).clamp_min(1e-8)
        return g / mass if norm == "positions" else g / (mass * c) if norm == "elements" else g
    g = torch.bmm(f, f.transpose(1, 2))
    if norm == "positions":
        return g / (h * w)
    if norm == "elements":
        return g / (c * h * w)
    if norm == "none":
        return g
    raise ValueError(f"gram norm must be one of {GRAM_NORMS}, not '{norm}'")


class _GramMSE(torch.autograd.Function):
    """mean((F F^T / n - A)^2) with one matrix product forward and one backward.

    Autograd of ``mm(f, f.t())`` would run two products backward; the Gram matrix is symmetric, so
    d/dF = 4 / (n C^2) (G - A) F needs only one. The Gram matrix and the loss are fp32; the backward
    product runs in the features' precision, which is the precision of the backward pass it feeds.
    """

    @staticmethod
    def forward(ctx, f: torch.Tensor, target: torch.Tensor, n: float) -> torch.Tensor:
        f32 = f.float()
        diff = torch.bmm(f32, f32.transpose(1, 2)).div_(n).sub_(target)
        ctx.save_for_backward(f, diff)
        ctx.n = n
        return diff.pow(2).mean()

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        f, diff = ctx.saved_tensors
        scale = grad * 4.0 / (ctx.n * diff.numel())
        return torch.bmm(diff.mul_(scale).to(f.dtype), f), None, None


def gram_mse(features: torch.Tensor, target: torch.Tensor, norm: str = "positions") -> torch.Tensor:
    """mean((gram_matrix(features, norm) - target)^2) for (N, C, H, W) features, with a fused backward."""
    n, c, h, w = features.shape
    divisor = {"positions": h * w, "elements": c * h * w, "none": 1}[norm]
    return _GramMSE.apply(features.reshape(n, c, h * w), target.expand(n, c, c), float(divisor))


def _scale(target: torch.Tensor, normalize: bool) -> float:
    """1 / mean(target^2) when normalizing (scale-free weights), else 1."""
    return 1.0 / float(target.float().pow(2).mean().clamp_min(1e-12)) if normalize else 1.0


class ContentLoss(nn.Module):
    """Mean squared error between features and fixed content features.

    With ``normalize`` the MSE is divided by the target's mean square, so weights do not depend on the
    network's feature scale (Caffe 0-255 or torchvision normalization).
    """

    def __init__(self, target: torch.Tensor, normalize: bool = False) -> None:
        super().__init__()
        self.register_buffer("target", target.detach().float())
        self.scale = _scale(target, normalize)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return F.mse_loss(features.float(), self.target) * self.scale


class StyleLoss(nn.Module):
    """Mean squared error between the Gram matrix of features and a target Gram matrix.

    ``targets``/``weights`` blend several style images' Gram matrices. ``layer_norm`` set to ``elements``
    divides the loss by C*H*W of the input, as the article does with its unnormalized Gram matrices.
    """

    def __init__(
        self,
        targets: Sequence[torch.Tensor],
        weights: Sequence[float] | None = None,
        gram_norm: str = "positions",
        normalize: bool = False,
        layer_norm: str = "none",
    ) -> None:
        super().__init__()
        weights = list(weights) if weights is not None else [1.0] * len(targets)
        total = sum(weights)
        target = sum(w / total * t.detach().float() for w, t in zip(weights, targets))
        self.register_buffer("target", target)
        self.gram_norm = gram_norm
        self.layer_norm = layer_norm
        self.scale = _scale(target, normalize)

    @staticmethod
    def target_of(
        features: torch.Tensor, gram_norm: str = "positions", out_positions: int | None = None
    ) -> torch.Tensor:
        """Gram target of style features; for raw Gram matrices, rescaled to ``out_positions`` positions so
        style and content sizes may differ."""
        g = gram_matrix(features, gram_norm)
        if gram_norm == "none" and out_positions is not None:
            g = g * (out_positions / (features.shape[-2] * features.shape[-1]))
        return g

    def forward(self, features: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        if mask is None:
            loss = gram_mse(features, self.target, self.gram_norm) * self.scale
        else:
            g = gram_matrix(features, self.gram_norm, mask)
            loss = F.mse_loss(g, self.target.expand_as(g)) * self.scale
        if self.layer_norm == "elements":
            loss = loss / features[0].numel()
        return loss


class TVLoss(nn.Module):
    """Total variation: mean squared difference of neighbouring pixels (smoothness prior)."""

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        x = image.float()
        dh = (x[..., 1:, :] - x[..., :-1, :]).pow(2).mean()
        dw = (x[..., :, 1:] - x[..., :, :-1]).pow(2).mean()
        return dh + dw
