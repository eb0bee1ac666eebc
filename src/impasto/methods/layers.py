"""Layers the trained networks share (:mod:`impasto.methods.transformer`, :mod:`impasto.methods.multistyle`):
instance normalization whose statistics tiles can share, reflection-padded convolutions, and the upsampling
and 9x9 convolutions in their faster, equivalent forms."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..core.subpixel import upsample_conv2d


class InstanceNorm(nn.Module):
    """Instance normalization with a per-channel affine map (``weight``, ``bias``), as ``nn.InstanceNorm2d(
    affine=True)`` computes it (biased variance, eps 1e-5).

    ``fixed`` replaces the per-image statistics by given ones (tiles of one picture share them), and
    ``record`` makes the next forward pass keep the statistics it computed.
    """

    def __init__(self, channels: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self._setup(eps)

    def _setup(self, eps: float) -> None:
        self.eps = eps
        self.fixed: tuple[torch.Tensor, torch.Tensor] | None = None
        self.record = False
        #: Inference on channels-last tensors: statistics over an (N, H*W, C) view (no layout conversion).
        self.channels_last_inference = False

    def affine(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The per-channel (scale, shift) applied after normalizing, each (C,)."""
        return self.weight, self.bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight, bias = self.affine()
        if self.fixed is None and not self.record:
            if self.channels_last_inference and x.is_contiguous(memory_format=torch.channels_last):
                n, c, h, w = x.shape
                v = x.permute(0, 2, 3, 1).reshape(n, h * w, c)
                # two passes (mean, then mean square of the centred values): ~3x faster than var_mean over
                # the strided positions, and as exact
                mean = v.mean(1, keepdim=True)
                var = (v - mean).square_().mean(1, keepdim=True)
                scale = weight * torch.rsqrt(var + self.eps)
                return torch.addcmul(bias - mean * scale, v, scale).view(n, h, w, c).permute(0, 3, 1, 2)
            return F.instance_norm(x, weight=weight, bias=bias, eps=self.eps)
        if self.fixed is not None:
            mean, var = (t.to(x.device, x.dtype) for t in self.fixed)
        else:
            var, mean = torch.var_mean(x, dim=(2, 3), keepdim=True, correction=0)
            self.fixed = (mean.detach(), var.detach())
            self.record = False
        scale = weight.view(1, -1, 1, 1) * torch.rsqrt(var + self.eps)
        return x * scale + (bias.view(1, -1, 1, 1) - mean * scale)


class ConditionalInstanceNorm(InstanceNorm):
    """Conditional instance normalization (Dumoulin, Shlens & Kudlur, ICLR 2017): one (scale, shift) row per
    style in ``gamma`` and ``beta`` (S, C); the map applied is the ``style`` weights (S,) times those tables, so a
    one-hot ``style`` picks a style and a mix of weights blends styles."""

    def __init__(self, styles: int, channels: int, eps: float = 1e-5) -> None:
        nn.Module.__init__(self)
        self.gamma = nn.Parameter(torch.ones(styles, channels))
        self.beta = nn.Parameter(torch.zeros(styles, channels))
        self.register_buffer("style", torch.full((styles,), 1.0 / styles), persistent=False)
        self._setup(eps)

    def affine(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.style @ self.gamma, self.style @ self.beta


def conv(c_in: int, c_out: int, kernel: int, stride: int = 1) -> nn.Conv2d:
    """A convolution with reflection padding of half its kernel."""
    return nn.Conv2d(c_in, c_out, kernel, stride, padding=kernel // 2, padding_mode="reflect")


def relu(x: torch.Tensor) -> torch.Tensor:
    """ReLU, in place when no gradient is recorded (inference: one full-size copy fewer per layer)."""
    return F.relu(x, inplace=not torch.is_grad_enabled())


def _selection(kernel: int, taps: int, offset: int) -> torch.Tensor:
    """S[a, p, u, t] = 1 where tap ``t`` of a ``kernel``-wide filter at output phase ``a`` reads input phase ``p``
    at low-resolution offset ``u`` (2u + p = a + t + ``offset``); the rest 0. Maps a full-resolution kernel
    to the kernels of the four phases of a stride-2 (space-to-depth) formulation."""
    s = torch.zeros(2, 2, taps, kernel)
    for a in range(2):
        for p in range(2):
            for u in range(taps):
                t = 2 * u + p - a - offset
                if 0 <= t < kernel:
                    s[a, p, u, t] = 1.0
    return s


class SharedStatistics:
    """For a network of :class:`InstanceNorm` layers: read every layer's (mean, var) for one image and use them
    for others (the statistics of a whole picture for each of its tiles)."""

    def norms(self) -> list[InstanceNorm]:
        """The instance-norm layers, in forward order."""
        return [m for m in self.modules() if isinstance(m, InstanceNorm)]  # type: ignore[attr-defined]

    def set_statistics(self, stats: Sequence[tuple[torch.Tensor, torch.Tensor]] | None) -> None:
        """Use these per-layer (mean, var) in every instance norm (None: each image's own)."""
        for i, norm in enumerate(self.norms()):
            norm.fixed = None if stats is None else stats[i]
            norm.record = False

    @torch.inference_mode()
    def statistics(self, x: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Every instance norm's (mean, var) for image ``x``."""
        self.set_statistics(None)
        for norm in self.norms():
            norm.record = True
        self(x)  # type: ignore[operator]
        stats = [norm.fixed for norm in self.norms()]
        self.set_statistics(None)
        return stats  # type: ignore[return-value]


class UpsampleConv(nn.Module):
    """Nearest-neighbour upsampling x2, then a 3x3 conv with reflection padding (Odena et al. 2016: no
    checkerboard artefacts).

    ``forward`` computes it as written. :meth:`fast` computes exactly the same map at the low resolution
    (:func:`impasto.core.subpixel.upsample_conv2d`): each output phase (2i + a, 2j + b) is a 2x2 conv of the
    replicate-padded input whose kernel sums the 3x3 kernel's taps, so 4 multiply-adds per output pixel and
    channel pair instead of 9, and no upsampled copy (an earlier form, one 3x3 conv with 4x the outputs and a
    pixel shuffle, saved the copy but not the arithmetic: 6-8% slower at width 32, ``benchmarks/bench_layers.py``)."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv = conv(c_in, c_out, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2, mode="nearest"))

    def fast(self, x: torch.Tensor) -> torch.Tensor:
        return upsample_conv2d(x, self.conv.weight, self.conv.bias)


class WideConv(nn.Module):
    """A 9x9 conv with reflection padding between 3 and ``channels`` channels (the network's first or last).

    ``forward`` computes it as written. :meth:`fast` computes the same map on the space-to-depth picture
    (pixel unshuffle by 2 of the mirrored input, a 5x5 conv between 4x the channels, pixel shuffle back): oneDNN
    runs a conv with 3 output channels far below its speed (its backward pass was a fifth of a training step),
    one with 12 outputs from 128 inputs near it, for 23% more arithmetic. Needs even input sides."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv = conv(c_in, c_out, 9)
        self.register_buffer("_sel", _selection(9, 5, 0), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)

    def fast(self, x: torch.Tensor) -> torch.Tensor:
        w = self.conv.weight
        c_out, c_in = w.shape[:2]
        k = torch.einsum("aput,bqvs,octs->oabcpquv", self._sel, self._sel, w).reshape(4 * c_out, 4 * c_in, 5, 5)
        u = F.pixel_unshuffle(F.pad(x, (4, 4, 4, 4), mode="reflect"), 2)
        return F.pixel_shuffle(F.conv2d(u, k, self.conv.bias.repeat_interleave(4)), 2)
