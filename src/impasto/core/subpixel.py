"""A 2x nearest-neighbour upsampling followed by a reflect-padded 3x3 convolution, computed at the input's
resolution: 4 multiply-adds per output pixel and channel pair instead of 9.

After a nearest-neighbour upsampling every 3x3 window covers only 2x2 distinct input pixels, and which taps
fall on which of them depends only on the output pixel's parity (its phase): output (2i + a, 2j + b) is a 2x2
convolution of the input at rows i - 1 + a .. i + a and columns j - 1 + b .. j + b, with the 3x3 kernel's taps
summed into 2x2 by ``R[a] W R[b]^T`` (``R[0]`` = [[1, 0, 0], [0, 1, 1]], ``R[1]`` = [[1, 1, 0], [0, 0, 1]]). A
1-pixel reflect padding of the upsampled image equals the upsampled replicate padding of the input (the
upsampled rows 0 and 1 are both input row 0), so the border is exact too. The four phases' kernels run as one
convolution with 4x the output channels (one large GEMM rather than four small ones), and the phases are
interleaved into the output by four strided copies. Nothing upsampled or padded at the output's size is made.
Johnson et al.'s transformer (:class:`impasto.methods.transformer.UpsampleConv`) computes its upsampling
stages this way too.

The AdaIN decoder (:class:`impasto.methods.adain.Decoder`) has this pattern three times; its 128- and 64-channel
ones are 1.5-1.8x faster this way in float32 on a 2-core AVX2 CPU, and faster than Winograd's F(4x4, 3x3) at the
upsampled size (:mod:`impasto.core.winograd`), which keeps the 256-channel one (docs/design.md).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# Which of the 3 taps of a row (column) land on each of the 2 input rows (columns) a phase reads.
_PHASE_TAPS = torch.tensor([[[1, 0, 0], [0, 1, 1]], [[1, 1, 0], [0, 0, 1]]], dtype=torch.float64)
_PHASES = ((0, 0), (0, 1), (1, 0), (1, 1))


def phase_kernels(weight: torch.Tensor) -> torch.Tensor:
    """(K, C, 3, 3) weights -> (4K, C, 2, 2): the kernels of phases (0, 0), (0, 1), (1, 0), (1, 1), in the
    weights' dtype (differentiable)."""
    taps = _PHASE_TAPS.to(weight)
    return torch.cat([torch.einsum("ik,ockl,jl->ocij", taps[a], weight, taps[b]) for a, b in _PHASES])


def upsample_conv2d(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, kernels: torch.Tensor | None = None
) -> torch.Tensor:
    """``conv2d(reflect_pad(upsample_nearest_2x(x), 1), weight, bias)`` for a (K, C, 3, 3) ``weight``, at the
    input's resolution; ``kernels``: :func:`phase_kernels` of ``weight``, when they are at hand. The output
    (N, K, 2H, 2W) is channels-last when ``x`` is. Differentiable."""
    n, _, h, w = x.shape
    k = weight.shape[0]
    if kernels is None:
        kernels = phase_kernels(weight)
    last = x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
    if last:
        kernels = kernels.contiguous(memory_format=torch.channels_last)
    phases = F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), kernels, None if bias is None else bias.repeat(4))
    # Interleave the phases (N, 4K, h + 1, w + 1) into the output by four strided copies (a pixel shuffle of
    # the cropped phases makes two full-size copies and ran 4-10x slower).
    if last:  # channels-last storage (N, 2h, 2w, K) seen as (N, h, 2, w, 2, K)
        out = phases.new_empty(n, 2 * h, 2 * w, k)
        tiles, src = out.view(n, h, 2, w, 2, k), phases.permute(0, 2, 3, 1)
        for i, (a, b) in enumerate(_PHASES):
            tiles[:, :, a, :, b].copy_(src[:, a : a + h, b : b + w, i * k : (i + 1) * k])
        return out.permute(0, 3, 1, 2)
    out = phases.new_empty(n, k, 2 * h, 2 * w)
    tiles = out.view(n, k, h, 2, w, 2)
    for i, (a, b) in enumerate(_PHASES):
        tiles[:, :, :, a, :, b].copy_(phases[:, i * k : (i + 1) * k, a : a + h, b : b + w])
    return out


class UpsampleConv2d(nn.Module):
    """``Upsample(scale_factor=2, mode="nearest")``, ``ReflectionPad2d(1)``, ``Conv2d(C, K, 3)`` as one module:
    :func:`upsample_conv2d`, its phase kernels computed once for inference (the convolution's weights must not
    change afterwards; with gradients they are recomputed on every call)."""

    def __init__(self, upsample: nn.Upsample, pad: nn.ReflectionPad2d, conv: nn.Conv2d) -> None:
        super().__init__()
        if not fusable(upsample, pad, conv):
            raise ValueError(f"not a 2x nearest upsampling, 1-pixel reflect padding and 3x3 convolution: {conv}")
        self.conv = conv
        with torch.no_grad():
            kernels = phase_kernels(conv.weight.double()).to(conv.weight.dtype)
        self.register_buffer("kernels", kernels.contiguous(memory_format=torch.channels_last), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled() and self.conv.weight.requires_grad:
            return upsample_conv2d(x, self.conv.weight, self.conv.bias)
        return upsample_conv2d(x, self.conv.weight, self.conv.bias, self.kernels.to(x.dtype))


def fusable(upsample: nn.Module, pad: nn.Module, conv: nn.Module) -> bool:
    """Whether three consecutive modules are the pattern :class:`UpsampleConv2d` computes."""
    return (
        isinstance(upsample, nn.Upsample)
        and upsample.mode == "nearest"
        and upsample.size is None
        and upsample.scale_factor in (2, 2.0, (2, 2), (2.0, 2.0))
        and isinstance(pad, nn.ReflectionPad2d)
        and tuple(pad.padding) == (1, 1, 1, 1)
        and isinstance(conv, nn.Conv2d)
        and conv.kernel_size == (3, 3)
        and conv.stride == (1, 1)
        and conv.dilation == (1, 1)
        and conv.groups == 1
        and conv.padding == (0, 0)
    )


def fuse_upsample_convs(model: nn.Sequential, max_product: int | None = None) -> nn.Sequential:
    """``model`` with each upsampling, reflect padding and 3x3 convolution in a row replaced, in place, by one
    :class:`UpsampleConv2d` and two ``nn.Identity`` (module indices stay); only convolutions of fewer than
    ``max_product`` input x output channels when it is given."""
    for i in range(len(model) - 2):
        up, pad, conv = model[i], model[i + 1], model[i + 2]
        if fusable(up, pad, conv) and (max_product is None or conv.in_channels * conv.out_channels < max_product):
            model[i], model[i + 1], model[i + 2] = UpsampleConv2d(up, pad, conv), nn.Identity(), nn.Identity()
    return model
