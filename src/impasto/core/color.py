"""Colour preservation of Gatys et al., *Controlling Perceptual Factors in Neural Style Transfer* (2017).

Two ways to keep the content's colours, both pure functions of (N, 3, H, W) RGB tensors in [0, 1]:

* ``luminance``: transfer the style on the luminance only (YIQ's Y), the style's luminance first matched
  to the content's mean and deviation; the result takes the content's I and Q channels back.
* ``histogram``: recolour the style image before the transfer with the linear map that gives its pixels
  the content's colour mean and covariance (:func:`match_color`).

The other way round, region by region, the content is recoloured to the style (:func:`transfer_colors`, by
histogram matching, :func:`match_histograms`, or by the same linear map): the photorealistic method's start image
(``init="colors"``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

#: How ``preserve_color`` may be set (None keeps the style's colours).
PRESERVE_COLOR = ("luminance", "histogram")

#: RGB -> YIQ (NTSC 1953; rows Y, I, Q).
RGB_TO_YIQ = torch.tensor(
    [[0.299, 0.587, 0.114], [0.595716, -0.274453, -0.321263], [0.211456, -0.522591, 0.311135]], dtype=torch.float64
)
YIQ_TO_RGB = torch.linalg.inv(RGB_TO_YIQ)


def _apply(matrix: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
    return torch.einsum("ij,njhw->nihw", matrix.to(image.device, torch.float32), image.float())


def rgb_to_yiq(image: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) RGB to YIQ: luminance Y in [0, 1], chroma I and Q around 0."""
    return _apply(RGB_TO_YIQ, image)


def yiq_to_rgb(image: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) YIQ to RGB (not clamped)."""
    return _apply(YIQ_TO_RGB, image)


def luminance(image: torch.Tensor) -> torch.Tensor:
    """Y of an RGB image, (N, 1, H, W)."""
    return rgb_to_yiq(image)[:, :1]


def gray(image: torch.Tensor) -> torch.Tensor:
    """The luminance of an RGB image as a gray RGB image (what the network sees in luminance mode)."""
    return luminance(image).clamp(0, 1).expand(-1, 3, -1, -1).contiguous()


def match_luminance(style: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
    """Gray RGB image of the style's luminance with the content luminance's mean and standard deviation."""
    ys, yc = luminance(style), luminance(content)
    scale = yc.std() / ys.std().clamp_min(1e-6)
    matched = (ys - ys.mean()) * scale + yc.mean()
    return matched.clamp(0, 1).expand(-1, 3, -1, -1).contiguous()


def combine_luminance(stylized: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
    """The stylized image's luminance with the content's chroma (I, Q), in RGB.

    Where the stylized luminance would push a pixel out of the RGB cube, the luminance (not the chroma) is
    clamped to the range that keeps it inside, so the content's I and Q are kept exactly.
    """
    y = luminance(stylized)
    iq = rgb_to_yiq(content)[:, 1:]
    inv = YIQ_TO_RGB.to(content.device, torch.float32)
    offset = torch.einsum("ij,njhw->nihw", inv[:, 1:], iq)  # RGB = inv[:, 0] * Y + offset
    slope = inv[:, 0].view(1, 3, 1, 1)
    lo = ((0 - offset) / slope).amax(dim=1, keepdim=True)
    hi = ((1 - offset) / slope).amin(dim=1, keepdim=True)
    y = torch.minimum(torch.maximum(y, lo), torch.maximum(hi, lo))
    return (slope * y + offset).clamp(0, 1)


def color_stats(image: torch.Tensor, weights: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean (3,) and covariance (3, 3) of an image's RGB pixels, in float64; ``weights`` (N, 1, H, W) weight
    each pixel (a soft region mask), else every pixel counts once."""
    x = image.double().reshape(image.shape[0], 3, -1).transpose(1, 2).reshape(-1, 3)
    if weights is None:
        return x.mean(0), torch.cov(x.T, correction=0)
    w = weights.double().expand(image.shape[0], 1, *image.shape[-2:]).reshape(-1)
    mass = w.sum().clamp_min(1e-12)
    mean = (x * w[:, None]).sum(0) / mass
    centred = x - mean
    return mean, (centred * w[:, None]).T @ centred / mass


def _sqrt_and_inv_sqrt(cov: torch.Tensor, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    values, vectors = torch.linalg.eigh(cov + eps * torch.eye(3, dtype=cov.dtype))
    values = values.clamp_min(eps)
    return (vectors * values.sqrt()) @ vectors.T, (vectors * values.rsqrt()) @ vectors.T


def _linear_map(cov_s: torch.Tensor, cov_t: torch.Tensor, mode: str, eps: float) -> torch.Tensor:
    """A with A cov_s A^T = cov_t (see :func:`match_color`)."""
    if mode == "pca":
        _, inv_sqrt_s = _sqrt_and_inv_sqrt(cov_s, eps)
        sqrt_t, _ = _sqrt_and_inv_sqrt(cov_t, eps)
        return sqrt_t @ inv_sqrt_s
    if mode == "cholesky":
        eye = torch.eye(3, dtype=torch.float64)
        return torch.linalg.cholesky(cov_t + eps * eye) @ torch.linalg.inv(torch.linalg.cholesky(cov_s + eps * eye))
    raise ValueError(f"colour matching mode must be 'pca' or 'cholesky', not '{mode}'")


def _recolour(source: torch.Tensor, stats_s: tuple, stats_t: tuple, mode: str, eps: float) -> torch.Tensor:
    """``source`` mapped by x' = A (x - mu_s) + mu_t, unclamped, in the source's dtype."""
    (mu_s, cov_s), (mu_t, cov_t) = stats_s, stats_t
    a = _linear_map(cov_s, cov_t, mode, eps)
    x = source.double() - mu_s.view(1, 3, 1, 1)
    return (torch.einsum("ij,njhw->nihw", a, x) + mu_t.view(1, 3, 1, 1)).to(source.dtype)


def match_color(
    source: torch.Tensor,
    target: torch.Tensor,
    mode: str = "pca",
    eps: float = 1e-8,
    clamp: bool = True,
    source_weights: torch.Tensor | None = None,
    target_weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """Recolour ``source`` so its RGB mean and covariance equal ``target``'s: x' = A (x - mu_s) + mu_t.

    ``mode`` picks A with A cov_s A^T = cov_t: ``pca``, the symmetric A = cov_t^(1/2) cov_s^(-1/2) of
    image analogies (Hertzmann et al. 2001), which Gatys et al. 2017 use; or ``cholesky``, A = L_t L_s^-1.
    ``eps`` regularizes the covariances. With ``clamp`` the result is clipped to [0, 1], which can move its
    statistics slightly where colours leave the RGB cube. ``source_weights`` / ``target_weights`` (N, 1, H, W)
    take each image's statistics over a soft region only (:func:`color_stats`); the map applies to every pixel.
    """
    out = _recolour(source, color_stats(source, source_weights), color_stats(target, target_weights), mode, eps)
    return out.clamp(0, 1) if clamp else out


#: Quantiles that describe a distribution in :func:`match_histograms` (the map between them is linear).
QUANTILES = 256


def _weighted_quantiles(values: torch.Tensor, weights: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """Quantiles ``q`` (in [0, 1]) of 1-D ``values`` with non-negative ``weights``, linearly interpolated."""
    keep = weights > 0  # a sample of no weight is not part of the distribution
    values, weights = values[keep], weights[keep]
    order = torch.argsort(values)
    v, w = values[order], weights[order]
    cum = torch.cumsum(w, 0)
    cum = (cum - 0.5 * w) / cum[-1].clamp_min(1e-30)  # each sample at the middle of its weight
    return _interp(q, cum, v)


def _interp(x: torch.Tensor, xp: torch.Tensor, fp: torch.Tensor) -> torch.Tensor:
    """Piecewise-linear interpolation of (xp, fp) at x, xp non-decreasing, constant beyond the ends
    (``numpy.interp``)."""
    i = torch.searchsorted(xp.contiguous(), x.contiguous(), right=True).clamp(1, len(xp) - 1)
    x0, x1, f0, f1 = xp[i - 1], xp[i], fp[i - 1], fp[i]
    t = ((x - x0) / (x1 - x0).clamp_min(1e-30)).clamp(0, 1)
    return f0 + t * (f1 - f0)


def match_histograms(
    source: torch.Tensor,
    target: torch.Tensor,
    source_weights: torch.Tensor | None = None,
    target_weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """Recolour ``source`` (1, 3, H, W) so that its colour distribution follows ``target``'s, axis by axis: the
    colours expressed in the principal axes of the target's colours, and each axis mapped by the monotone
    curve that takes the source's quantiles to the target's (histogram matching, :data:`QUANTILES` knots).
    ``source_weights`` / ``target_weights`` (1, 1, H, W) take each distribution over a soft region. Unclamped.

    Unlike the mean-and-covariance map of :func:`match_color`, it keeps a target's shape: a dark picture with a
    few bright lights gives dark pictures with a few bright lights, not a uniformly dimmed one. Each curve is
    monotone and linear between its knots, so the result is locally an affine function of the source's colours
    almost everywhere (what the photorealism regularizer asks of a picture).
    """
    x = source.double().reshape(3, -1).T  # (P, 3)
    y = target.double().reshape(3, -1).T
    wx = torch.ones(len(x), dtype=torch.float64) if source_weights is None else source_weights.double().reshape(-1)
    wy = torch.ones(len(y), dtype=torch.float64) if target_weights is None else target_weights.double().reshape(-1)
    _, cov = color_stats(target, target_weights)
    _, axes = torch.linalg.eigh(cov)  # (3, 3), columns the principal axes
    px, py = x @ axes, y @ axes
    q = torch.linspace(0, 1, QUANTILES, dtype=torch.float64)
    out = torch.empty_like(px)
    for c in range(3):
        knots_x = _weighted_quantiles(px[:, c], wx, q)
        knots_y = _weighted_quantiles(py[:, c], wy, q)
        # beyond the extreme knots (pixels outside a weighted region): shifted as the nearest knot
        inside = _interp(px[:, c], knots_x, knots_y)
        below, above = px[:, c] < knots_x[0], px[:, c] > knots_x[-1]
        inside[below] = knots_y[0] + (px[below, c] - knots_x[0])
        inside[above] = knots_y[-1] + (px[above, c] - knots_x[-1])
        out[:, c] = inside
    return (out @ axes.T).T.reshape(source.shape).to(source.dtype)


#: Covariance regularization of the mean-and-covariance transfer: a content region of nearly one colour (a clear
#: sky, a yellow petal) would otherwise have its faint variations (and its noise) stretched to the style's spread.
TRANSFER_EPS = 1e-4

#: How :func:`transfer_colors` maps a region's colours: ``histogram`` (:func:`match_histograms`) or ``affine``
#: (mean and covariance, :func:`match_color`).
TRANSFER_MODES = ("histogram", "affine")


def _transfer(source: torch.Tensor, target: torch.Tensor, mode: str, source_weights: torch.Tensor | None,
              target_weights: torch.Tensor | None) -> torch.Tensor:  # fmt: skip
    if mode == "histogram":
        return match_histograms(source, target, source_weights, target_weights)
    if mode == "affine":
        return match_color(source, target, eps=TRANSFER_EPS, clamp=False, source_weights=source_weights,
                           target_weights=target_weights)  # fmt: skip
    raise ValueError(f"colour transfer must be one of {', '.join(TRANSFER_MODES)}, not {mode!r}")


def transfer_colors(
    content: torch.Tensor,
    style: torch.Tensor | Sequence[torch.Tensor],
    regions: torch.Tensor | None = None,
    style_regions: torch.Tensor | None = None,
    blend: Sequence[float] | None = None,
    mode: str = "histogram",
) -> torch.Tensor:
    """The content (1, 3, H, W) recoloured to the style: each region's colour distribution mapped to the style's
    region's (``histogram``: :func:`match_histograms`; ``affine``: mean and covariance, :func:`match_color`),
    the regions' results blended by their masks; without regions, the whole picture at once. In [0, 1].

    ``regions`` (K, 1, H, W) at the content's size, summing to 1 where they cover it, and ``style_regions``
    (K, 1, h, w) at the (one) style image's size: content region k takes the colours of style region k (label
    maps, :func:`impasto.core.regions.match_regions`). Without regions ``style`` may be several images, their
    pixels pooled with weights ``blend``. Inside a region the result is a smooth function of the content's
    colours, which is what the photorealism regularizer asks of a picture.
    """
    styles = [style] if isinstance(style, torch.Tensor) else list(style)
    if regions is None:
        if len(styles) == 1:
            return _transfer(content, styles[0], mode, None, None).clamp(0, 1)
        weights = list(blend) if blend is not None else [1.0] * len(styles)
        pooled = torch.cat([s.reshape(1, 3, 1, -1) for s in styles], dim=-1)
        pool_w = torch.cat([torch.full((1, 1, 1, s.shape[-1] * s.shape[-2]), w / (s.shape[-1] * s.shape[-2]))
                            for s, w in zip(styles, weights, strict=True)], dim=-1)  # fmt: skip
        return _transfer(content, pooled, mode, None, pool_w).clamp(0, 1)
    if len(styles) != 1:
        raise ValueError("region-wise colour transfer takes one style image")
    style_image = styles[0]
    out = torch.zeros_like(content, dtype=torch.float64)
    cover = torch.zeros_like(content[:, :1], dtype=torch.float64)
    for k in range(regions.shape[0]):
        mask = regions[k : k + 1].to(content.device)
        if float(mask.sum()) <= 0:
            continue
        smask = style_regions[k : k + 1].to(style_image.device) if style_regions is not None else None
        if smask is not None and float(smask.sum()) <= 0:
            smask = None  # an empty style region: the whole style image
        out += mask.double() * _transfer(content, style_image, mode, mask, smask).double()
        cover += mask.double()
    out += (1 - cover.clamp(max=1)) * content.double()  # what no region covers keeps the content's colours
    return out.to(content.dtype).clamp(0, 1)
