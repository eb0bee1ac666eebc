"""The fast photorealistic method (Li et al., *A Closed-form Solution to Photorealistic Image Stylization*,
ECCV 2018), on the AdaIN encoder and decoder of :mod:`impasto.methods.adain`.

1. A feature transform at relu4_1: AdaIN (channel means and standard deviations; default) or the whitening
   and colouring transform (WCT: the content features' covariance replaced by the style's), region by region
   with label maps (content region k takes the statistics of style region k). Measured on the three photo
   pairs, the two keep the content's structure alike (docs/guides/photorealistic.md); with this decoder, trained
   on AdaIN features, WCT leaves blotches of colour that the guided smoothing does not remove.
2. The decoder turns the features back into an image Y; it keeps the content's layout but not its fine
   structure.
3. Li et al.'s smoothing (:func:`impasto.core.matting.smooth`) makes the result locally an affine function
   of the content's colours: ``exact`` solves their closed form, ``guided`` approximates it with a guided
   filter (He et al. 2010) in a fraction of the time.

Li et al. decode with a network trained for WCT (unpooling with max-pooling indices); impasto has the AdaIN
decoder, and the smoothing restores the edges either way. Tiles are not supported (the smoothing couples
the whole picture).
"""

from __future__ import annotations

import torch

from ..core.matting import smooth
from ..core.progress import Callback
from ..core.regions import layer_masks, normalized
from ..errors import InputError
from ..options import Options
from . import fast
from .adain import EPS, AdaIN, check_encoder, crop_pads, pad_to_stride
from .base import MethodSpec, Stylization, Work, check_photorealistic, refuse_model, refuse_photo_weight

#: Covariance regularization of the whitening, relative to the mean eigenvalue.
WCT_EPS = 1e-4
#: Li et al.'s smoothing: peak bytes per pixel (the guided filter's float32 window statistics, which the exact
#: solver's float32 stencil and vectors, ~170 B, stay below; measured 385-500 B at 1024 and 2048 px) and
#: seconds per pixel (exact: ~280 conjugate-gradient iterations at 803x538, more on larger pictures; rough).
SMOOTH_BYTES_PER_PIXEL = {"exact": 450, "guided": 450, "none": 0}
SMOOTH_SECONDS_PER_PIXEL = {"exact": 3e-6, "guided": 3e-7, "none": 0.0}


def _moments(f: torch.Tensor, weight: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Weighted mean (C, 1), centred features (C, P) and total weight of features (C, P) (float64)."""
    if weight is None:
        weight = torch.ones(f.shape[1], dtype=f.dtype, device=f.device)
    mass = float(weight.sum())
    mean = (f * weight).sum(1, keepdim=True) / max(mass, 1e-12)
    return mean, f - mean, mass


def _sqrt_cov(centred: torch.Tensor, weight: torch.Tensor | None, mass: float, power: float) -> torch.Tensor:
    """(Cov + eps)^power for centred features (C, P) with position weights."""
    w = centred if weight is None else centred * weight
    cov = w @ centred.t() / max(mass, 1e-12)
    cov = cov + WCT_EPS * float(cov.diagonal().mean().clamp_min(1e-12)) * torch.eye(cov.shape[0], dtype=cov.dtype)
    values, vectors = torch.linalg.eigh(cov)
    return vectors @ torch.diag(values.clamp_min(1e-12).pow(power)) @ vectors.t()


def wct(content: torch.Tensor, style: torch.Tensor, content_weight: torch.Tensor | None = None,
        style_weight: torch.Tensor | None = None) -> torch.Tensor:  # fmt: skip
    """Whitening and colouring transform of features (C, P) to the style features' (C, Q) mean and covariance,
    each over its (optional) position weights; float64.

    The result's (weighted) covariance is the style's: Cs^1/2 Cc^-1/2 (f - mu_c) + mu_s.
    """
    c_mean, c_centred, c_mass = _moments(content, content_weight)
    s_mean, s_centred, s_mass = _moments(style, style_weight)
    colour = _sqrt_cov(s_centred, style_weight, s_mass, 0.5)
    whiten = _sqrt_cov(c_centred, content_weight, c_mass, -0.5)
    return colour @ (whiten @ c_centred) + s_mean


def adain_weighted(content: torch.Tensor, style: torch.Tensor, content_weight: torch.Tensor | None = None,
                   style_weight: torch.Tensor | None = None) -> torch.Tensor:  # fmt: skip
    """AdaIN of features (C, P) to the style's (C, Q) channel means and standard deviations, weighted."""
    c_mean, c_centred, c_mass = _moments(content, content_weight)
    s_mean, s_centred, s_mass = _moments(style, style_weight)
    cw = c_centred.pow(2) if content_weight is None else c_centred.pow(2) * content_weight
    sw = s_centred.pow(2) if style_weight is None else s_centred.pow(2) * style_weight
    c_std = (cw.sum(1, keepdim=True) / max(c_mass, 1e-12)).sqrt().clamp_min(EPS)
    s_std = (sw.sum(1, keepdim=True) / max(s_mass, 1e-12)).sqrt()
    return c_centred / c_std * s_std + s_mean


def transform_features(content: torch.Tensor, style: torch.Tensor, kind: str = "wct",
                       regions: torch.Tensor | None = None, style_regions: torch.Tensor | None = None
                       ) -> torch.Tensor:  # fmt: skip
    """Feature transform of content features (1, C, h, w) to style features (1, C, hs, ws), float32 out.

    With ``regions`` (K, 1, h, w) and ``style_regions`` (K, 1, hs, ws) at the features' sizes, region k of the
    content takes the statistics of style region k; a region smaller than C feature positions on either side
    (too few for a covariance) takes AdaIN's.
    """
    c, h, w = content.shape[1:]
    f = content[0].double().reshape(c, h * w).cpu()
    s = style[0].double().reshape(c, -1).cpu()
    if regions is None:
        out = wct(f, s) if kind == "wct" else adain_weighted(f, s)
    else:
        masks = normalized(regions).double().reshape(regions.shape[0], h * w).cpu()
        smasks = style_regions.double().reshape(style_regions.shape[0], -1).cpu()
        out = torch.zeros_like(f)
        for k in range(masks.shape[0]):
            if float(masks[k].sum()) <= 0:
                continue
            small = min(float(masks[k].sum()), float(smasks[k].sum())) < c
            fn = wct if kind == "wct" and not small else adain_weighted
            out += masks[k] * fn(f, s, masks[k], smasks[k])
    return out.float().reshape(1, c, h, w).to(content.device)


class PhotoFast:
    """The fast photorealistic method behind the :class:`~impasto.methods.base.Method` interface."""

    def __init__(self, options: Options, device: torch.device | None = None) -> None:
        self.options = options
        self.history: list[dict[str, float]] = []  # one pass: no loss history
        self.engine = AdaIN.shared(str(device) if device is not None else options.device, options.precision)
        #: Conjugate-gradient iterations of the last exact smoothing (0 for guided or none).
        self.iterations = 0

    def decode_stylized(self, content: torch.Tensor, style: torch.Tensor, regions: torch.Tensor | None = None,
                        style_regions: torch.Tensor | None = None) -> torch.Tensor:  # fmt: skip
        """Steps 1-2: the decoder's image (1, 3, H, W) of the transformed features, before smoothing."""
        o, engine = self.options, self.engine
        padded, pads = pad_to_stride(content.to(engine.device))
        with torch.inference_mode():
            feats = engine.encode(padded)
        sfeats = engine.style_features(style)  # encoded once per style image
        masks = smasks = None
        if regions is not None:
            masks = layer_masks(pad_to_stride(regions.float())[0], feats.shape[-2:])
            smasks = layer_masks(pad_to_stride(style_regions.float())[0], sfeats.shape[-2:])
        target = transform_features(feats.float(), sfeats.float(), o.transform, masks, smasks)
        if o.strength != 1:
            target = o.strength * target + (1 - o.strength) * feats.float()
        return crop_pads(self.engine.decode(target), pads).cpu().clone()

    def run(self, inputs: Stylization, *, callback: Callback | None = None) -> torch.Tensor:
        """Stylize ``inputs`` (one style image) whole; returns (1, 3, H, W) on the CPU."""
        tile = inputs.plan.scales[-1].tile
        if tile and max(inputs.content.shape[-2:]) > tile:
            raise InputError("--method photo-fast does not run in tiles; use --tile 0 or a smaller --size")
        if len(inputs.styles) != 1:
            raise InputError(f"--method photo-fast takes one style image, got {len(inputs.styles)}")
        content = inputs.content.float()
        y = self.decode_stylized(content, inputs.styles[0], *(inputs.regions or (None, None)))
        self.iterations = 0
        if self.options.smooth == "none":
            return y
        out, self.iterations = smooth(content[0].cpu(), y[0], self.options.smooth)
        return out.unsqueeze(0).cpu()


def cost(options: Options, work: Work) -> tuple[int, float]:
    """(peak bytes, seconds) of the fast method's pass over the whole picture plus the smoothing's."""
    picture = work.picture
    peak = fast.peak_bytes(picture, picture, work.style_pixels, work.precision)
    peak += SMOOTH_BYTES_PER_PIXEL[options.smooth] * picture
    secs = fast.seconds(picture, work.device, work.precision) + SMOOTH_SECONDS_PER_PIXEL[options.smooth] * picture
    return int(peak), secs


def check(options: Options) -> None:
    """The AdaIN network's limits and the photorealistic methods'; no model file or photorealism regularizer."""
    refuse_model(options)
    check_encoder(options)
    check_photorealistic(options)
    refuse_photo_weight(options)


SPEC = MethodSpec("photo-fast", build=PhotoFast, cost=cost, check=check, iterative=False, styles="one",
                  tileable=False)  # fmt: skip
