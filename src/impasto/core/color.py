"""Colour preservation of Gatys et al., *Controlling Perceptual Factors in Neural Style Transfer* (2017).

Two ways to keep the content's colours, both pure functions of (N, 3, H, W) RGB tensors in [0, 1]:

* ``luminance``: transfer the style on the luminance only (YIQ's Y), the style's luminance first matched
  to the content's mean and deviation; the result takes the content's I and Q channels back.
* ``histogram``: recolour the style image before the transfer with the linear map that gives its pixels
  the content's colour mean and covariance (:func:`match_color`).
"""

from __future__ import annotations

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


def color_stats(image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean (3,) and covariance (3, 3) of an image's RGB pixels, in float64."""
    x = image.double().reshape(image.shape[0], 3, -1).transpose(1, 2).reshape(-1, 3)
    return x.mean(0), torch.cov(x.T, correction=0)


def _sqrt_and_inv_sqrt(cov: torch.Tensor, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    values, vectors = torch.linalg.eigh(cov + eps * torch.eye(3, dtype=cov.dtype))
    values = values.clamp_min(eps)
    return (vectors * values.sqrt()) @ vectors.T, (vectors * values.rsqrt()) @ vectors.T


def match_color(
    source: torch.Tensor, target: torch.Tensor, mode: str = "pca", eps: float = 1e-8, clamp: bool = True
) -> torch.Tensor:
    """Recolour ``source`` so its RGB mean and covariance equal ``target``'s: x' = A (x - mu_s) + mu_t.

    ``mode`` picks A with A cov_s A^T = cov_t: ``pca``, the symmetric A = cov_t^(1/2) cov_s^(-1/2) of
    image analogies (Hertzmann et al. 2001), which Gatys et al. 2017 use; or ``cholesky``, A = L_t L_s^-1.
    ``eps`` regularizes the covariances. With ``clamp`` the result is clipped to [0, 1], which can move its
    statistics slightly where colours leave the RGB cube.
    """
    mu_s, cov_s = color_stats(source)
    mu_t, cov_t = color_stats(target)
    eye = torch.eye(3, dtype=torch.float64)
    if mode == "pca":
        _, inv_sqrt_s = _sqrt_and_inv_sqrt(cov_s, eps)
        sqrt_t, _ = _sqrt_and_inv_sqrt(cov_t, eps)
        a = sqrt_t @ inv_sqrt_s
    elif mode == "cholesky":
        a = torch.linalg.cholesky(cov_t + eps * eye) @ torch.linalg.inv(torch.linalg.cholesky(cov_s + eps * eye))
    else:
        raise ValueError(f"colour matching mode must be 'pca' or 'cholesky', not '{mode}'")
    x = source.double() - mu_s.view(1, 3, 1, 1)
    out = (torch.einsum("ij,njhw->nihw", a, x) + mu_t.view(1, 3, 1, 1)).to(source.dtype)
    return out.clamp(0, 1) if clamp else out
