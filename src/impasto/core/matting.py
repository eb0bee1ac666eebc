"""The matting Laplacian of Levin, Lischinski & Weiss (*A Closed-Form Solution to Natural Image Matting*, 2008)
and the photorealistic smoothing of Li et al. (*A Closed-form Solution to Photorealistic Image Stylization*,
ECCV 2018) built on it.

For an image I (colours in [0, 1]) and every 3x3 window w_k lying inside the image, with mean mu_k and
covariance Sigma_k of the window's colours,

    L_ij = sum over k with i, j in w_k of  delta_ij - (1 + (I_i - mu_k)^T (Sigma_k + eps/9 I_3)^-1 (I_j - mu_k)) / 9.

L is symmetric, positive semi-definite, its rows sum to zero, and V^T L V is close to 0 for any V that is
locally an affine function of the image's colours: the cost of the photorealism regularizer of Luan et al.
(2017). A pixel shares a window only with pixels at most 2 rows and 2 columns away, so L has 25 diagonals:
it is built as a :class:`Stencil` of 25 coefficient images (``C[o][y, x]`` = L[(y, x), (y, x) + offset o]),
one pass over the windows compiled with Numba (:mod:`impasto.core.matting_kernels`), from which
:meth:`Stencil.to_csr` gives the ``scipy.sparse`` matrix. The window statistics and their 3x3 inverses are
computed in float64: with eps = 1e-7 a nearly flat window's covariance has a condition number up to ~1e7,
beyond float32. L's entries are bounded (each window adds I - (1 + X A X^T) / 9, whose second part is at most
a projection times 9) and are held in float32 for the optimization: 1e-7 relative error on values of order
1, far below what the optimizer's float32 (and bf16) gradients resolve.

The smoothing of Li et al. solves (I - alpha S) R = (1 - alpha) Y per colour channel, S = D^-1/2 W D^-1/2,
with W the matting affinity (W = D - L, D_ii the number of windows holding pixel i); that is
(lambda I + D^-1/2 L D^-1/2) R = lambda Y with lambda = (1 - alpha) / alpha. :func:`smooth` solves it by
Jacobi-preconditioned conjugate gradients on the system's stencil (its 13 upper diagonals: L is symmetric),
the three channels at once, started from the fast approximation, :func:`guided_filter` (He et al., *Guided
Image Filtering*, 2010: box filters only).
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import numba
import numpy as np
import scipy.sparse as sp
import torch

from . import matting_kernels

_F = TypeVar("_F", bound=Callable[..., Any])


def _keeps_torch_threads(fn: _F) -> _F:
    """Run ``fn`` (which calls Numba's parallel kernels) and give torch back its thread count afterwards: Numba's
    OpenMP threading layer sets the OpenMP runtime it shares with torch to all cores when it starts, which would
    leave every later torch operation of the process on that many threads (``OMP_NUM_THREADS`` and
    ``torch.set_num_threads`` overridden)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        threads = torch.get_num_threads()
        try:
            return fn(*args, **kwargs)
        finally:
            if torch.get_num_threads() != threads:
                torch.set_num_threads(threads)

    return wrapper  # type: ignore[return-value]


#: Regularization of the window covariances (Luan et al. and Levin et al. use 1e-7).
EPS = 1e-7
#: (dy, dx) of the 25 diagonals of L, in the order of a CSR row's columns.
OFFSETS: tuple[tuple[int, int], ...] = tuple((dy, dx) for dy in range(-2, 3) for dx in range(-2, 3))
#: Pixels per band while the CSR matrix is filled (bounds the temporaries).
_CENTRES_PER_BAND = 65536


@dataclass
class Stencil:
    """The matting Laplacian of an (H, W) image as 25 coefficient images.

    ``coefficients[o, y, x]`` is L[(y, x), (y + dy, x + dx)] for ``OFFSETS[o] = (dy, dx)`` (zero where that
    pixel lies outside the image); ``counts[y, x]`` the number of windows holding the pixel (L's diagonal
    part D of the affinity W = D - L).
    """

    coefficients: np.ndarray  # (25, H, W)
    counts: np.ndarray  # (H, W)

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.coefficients.shape[1:])  # type: ignore[return-value]

    @property
    def nbytes(self) -> int:
        return int(self.coefficients.nbytes + self.counts.nbytes)

    def astype(self, dtype: np.dtype | type) -> Stencil:
        return Stencil(self.coefficients.astype(dtype), self.counts.astype(dtype))

    def to_csr(self, dtype: np.dtype | type = np.float64) -> sp.csr_matrix:
        """L as an (H*W, H*W) ``scipy.sparse`` CSR matrix (pixels in row-major order), built without a loop
        over pixels: each row lists its in-image neighbours in increasing column order. Filled in bands of
        rows, so that beyond the result only a band's temporaries are held. Indices are int32 up to 85
        megapixels."""
        h, w = self.shape
        n = h * w
        index = np.int32 if 25 * n < 2**31 else np.int64
        dys = np.array([dy for dy, _ in OFFSETS])
        dxs = np.array([dx for _, dx in OFFSETS])
        steps = (dys * w + dxs).astype(index)
        inside_x = (np.arange(w)[:, None] + dxs[None] >= 0) & (np.arange(w)[:, None] + dxs[None] < w)  # (w, 25)
        per_row = np.zeros(n, dtype=index)
        band = max(1, _CENTRES_PER_BAND // w)
        keeps = []
        for y0 in range(0, h, band):
            ys = np.arange(y0, min(h, y0 + band))
            inside_y = (ys[:, None] + dys[None] >= 0) & (ys[:, None] + dys[None] < h)  # (b, 25)
            keep = (inside_y[:, None, :] & inside_x[None, :, :]).reshape(-1, 25)  # (b*w, 25)
            per_row[y0 * w : y0 * w + keep.shape[0]] = keep.sum(1)
            keeps.append(keep)
        indptr = np.zeros(n + 1, dtype=index)
        np.cumsum(per_row, out=indptr[1:])
        data = np.empty(int(indptr[-1]), dtype=dtype)
        indices = np.empty(int(indptr[-1]), dtype=index)
        coef = self.coefficients.reshape(25, n)
        for i, y0 in enumerate(range(0, h, band)):
            p0, p1 = y0 * w, y0 * w + keeps[i].shape[0]
            lo, hi = indptr[p0], indptr[p1]
            data[lo:hi] = coef[:, p0:p1].T[keeps[i]]
            indices[lo:hi] = (np.arange(p0, p1, dtype=index)[:, None] + steps[None])[keeps[i]]
        matrix = sp.csr_matrix((n, n), dtype=dtype)
        matrix.data, matrix.indices, matrix.indptr = data, indices, indptr  # as built: sorted, no duplicates
        return matrix


@_keeps_torch_threads
def matting_stencil(image: np.ndarray | torch.Tensor, eps: float = EPS) -> Stencil:
    """The matting Laplacian (3x3 windows) of an image as a float64 :class:`Stencil`.

    ``image``: (H, W, 3) array or (1, 3, H, W) / (3, H, W) tensor, colours in [0, 1]; at least 3x3 pixels.
    Vectorized over the window centres (a Python loop runs over the 45 window position pairs and over bands
    of ~65k centres, never over pixels).
    """
    img = np.ascontiguousarray(_as_hwc(image))
    h, w, _ = img.shape
    if h < 3 or w < 3:
        raise ValueError(f"the matting Laplacian needs at least 3x3 pixels, got {w}x{h}")
    coef = np.zeros((25, h, w), dtype=np.float64)
    matting_kernels.accumulate_laplacian(img, float(eps), coef, matting_kernels.offset_table(OFFSETS), 0)
    return Stencil(coef, window_counts(h, w))


def window_counts(h: int, w: int) -> np.ndarray:
    """(H, W) float64: the number of 3x3 windows inside the image that hold each pixel (D of W = D - L)."""

    def per_axis(n: int) -> np.ndarray:
        i = np.arange(n)
        return (np.minimum(i + 1, n - 2) - np.maximum(i - 1, 1) + 1).astype(np.float64)

    return per_axis(h)[:, None] * per_axis(w)[None, :]


def matting_laplacian(image: np.ndarray | torch.Tensor, eps: float = EPS, dtype: np.dtype | type = np.float64
                      ) -> sp.csr_matrix:  # fmt: skip
    """The matting Laplacian of an image as an (H*W, H*W) ``scipy.sparse`` CSR matrix (see
    :func:`matting_stencil`); pixels in row-major order."""
    return matting_stencil(image, eps).to_csr(dtype)


def laplacian_csr_bytes_per_pixel() -> float:
    """Bytes per pixel that the regularizer adds to a run's peak: L as a float32 CSR tensor (25 values and int32
    column indices per row, an int32 row pointer) and, while it is built, the float64 stencil it comes from;
    the process keeps that high-water mark (see :mod:`impasto.core.malloc`)."""
    return 25 * (4 + 4) + 4 + 26 * 8


def laplacian_tensor(image: torch.Tensor, eps: float = EPS) -> torch.Tensor:
    """The matting Laplacian of a (1, 3, H, W) image as a float32 sparse CSR tensor on the image's device."""
    return _csr_tensor(matting_stencil(image, eps).to_csr(np.float32), torch.float32, image.device)


class _PhotorealismLoss(torch.autograd.Function):
    """sum_c V_c^T L V_c / N and its gradient 2 L V / N, from one sparse product in the forward pass.

    L is float32 (its entries are bounded, see the module docstring); the product accumulates 25 terms per
    row in float32, and the value sums the N x 3 products in float64, where float32 would lose the small
    values of a nearly photorealistic image among large partial sums.
    """

    @staticmethod
    def forward(ctx, image: torch.Tensor, laplacian: torch.Tensor) -> torch.Tensor:
        n, c, h, w = image.shape
        v = image.detach().float().reshape(c, h * w).t()  # (N, 3), batch of one
        lv = laplacian @ v.contiguous()
        ctx.save_for_backward(lv)
        ctx.shape = image.shape
        return ((v * lv).sum(dtype=torch.float64) / (h * w)).float()

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (lv,) = ctx.saved_tensors
        n, c, h, w = ctx.shape
        return (lv.t().reshape(n, c, h, w) * (2.0 / (h * w)) * grad).contiguous(), None


def photorealism_loss(image: torch.Tensor, laplacian: torch.Tensor) -> torch.Tensor:
    """Luan et al.'s regularizer per pixel, sum_c V_c^T L V_c / N, for a (1, 3, H, W) image (differentiable)."""
    if image.shape[0] != 1:
        raise ValueError("the photorealism regularizer takes one image")
    return _PhotorealismLoss.apply(image, laplacian)


def _as_hwc(image: np.ndarray | torch.Tensor) -> np.ndarray:
    if isinstance(image, torch.Tensor):
        t = image.detach().cpu().double()
        if t.ndim == 4:
            if t.shape[0] != 1:
                raise ValueError("one image at a time")
            t = t[0]
        return t.permute(1, 2, 0).numpy()
    arr = np.asarray(image, dtype=np.float64)
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) image, got shape {arr.shape}")
    return arr


# -- Li et al.'s photorealistic smoothing -------------------------------------------------------------------
#: Li et al.'s alpha (0.9999): the weight of the smoothness term against fidelity to the stylized image.
ALPHA = 0.9999


def _csr_tensor(matrix: sp.csr_matrix, dtype: torch.dtype, device: torch.device | str = "cpu") -> torch.Tensor:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "sparse CSR support is in beta"
        return torch.sparse_csr_tensor(torch.from_numpy(matrix.indptr).to(device),
                                       torch.from_numpy(matrix.indices).to(device),
                                       torch.from_numpy(matrix.data).to(device, dtype), size=matrix.shape,
                                       check_invariants=False)  # fmt: skip


def _box_sum(x: torch.Tensor, radius: int, dim: int) -> torch.Tensor:
    """Sums over windows of 2r+1 along ``dim``, clipped at the ends, from one cumulative sum."""
    n = x.shape[dim]
    r = min(radius, n - 1)
    c = x.cumsum(dim)
    last = c.narrow(dim, n - 1, 1)
    upper = torch.cat([c.narrow(dim, r, n - r)] + [last] * r, dim)  # c[min(i + r, n - 1)]
    lower = torch.cat([torch.zeros_like(last)] * (r + 1) + [c.narrow(dim, 0, n - r - 1)], dim)  # c[i - r - 1]
    return upper - lower


def _window_counts(n: int, radius: int, like: torch.Tensor) -> torch.Tensor:
    i = torch.arange(n, device=like.device)
    return ((i + radius).clamp(max=n - 1) - (i - radius).clamp(min=0) + 1).to(like.dtype)


def box_mean(x: torch.Tensor, radius: int) -> torch.Tensor:
    """Mean of (..., H, W) over (2r+1)^2 windows clipped at the borders, by cumulative sums (O(1) per pixel
    whatever the radius)."""
    h, w = x.shape[-2:]
    total = _box_sum(_box_sum(x, radius, -1), radius, -2)
    return total / (_window_counts(h, radius, x)[:, None] * _window_counts(w, radius, x)[None, :])


def _inv3_sym_torch(m: torch.Tensor) -> torch.Tensor:
    """Inverses of symmetric positive definite 3x3 matrices by their adjugates; the matrix in the first two
    dimensions (3, 3, ...)."""
    a, b, c, d, e, f = m[0, 0], m[0, 1], m[0, 2], m[1, 1], m[1, 2], m[2, 2]
    c00, c01, c02 = d * f - e * e, c * e - b * f, b * e - c * d
    c11, c12, c22 = a * f - c * c, b * c - a * e, a * d - b * b
    det = a * c00 + b * c01 + c * c02
    return torch.stack([torch.stack([c00, c01, c02]), torch.stack([c01, c11, c12]),
                        torch.stack([c02, c12, c22])]) / det  # fmt: skip


def guided_coefficients(guide: torch.Tensor, src: torch.Tensor, radius: int, eps: float
                        ) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """The colour guided filter's window-averaged coefficients (He et al. 2010): (a (C, 3, H, W), b (C, H, W))
    such that the filtered image is sum_j a[:, j] * guide[j] + b. ``guide`` (3, H, W), ``src`` (C, H, W).

    float32, each image's mean subtracted first: with colours in [0, 1] the window variances lose at most
    ~1e-6 to rounding, 1% of the smallest eps used here (1e-4)."""
    g0, p0 = guide.float().mean((1, 2), keepdim=True), src.float().mean((1, 2), keepdim=True)
    g, p = guide.float() - g0, src.float() - p0
    mu = box_mean(g, radius)  # (3, H, W)
    mp = box_mean(p, radius)  # (C, H, W)
    cov = box_mean(g[:, None] * g[None], radius) - mu[:, None] * mu[None]  # (3, 3, H, W)
    cov = cov + eps * torch.eye(3, dtype=cov.dtype, device=cov.device)[:, :, None, None]
    cross = box_mean(p[:, None] * g[None], radius) - mp[:, None] * mu[None]  # (C, 3, H, W)
    inv = _inv3_sym_torch(cov)
    a = torch.einsum("cjhw,jkhw->ckhw", cross, inv)
    b = mp - (a * mu[None]).sum(1)
    a, b = box_mean(a, radius), box_mean(b, radius)
    return a, b + p0 - (a * g0[None]).sum(1)


def guided_filter(guide: torch.Tensor, src: torch.Tensor, radius: int, eps: float) -> torch.Tensor:
    """He et al.'s guided filter of ``src`` (C, H, W) with the colour image ``guide`` (3, H, W): locally
    ``a^T guide + b``, fitted in (2r+1)^2 windows with regularization ``eps``."""
    a, b = guided_coefficients(guide, src, radius, eps)
    return (a * guide.float()[None]).sum(1) + b


#: The guided filter's regularization, and its radius per pixel of the longest side (GUIDED_RADIUS x side):
#: measured against the exact solution at 803x538 (r = 20, eps = 1e-4: RMS 3.4/255, the closest of r 2..35).
GUIDED_EPS = 1e-4
GUIDED_RADIUS = 1 / 40
#: Relative residual at which the exact smoothing stops (at 803x538 from the guided start: RMS 0.03/255 and
#: at most 0.7/255 from a solution to 1e-10).
SMOOTH_TOL = 1e-2


def guided_radius(hw: tuple[int, int]) -> int:
    """The guided filter's radius for a picture of (H, W)."""
    return max(1, round(GUIDED_RADIUS * max(hw)))


def smooth(content: torch.Tensor, stylized: torch.Tensor, mode: str = "exact", alpha: float = ALPHA,
           tol: float = SMOOTH_TOL, max_iter: int = 2000) -> tuple[torch.Tensor, int]:  # fmt: skip
    """Li et al.'s photorealistic smoothing of ``stylized`` (3, H, W) guided by ``content`` (3, H, W); returns
    the result (3, H, W) float32 in [0, 1] and the conjugate-gradient iterations it took.

    ``exact`` solves (I - alpha S) R = (1 - alpha) Y, i.e. (lambda I + D^-1/2 L D^-1/2) R = lambda Y with
    lambda = (1 - alpha) / alpha, by Jacobi-preconditioned conjugate gradients (float32 products), started
    from the guided filter's result, to a relative residual of ``tol``; ``guided`` is the guided filter alone.
    """
    if mode not in ("exact", "guided"):
        raise ValueError(f"smoothing must be exact or guided, not {mode!r}")
    hw = tuple(content.shape[-2:])
    start = guided_filter(content, stylized, guided_radius(hw), GUIDED_EPS).float()
    if mode == "guided":
        return start.clamp_(0, 1), 0
    lam = (1.0 - alpha) / alpha
    x, iterations = _solve_smoothing(content, stylized, start, lam, tol, max_iter)
    return x.clamp_(0, 1).to(content.device), iterations


@_keeps_torch_threads
def _solve_smoothing(content: torch.Tensor, stylized: torch.Tensor, start: torch.Tensor, lam: float, tol: float,
                     max_iter: int) -> tuple[torch.Tensor, int]:  # fmt: skip
    """(lambda I + D^-1/2 L D^-1/2) R = lambda Y by :func:`impasto.core.matting_kernels.pcg` on the system's
    13-diagonal upper stencil (built in float64, held in float32), from ``start``; returns (R (3, H, W), iterations)."""
    k = matting_kernels
    numba.set_num_threads(max(1, min(torch.get_num_threads(), numba.config.NUMBA_NUM_THREADS)))
    h, w = content.shape[-2:]
    pad = k.PAD
    img = np.ascontiguousarray(_as_hwc(content))
    upper = np.zeros((len(k.UPPER), h + 2 * pad, w + 2 * pad))
    k.accumulate_laplacian(img, EPS, upper, k.offset_table(k.UPPER), pad)
    inv_sqrt = np.zeros((h + 2 * pad, w + 2 * pad))
    inv_sqrt[pad:-pad, pad:-pad] = 1.0 / np.sqrt(window_counts(h, w))
    coef = np.zeros(upper.shape, dtype=np.float32)
    diag = np.ones(inv_sqrt.shape, dtype=np.float32)
    k.scale_system(upper, inv_sqrt, lam, k.UPPER_DY, k.UPPER_DX, coef, diag)
    del upper, inv_sqrt

    def padded(t: torch.Tensor) -> np.ndarray:
        out = np.zeros((3, h + 2 * pad, w + 2 * pad), dtype=np.float32)
        out[:, pad:-pad, pad:-pad] = t.detach().float().cpu().numpy()
        return out

    x, iterations = k.pcg(coef, diag, padded(stylized) * np.float32(lam), padded(start), tol, max_iter)
    return torch.from_numpy(np.ascontiguousarray(x[:, pad:-pad, pad:-pad])), iterations
