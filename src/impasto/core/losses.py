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
    return torch.bmm(f, f.transpose(1, 2)) / _gram_divisor(features, norm)


class _GramMSETap(torch.autograd.Function):
    """Pass features through and compute mean((F F^T / n - A)^2), one matrix product each way.

    Autograd of ``mm(f, f.t())`` would run two products backward; the Gram matrix is symmetric, so
    d/dF = 4 / (n C^2) (G - A) F needs only one, and it is accumulated straight into the gradient arriving
    from the layers above (``baddbmm``) instead of a separate full-size addition. The Gram matrix and the loss
    are fp32; the backward product runs in the features' precision, the precision of the pass it feeds.
    Channels-last features are read through an (N, P, C) view, without a copy.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, target: torch.Tensor, n: float) -> tuple[torch.Tensor, torch.Tensor]:
        ctx.set_materialize_grads(False)
        diff, positions_first = _gram_residual(x, target, n)
        ctx.save_for_backward(x, diff)
        ctx.n, ctx.positions_first = n, positions_first
        return x.view_as(x), diff.pow(2).mean()

    @staticmethod
    def backward(ctx, grad_x: torch.Tensor | None, grad_loss: torch.Tensor | None):
        x, diff = ctx.saved_tensors
        if grad_loss is None:
            return grad_x, None, None
        d = diff.mul_(grad_loss * 4.0 / (ctx.n * diff.numel())).to(x.dtype)  # symmetric: d == d^T
        return _gram_grad(x, d, ctx.positions_first, grad_x), None, None


def _gram_residual(x: torch.Tensor, target: torch.Tensor, n: float) -> tuple[torch.Tensor, bool]:
    """``(F F^T / n - target, positions_first)`` in fp32 for (N, C, H, W) features ``x``; ``target`` is
    (N, C, C). Shared by :class:`_GramMSETap` and :mod:`impasto.methods.fused_backward`."""
    positions_first = _positions_first(x)
    f32 = _flat(x, positions_first).float()
    gram = torch.bmm(f32.transpose(1, 2), f32) if positions_first else torch.bmm(f32, f32.transpose(1, 2))
    return gram.div_(n).sub_(target), positions_first


def _gram_grad(
    x: torch.Tensor, d: torch.Tensor, positions_first: bool, acc: torch.Tensor | None = None
) -> torch.Tensor:
    """``acc + d F`` (the gradient of a Gram loss with symmetric d(loss)/dG = ``d``, in ``x``'s dtype and
    layout), in one batched product that accumulates into ``acc`` (the gradient from above, or None)."""
    f = _flat(x, positions_first)
    if acc is None:
        g = torch.bmm(f, d) if positions_first else torch.bmm(d, f)
    else:
        a = _flat(acc.to(x.dtype), positions_first)
        g = torch.baddbmm(a, f, d) if positions_first else torch.baddbmm(a, d, f)
    n, c, h, w = x.shape
    return g.view(n, h, w, c).permute(0, 3, 1, 2) if positions_first else g.view(n, c, h, w)


def _positions_first(x: torch.Tensor) -> bool:
    return x.shape[1] > 1 and x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()


def _flat(x: torch.Tensor, positions_first: bool) -> torch.Tensor:
    """(N, C, H, W) as (N, H*W, C) (a view of channels-last data) or (N, C, H*W)."""
    n, c, h, w = x.shape
    return x.permute(0, 2, 3, 1).reshape(n, h * w, c) if positions_first else x.reshape(n, c, h * w)


def _gram_divisor(features: torch.Tensor, norm: str) -> float:
    """What a Gram matrix of (N, C, H, W) features is divided by under ``norm`` (see :func:`gram_matrix`)."""
    n, c, h, w = features.shape
    if norm not in GRAM_NORMS:
        raise ValueError(f"gram norm must be one of {GRAM_NORMS}, not '{norm}'")
    return float({"positions": h * w, "elements": c * h * w, "none": 1}[norm])


def gram_mse_tap(
    features: torch.Tensor, target: torch.Tensor, norm: str = "positions"
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(features, mean((gram_matrix(features, norm) - target)^2))``: use the returned features downstream
    so the loss's gradient is added into theirs inside one fused product."""
    n, c = features.shape[:2]
    return _GramMSETap.apply(features, target.expand(n, c, c), _gram_divisor(features, norm))


def gram_mse(features: torch.Tensor, target: torch.Tensor, norm: str = "positions") -> torch.Tensor:
    """mean((gram_matrix(features, norm) - target)^2) for (N, C, H, W) features, with a fused backward."""
    return gram_mse_tap(features, target, norm)[1]


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

    def tap(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(features, loss)`` for :meth:`VGG19.forward_with_taps`: the loss computed in the forward pass,
        its gradient fused into the features' gradient from the layers above."""
        out, loss = gram_mse_tap(features, self.target, self.gram_norm)
        return out, self._weighted(loss, features)

    def forward(self, features: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        if mask is None:
            return self.tap(features)[1]
        g = gram_matrix(features, self.gram_norm, mask)
        return self._weighted(F.mse_loss(g, self.target.expand_as(g)), features)

    def _weighted(self, loss: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        """The raw Gram MSE times the normalization scale, per element when ``layer_norm`` asks."""
        loss = loss * self.scale
        return loss / features[0].numel() if self.layer_norm == "elements" else loss


class TVLoss(nn.Module):
    """Total variation: mean squared difference of neighbouring pixels (smoothness prior)."""

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        x = image.float()
        dh = (x[..., 1:, :] - x[..., :-1, :]).pow(2).mean()
        dw = (x[..., :, 1:] - x[..., :, :-1]).pow(2).mean()
        return dh + dw
