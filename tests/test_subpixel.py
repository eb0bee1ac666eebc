"""Upsampling + reflect-padded 3x3 convolution at the low resolution against the modules it replaces."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from impasto.core import subpixel
from impasto.methods.adain import AdaIN, Decoder


def _reference(x: torch.Tensor, conv: nn.Conv2d) -> torch.Tensor:
    return conv(F.pad(F.interpolate(x, scale_factor=2, mode="nearest"), (1, 1, 1, 1), mode="reflect"))


@pytest.mark.parametrize(("c", "k", "h", "w"), [(3, 4, 1, 1), (5, 7, 2, 3), (8, 6, 9, 14), (16, 16, 17, 23)])
@pytest.mark.parametrize("channels_last", [False, True])
def test_matches_upsample_pad_conv(c: int, k: int, h: int, w: int, channels_last: bool) -> None:
    torch.manual_seed(c * k + h)
    conv = nn.Conv2d(c, k, 3).requires_grad_(False)
    x = torch.randn(2, c, h, w)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    fused = subpixel.UpsampleConv2d(nn.Upsample(scale_factor=2), nn.ReflectionPad2d(1), conv)
    with torch.inference_mode():
        expected, got = _reference(x, conv), fused(x)
    assert got.shape == (2, k, 2 * h, 2 * w)
    if h * w > 1:  # (a 1x1 picture is contiguous in both layouts)
        assert got.is_contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    # the border too: a 1x1 input upsampled and mirrored is 4 copies of its pixel
    assert (got - expected).abs().max() < 1e-5 * expected.abs().max()


def test_gradients_match_the_plain_form() -> None:
    torch.manual_seed(3)
    x = torch.randn(2, 3, 5, 6, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(4, 3, 3, 3, dtype=torch.float64, requires_grad=True)
    bias = torch.randn(4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(subpixel.upsample_conv2d, (x, weight, bias))
    conv = nn.Conv2d(3, 4, 3).double()
    module = subpixel.UpsampleConv2d(nn.Upsample(scale_factor=2), nn.ReflectionPad2d(1), conv)
    conv.weight.data.mul_(2)  # trained after fusing: with gradients the kernels come from the current weights
    module(x).square().sum().backward()
    fused = conv.weight.grad.clone()
    conv.weight.grad = None
    _reference(x, conv).square().sum().backward()
    assert torch.allclose(fused, conv.weight.grad)


def test_fuses_only_the_pattern() -> None:
    up, pad = nn.Upsample(scale_factor=2), nn.ReflectionPad2d(1)
    model = nn.Sequential(up, pad, nn.Conv2d(4, 8, 3), nn.ReLU(), up, pad, nn.Conv2d(8, 8, 3, stride=2),
                          up, nn.ReflectionPad2d(2), nn.Conv2d(8, 8, 5), nn.Upsample(scale_factor=2, mode="bilinear"),
                          pad, nn.Conv2d(8, 8, 3), up, pad, nn.Conv2d(8, 64, 3))  # fmt: skip
    subpixel.fuse_upsample_convs(model, max_product=8 * 64)
    kinds = [type(m).__name__ for m in model]
    # strided, 5x5 with 2 px padding, bilinear, 8 x 64 channels: left as they are
    assert kinds == ["UpsampleConv2d", "Identity", "Identity", "ReLU"] + ["Upsample", "ReflectionPad2d", "Conv2d"] * 4
    with pytest.raises(ValueError, match="not a 2x nearest upsampling"):
        subpixel.UpsampleConv2d(up, pad, nn.Conv2d(4, 4, 3, padding=1))


def test_adain_decoder_fused_matches_the_pretrained_layout() -> None:
    engine = AdaIN(precision="fp32")
    fused = [m for m in engine.decoder if isinstance(m, subpixel.UpsampleConv2d)]
    assert [m.conv.in_channels for m in fused] == [128, 64]  # the 256-channel stage stays Winograd's
    plain = Decoder.pretrained().to(memory_format=torch.channels_last)
    torch.manual_seed(0)
    features = torch.rand(1, 512, 9, 15).contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        a, b = engine.decode(features), plain(features).clamp(0, 1)
    assert a.shape == b.shape == (1, 3, 72, 120)
    assert (a - b).abs().max() < 1e-4
