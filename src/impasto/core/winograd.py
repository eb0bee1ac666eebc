"""3x3 convolutions by Winograd's minimal filtering, F(4x4, 3x3) (Lavin and Gray, *Fast Algorithms for
Convolutional Neural Networks*, CVPR 2016), for inference on CPUs whose oneDNN has no Winograd kernel.

oneDNN implements Winograd only for AVX-512 CPUs and PyTorch's NNPACK (which has it for AVX2) does not start on
every machine, so on an AVX2 CPU a 3x3 convolution costs its 9 multiply-adds per input channel, output channel
and pixel. F(4x4, 3x3) computes each 4x4 output tile from a 6x6 input tile with 36 multiply-adds per channel
pair instead of 144: the input tiles and the weights are transformed (V = B^T d B, U = G g G^T), multiplied
frequency by frequency (36 matrix products over the channels, one batched GEMM), and transformed back
(Y = A^T M A). The transforms are small matrix products written as torch GEMMs, so this pays where channels
are many (128 x 128 to 512 x 512 channels: 1.4-2.4x faster than oneDNN's direct kernels in float32 on a 2-core
AVX2 CPU, see docs/design.md), not in the first layers (64 channels), which stay direct.

Float32 only; the transforms' rounding error is ~1e-5 of the output's scale (:func:`winograd_conv2d` is checked
against ``F.conv2d`` in the tests). No autograd: a module that needs gradients calls ``F.conv2d``.
"""

from __future__ import annotations

import threading

import torch
import torch.nn.functional as F
from torch import nn

#: Input tile (6), output tile (4) of F(4x4, 3x3).
TILE_IN, TILE_OUT = 6, 4
# Lavin and Gray's matrices for F(4, 3): points 0, +-1, +-2 and infinity.
_BT = torch.tensor([[4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0], [0, -2, -1, 2, 1, 0],
                    [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]], dtype=torch.float64)  # fmt: skip
_G = torch.tensor([[1 / 4, 0, 0], [-1 / 6, -1 / 6, -1 / 6], [-1 / 6, 1 / 6, -1 / 6], [1 / 24, 1 / 12, 1 / 6],
                   [1 / 24, -1 / 12, 1 / 6], [0, 0, 1]], dtype=torch.float64)  # fmt: skip
_AT = torch.tensor([[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0], [0, 1, -1, 8, -8, 1]],
                   dtype=torch.float64)  # fmt: skip
#: The 2-D transforms as Kronecker products acting on row-major flattened tiles: (36, 36) and (16, 36).
INPUT_TRANSFORM = torch.kron(_BT, _BT).float()
OUTPUT_TRANSFORM = torch.kron(_AT, _AT).float()
#: Bytes of transformed tiles (36 x tiles x channels, float32) :func:`winograd_conv2d` works on at a time.
CHUNK_BYTES = 8 * 2**20
#: Smallest product of input and output channels for which :func:`winograd_layers` converts a convolution:
#: 128 x 128 and above are 1.4-2.4x faster by Winograd, 64 x 64 slower (the transforms' memory traffic grows with
#: the channels, the products they save with their square; docs/design.md).
MIN_CHANNEL_PRODUCT = 128 * 128


def transform_weight(weight: torch.Tensor) -> torch.Tensor:
    """(K, C, 3, 3) weights -> (36, C, K) float32: G g G^T per channel pair, computed in float64."""
    u = torch.einsum("ik,ockl,jl->ijco", _G, weight.detach().double().cpu(), _G)
    return u.reshape(TILE_IN * TILE_IN, weight.shape[1], weight.shape[0]).float().contiguous()


def winograd_conv2d(padded: torch.Tensor, weight_t: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """A 3x3 convolution (stride 1, no padding of its own) of ``padded`` (N, C, H + 2, W + 2) float32 with weights
    transformed by :func:`transform_weight`: (N, K, H, W), channels-last.

    Rows of tiles are taken a few at a time (:data:`CHUNK_BYTES` of transformed tiles), so that the transformed
    tiles and their products stay in the CPU's caches: unchunked, a 256-channel layer at 256x256 ran at half the
    speed of oneDNN's direct kernel; chunked, 1.7x faster. The chunks' temporaries live in a workspace of the
    thread's, reused from layer to layer and call to call (:func:`_workspace`)."""
    a, m = TILE_IN, TILE_OUT
    n, c, hp, wp = padded.shape
    k = weight_t.shape[2]
    h, w = hp - 2, wp - 2
    th, tw = -(-h // m), -(-w // m)
    extra_h, extra_w = th * m + 2 - hp, tw * m + 2 - wp
    x = padded.permute(0, 2, 3, 1)  # NHWC (a view for channels-last input)
    if extra_h or extra_w:  # whole tiles: zeros beyond the picture, their outputs cropped
        x = F.pad(x, (0, 0, 0, extra_w, 0, extra_h))
    out = torch.empty(n, th * m, tw * m, k, dtype=padded.dtype, device=padded.device)
    rows = max(1, CHUNK_BYTES // (a * a * 4 * max(c, k) * n * tw))
    buffers = _workspace(a * a * n * min(rows, th) * tw * max(c, k))
    for r0 in range(0, th, rows):
        r1 = min(th, r0 + rows)
        tiles = n * (r1 - r0) * tw
        src = x[:, r0 * m : r1 * m + 2].unfold(1, a, m).unfold(2, a, m)  # (N, rows, tw, C, 6, 6), a view
        d = buffers[0][: a * a * tiles * c].view(a, a, n, r1 - r0, tw, c)
        d.copy_(src.permute(4, 5, 0, 1, 2, 3))  # the tiles gathered: (36, tiles * C)
        v = torch.mm(INPUT_TRANSFORM, d.view(a * a, tiles * c), out=buffers[1][: a * a * tiles * c].view(a * a, -1))
        v = v.view(a * a, tiles, c)  # B^T d B of every tile and channel
        prod = torch.bmm(v, weight_t, out=buffers[2][: a * a * tiles * k].view(a * a, tiles, k))  # per frequency
        y = torch.mm(OUTPUT_TRANSFORM, prod.view(a * a, tiles * k), out=buffers[0][: m * m * tiles * k].view(m * m, -1))
        y = y.view(m, m, n, r1 - r0, tw, k)  # A^T M A
        part = out[:, r0 * m : r1 * m]
        part.view(n, r1 - r0, m, tw, m, k).copy_(y.permute(2, 3, 0, 4, 1, 5))
        if bias is not None:
            part += bias
    if extra_h or extra_w:
        out = out[:, :h, :w]
    return out.permute(0, 3, 1, 2)


_local = threading.local()


def _workspace(numel: int) -> list[torch.Tensor]:
    """Three float32 buffers of at least ``numel`` elements each, this thread's (grown when a chunk needs more).
    Allocated once, they keep the chunks' temporaries from leaving holes in the heap between the layers' large
    activations (with glibc's tuned allocator, :mod:`impasto.core.malloc`, freed memory stays in the heap: fresh
    temporaries in every chunk raised a 1024 px run's peak by 0.5 GB)."""
    held = getattr(_local, "buffers", None)
    if held is None or held[0].numel() < numel:
        held = _local.buffers = [torch.empty(numel) for _ in range(3)]
    return held


class WinogradConv2d(nn.Module):
    """An ``nn.Conv2d`` (3x3, stride 1, no dilation or groups; padding 0, or 1 with zeros or reflect) computed by
    :func:`winograd_conv2d` in inference; with gradients enabled or another dtype, by ``F.conv2d``."""

    def __init__(self, conv: nn.Conv2d) -> None:
        super().__init__()
        if not convertible(conv):
            raise ValueError(f"not a 3x3, stride-1 convolution Winograd's F(4x4, 3x3) computes: {conv}")
        self.conv = conv
        self.pad = conv.padding[0]
        self.mode = "constant" if conv.padding_mode == "zeros" else conv.padding_mode
        self.register_buffer("weight_t", transform_weight(conv.weight), persistent=False)
        _workspace(CHUNK_BYTES // 4)  # now, while the heap is small: below the activations that come and go

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype != torch.float32 or x.device.type != "cpu" or (torch.is_grad_enabled() and x.requires_grad):
            return self.conv(x)
        if self.pad:
            x = F.pad(x, (1, 1, 1, 1), mode=self.mode)
        bias = None if self.conv.bias is None else self.conv.bias.detach()
        return winograd_conv2d(x, self.weight_t, bias)


def convertible(conv: nn.Module) -> bool:
    """Whether ``conv`` is a convolution :class:`WinogradConv2d` computes."""
    return (
        isinstance(conv, nn.Conv2d)
        and conv.kernel_size == (3, 3)
        and conv.stride == (1, 1)
        and conv.dilation == (1, 1)
        and conv.groups == 1
        and conv.padding in ((0, 0), (1, 1))
        and conv.padding_mode in ("zeros", "reflect")
    )


def winograd_layers(model: nn.Sequential, min_product: int = MIN_CHANNEL_PRODUCT) -> nn.Sequential:
    """``model`` with its 3x3 convolutions of at least ``min_product`` input x output channels computed by
    Winograd's F(4x4, 3x3), in place (each wraps the convolution it replaces: the same parameters)."""
    for i, layer in enumerate(model):
        if convertible(layer) and layer.in_channels * layer.out_channels >= min_product:
            model[i] = WinogradConv2d(layer)
    return model
