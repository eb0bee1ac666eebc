"""Winograd's F(4x4, 3x3) convolutions against ``F.conv2d``."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from impasto.core import winograd
from impasto.methods.adain import AdaIN, Decoder


@pytest.mark.parametrize(
    ("c", "k", "h", "w", "padding", "mode"),
    [(3, 5, 8, 8, 1, "zeros"), (16, 7, 13, 10, 1, "reflect"), (8, 8, 6, 9, 0, "zeros"), (32, 48, 21, 17, 1, "zeros")],
)
def test_matches_conv2d(c: int, k: int, h: int, w: int, padding: int, mode: str) -> None:
    torch.manual_seed(c + k + h)
    conv = nn.Conv2d(c, k, 3, padding=padding, padding_mode=mode).requires_grad_(False)
    x = torch.randn(2, c, h, w).contiguous(memory_format=torch.channels_last)
    fast = winograd.WinogradConv2d(conv)
    with torch.inference_mode():
        expected, got = conv(x), fast(x)
    assert got.shape == expected.shape
    assert (got - expected).abs().max() < 1e-5 * expected.abs().max() * c**0.5
    # Not the same computation: oneDNN's direct kernel and the tile transforms round differently.
    assert not torch.equal(got, expected)


def test_falls_back_where_it_does_not_apply() -> None:
    conv = nn.Conv2d(4, 4, 3, padding=1)
    fast = winograd.WinogradConv2d(conv)
    x = torch.randn(1, 4, 8, 8, requires_grad=True)
    y = fast(x)  # gradients wanted: F.conv2d, which autograd differentiates
    assert torch.equal(y, conv(x)) and y.requires_grad
    fast.double()  # another dtype (bf16 networks have oneDNN's own fast kernels): F.conv2d
    with torch.inference_mode():
        assert torch.equal(fast(x.detach().double()), conv(x.detach().double()))
    for bad in (nn.Conv2d(4, 4, 3, stride=2), nn.Conv2d(4, 4, 5), nn.Conv2d(4, 4, 3, padding=2),
                nn.Conv2d(4, 4, 3, groups=2), nn.Conv2d(4, 4, 3, padding=1, padding_mode="circular")):  # fmt: skip
        assert not winograd.convertible(bad)
        with pytest.raises(ValueError, match="not a 3x3, stride-1 convolution"):
            winograd.WinogradConv2d(bad)


def test_layers_converted_by_channels() -> None:
    model = nn.Sequential(nn.Conv2d(64, 128, 3, padding=1), nn.ReLU(), nn.Conv2d(128, 256, 3, padding=1),
                          nn.Conv2d(256, 128, 1), nn.Conv2d(256, 256, 3))  # fmt: skip
    winograd.winograd_layers(model)
    kinds = [type(m).__name__ for m in model]
    assert kinds == ["Conv2d", "ReLU", "WinogradConv2d", "Conv2d", "WinogradConv2d"]


def test_adain_with_winograd_matches_direct() -> None:
    engine = AdaIN(precision="fp32")
    assert any(isinstance(m, winograd.WinogradConv2d) for m in engine.encoder)
    assert any(isinstance(m, winograd.WinogradConv2d) for m in engine.decoder)
    direct = copy.copy(engine)
    direct.encoder = nn.Sequential(*[m.conv if isinstance(m, winograd.WinogradConv2d) else m for m in engine.encoder])
    direct.decoder = Decoder.pretrained().to(memory_format=torch.channels_last)  # nothing fused or converted
    torch.manual_seed(0)
    x = F.interpolate(torch.rand(1, 3, 12, 20), size=(72, 120), mode="bilinear")
    with torch.inference_mode():
        a = engine.decode(engine.encode(x))
        b = direct.decode(direct.encode(x))
    assert (a - b).abs().max() < 1e-4


def test_rows_of_tiles_in_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    torch.manual_seed(1)
    conv = nn.Conv2d(8, 6, 3, padding=1).requires_grad_(False)
    x = torch.randn(1, 8, 23, 18).contiguous(memory_format=torch.channels_last)  # 6 rows of 5 tiles, cropped
    with torch.inference_mode():
        whole = winograd.WinogradConv2d(conv)(x)
        monkeypatch.setattr(winograd, "CHUNK_BYTES", 36 * 4 * 8 * 5 * 4)  # 4 rows at a time: chunks of 4 and 2
        chunked = winograd.WinogradConv2d(conv)(x)
    assert torch.allclose(chunked, whole, atol=1e-6) and (chunked - conv(x)).abs().max() < 1e-4
