"""Numba kernels for the matting Laplacian (:mod:`impasto.core.matting`): its 5x5 stencil built window by
window, and the conjugate gradients of Li et al.'s smoothing on that stencil.

Numba because both loops are per pixel with a few dozen flops each: as NumPy or torch array operations they
make ~100 passes over full-size temporaries (the build) or go through a CSR matrix with an index per non-zero
(the product); compiled, the build is one pass over the image and the product one pass over 13 coefficient
images (L is symmetric: the 12 other diagonals are read from the same arrays at the neighbour's position).
Compiled on first use and cached on disk (``cache=True``). Work is split in fixed bands of rows and partial
sums are added in band order, so results do not depend on the number of threads.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

#: Window centre rows per parallel band while building (bands of one parity never write the same row).
_BUILD_BAND = 4
#: Rows per parallel band in the conjugate gradients (each band's partial sums kept apart).
_BAND = 8
#: The 13 offsets (dy, dx) of the upper half of the stencil (dy > 0, or dy == 0 and dx >= 0), (0, 0) first.
UPPER = ((0, 0), (0, 1), (0, 2)) + tuple((dy, dx) for dy in (1, 2) for dx in range(-2, 3))
UPPER_DY = np.array([dy for dy, _ in UPPER], dtype=np.int64)
UPPER_DX = np.array([dx for _, dx in UPPER], dtype=np.int64)
#: Padding of the arrays the conjugate gradients run on (zero outside the image: no bounds tests).
PAD = 2


def offset_table(offsets: tuple[tuple[int, int], ...]) -> np.ndarray:
    """(5, 5) table: index of (dy, dx) in ``offsets`` at [dy + 2, dx + 2], -1 where it is not listed."""
    table = np.full((5, 5), -1, dtype=np.int64)
    for k, (dy, dx) in enumerate(offsets):
        table[dy + 2, dx + 2] = k
    return table


@njit(cache=True, parallel=True)
def accumulate_laplacian(img, eps, out, table, pad):  # pragma: no cover - compiled
    """Add every 3x3 window's contribution to L into ``out[k, y + pad, x + pad]`` = L[(y, x), (y, x) + o_k]
    for the offsets o_k of ``table`` (see :func:`offset_table`); ``img`` (H, W, 3) float64, ``out`` float64
    zeroed. Each pair of window positions is computed once and added at both of its offsets (L exactly
    symmetric). Window statistics and the 3x3 inverse in float64."""
    h, w, _ = img.shape
    bands = (h - 2 + _BUILD_BAND - 1) // _BUILD_BAND
    for parity in range(2):
        for half in prange((bands + 1 - parity) // 2):
            band = 2 * half + parity
            xs = np.empty((9, 3))
            zs = np.empty((9, 3))
            for cy in range(1 + band * _BUILD_BAND, min(h - 1, 1 + (band + 1) * _BUILD_BAND)):
                for cx in range(1, w - 1):
                    m0 = 0.0
                    m1 = 0.0
                    m2 = 0.0
                    for a in range(9):
                        for ch in range(3):
                            xs[a, ch] = img[cy + a // 3 - 1, cx + a % 3 - 1, ch]
                        m0 += xs[a, 0]
                        m1 += xs[a, 1]
                        m2 += xs[a, 2]
                    m0 /= 9.0
                    m1 /= 9.0
                    m2 /= 9.0
                    s00 = s01 = s02 = s11 = s12 = s22 = 0.0
                    for a in range(9):
                        xs[a, 0] -= m0
                        xs[a, 1] -= m1
                        xs[a, 2] -= m2
                        s00 += xs[a, 0] * xs[a, 0]
                        s01 += xs[a, 0] * xs[a, 1]
                        s02 += xs[a, 0] * xs[a, 2]
                        s11 += xs[a, 1] * xs[a, 1]
                        s12 += xs[a, 1] * xs[a, 2]
                        s22 += xs[a, 2] * xs[a, 2]
                    reg = eps / 9.0
                    a00 = s00 / 9.0 + reg
                    a01 = s01 / 9.0
                    a02 = s02 / 9.0
                    a11 = s11 / 9.0 + reg
                    a12 = s12 / 9.0
                    a22 = s22 / 9.0 + reg
                    c00 = a11 * a22 - a12 * a12  # the adjugate of the symmetric covariance
                    c01 = a02 * a12 - a01 * a22
                    c02 = a01 * a12 - a02 * a11
                    c11 = a00 * a22 - a02 * a02
                    c12 = a01 * a02 - a00 * a12
                    c22 = a00 * a11 - a01 * a01
                    det = a00 * c00 + a01 * c01 + a02 * c02
                    for a in range(9):
                        zs[a, 0] = (c00 * xs[a, 0] + c01 * xs[a, 1] + c02 * xs[a, 2]) / det
                        zs[a, 1] = (c01 * xs[a, 0] + c11 * xs[a, 1] + c12 * xs[a, 2]) / det
                        zs[a, 2] = (c02 * xs[a, 0] + c12 * xs[a, 1] + c22 * xs[a, 2]) / det
                    for a in range(9):
                        ay = a // 3 - 1
                        ax = a % 3 - 1
                        for b in range(a, 9):
                            by = b // 3 - 1
                            bx = b % 3 - 1
                            v = -(1.0 + xs[a, 0] * zs[b, 0] + xs[a, 1] * zs[b, 1] + xs[a, 2] * zs[b, 2]) / 9.0
                            if a == b:
                                v += 1.0
                            k = table[by - ay + 2, bx - ax + 2]
                            if k >= 0:
                                out[k, cy + ay + pad, cx + ax + pad] += v
                            if a != b:
                                k = table[ay - by + 2, ax - bx + 2]
                                if k >= 0:
                                    out[k, cy + by + pad, cx + bx + pad] += v


@njit(cache=True, parallel=True)
def scale_system(upper, inv_sqrt, lam, dy, dx, coef, diag):  # pragma: no cover - compiled
    """``coef`` (float32) = the upper stencil of lam I + D^-1/2 L D^-1/2 from L's (``upper``, float64, padded),
    ``inv_sqrt`` = D^-1/2 (padded, zero outside); ``diag`` = its diagonal (ones outside the image)."""
    _, hp, wp = upper.shape
    for y in prange(PAD, hp - PAD):
        for k in range(upper.shape[0]):
            for x in range(PAD, wp - PAD):
                value = upper[k, y, x] * inv_sqrt[y, x] * inv_sqrt[y + dy[k], x + dx[k]]
                if k == 0:
                    value += lam
                    diag[y, x] = value
                coef[k, y, x] = value


@njit(cache=True, parallel=True, fastmath=True)
def apply_upper(coef, dy, dx, p, q, partial):  # pragma: no cover - compiled
    """q = A p for the symmetric stencil A given by its upper half ``coef`` (13, H + 4, W + 4); ``p``, ``q``
    (3, H + 4, W + 4), zero outside the image (q's border is left as it is). ``partial[band, c]`` = the
    band's sum of p * q, channel c (float64)."""
    _, hp, wp = p.shape
    h, w = hp - 2 * PAD, wp - 2 * PAD
    for band in prange((h + _BAND - 1) // _BAND):
        acc = np.empty((3, w), np.float32)
        sums = np.zeros(3)
        for y in range(PAD + band * _BAND, PAD + min(h, (band + 1) * _BAND)):
            for c in range(3):
                centre = coef[0, y, PAD : PAD + w]
                pc = p[c, y, PAD : PAD + w]
                row = acc[c]
                for x in range(w):
                    row[x] = centre[x] * pc[x]
                for k in range(1, coef.shape[0]):
                    oy = dy[k]
                    ox = dx[k]
                    up = coef[k, y, PAD : PAD + w]  # A[i, i + o] = coef[k, i]
                    pu = p[c, y + oy, PAD + ox : PAD + ox + w]
                    lo = coef[k, y - oy, PAD - ox : PAD - ox + w]  # A[i, i - o] = A[i - o, i] = coef[k, i - o]
                    pl = p[c, y - oy, PAD - ox : PAD - ox + w]
                    for x in range(w):
                        row[x] += up[x] * pu[x] + lo[x] * pl[x]
                qc = q[c, y, PAD : PAD + w]
                total = 0.0
                for x in range(w):
                    qc[x] = row[x]
                    total += row[x] * pc[x]
                sums[c] += total
        for c in range(3):
            partial[band, c] = sums[c]


@njit(cache=True, parallel=True, fastmath=True)
def cg_update(x, r, p, q, z, diag, step, partial):  # pragma: no cover - compiled
    """x += step p, r -= step q, z = r / diag (per channel c: step[c]); ``partial[band]`` = the band's r.z
    (3 channels) then r.r (3 channels), float64."""
    _, hp, wp = p.shape
    for band in prange((hp + _BAND - 1) // _BAND):
        for c in range(3):
            s = np.float32(step[c])
            rz = 0.0
            rr = 0.0
            for y in range(band * _BAND, min(hp, (band + 1) * _BAND)):
                for i in range(wp):
                    x[c, y, i] += s * p[c, y, i]
                    rv = r[c, y, i] - s * q[c, y, i]
                    r[c, y, i] = rv
                    zv = rv / diag[y, i]
                    z[c, y, i] = zv
                    rz += rv * zv
                    rr += rv * rv
            partial[band, c] = rz
            partial[band, 3 + c] = rr


@njit(cache=True, parallel=True, fastmath=True)
def cg_direction(p, z, beta):  # pragma: no cover - compiled
    """p = z + beta p, per channel."""
    _, hp, wp = p.shape
    for y in prange(hp):
        for c in range(3):
            b = np.float32(beta[c])
            for i in range(wp):
                p[c, y, i] = z[c, y, i] + b * p[c, y, i]


def pcg(coef: np.ndarray, diag: np.ndarray, b: np.ndarray, x: np.ndarray, tol: float, max_iter: int
        ) -> tuple[np.ndarray, int]:  # fmt: skip
    """Jacobi-preconditioned conjugate gradients for A x = b, the three channels at once (each its own
    scalars), A the symmetric stencil ``coef`` (upper half, float32, padded by :data:`PAD`), ``diag`` its
    diagonal; ``b``, ``x`` (3, H + 4, W + 4) float32, zero outside the image. ``x`` is updated in place; stops
    when every channel's residual is below ``tol`` times its right-hand side's norm. Returns (x, iterations)."""
    rows = b.shape[1] - 2 * PAD
    q = np.zeros_like(b)
    pq = np.zeros(((rows + _BAND - 1) // _BAND, 3))
    rz_rr = np.zeros(((b.shape[1] + _BAND - 1) // _BAND, 6))
    apply_upper(coef, UPPER_DY, UPPER_DX, x, q, pq)
    r = b - q
    z = r / diag[None]
    p = z.copy()
    r64 = r.astype(np.float64)
    rz = (r64 * z).sum((1, 2))
    rr = (r64 * r64).sum((1, 2))
    limit = tol**2 * np.square(b, dtype=np.float64).sum((1, 2))
    for i in range(max_iter):
        if bool((rr <= limit).all()):
            return x, i
        apply_upper(coef, UPPER_DY, UPPER_DX, p, q, pq)
        step = rz / np.maximum(pq.sum(0), 1e-300)
        cg_update(x, r, p, q, z, diag, step, rz_rr)
        sums = rz_rr.sum(0)
        rz_new, rr = sums[:3], sums[3:]
        cg_direction(p, z, rz_new / np.maximum(rz, 1e-300))
        rz = rz_new
    return x, max_iter
