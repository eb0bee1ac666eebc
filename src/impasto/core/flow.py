"""Optical flow between video frames, the forward-backward consistency check of Ruder, Dosovitskiy and Brox
(*Artistic style transfer for videos*, 2016), and warping: what temporal consistency is built on.

Flows are (H, W, 2) float32 arrays of pixel displacements (x, y), computed by OpenCV's DIS optical flow
(Kroeger et al. 2016: dense inverse search, fast on a CPU) on grayscale frames. ``flow(a, b)`` maps each pixel
``p`` of frame ``a`` to where it is in frame ``b``: ``a(p) ~ b(p + flow(p))``. To bring the previous frame's
result to the current frame, :func:`warp` samples it at ``p + backward(p)``, with ``backward = flow(current,
previous)``.

The consistency check marks the pixels of the current frame where that warp cannot be trusted (weight 0;
1 elsewhere): disocclusions, where following the backward flow and then the forward flow does not come back
(|w~ + w^|^2 > 0.01 (|w~|^2 + |w^|^2) + 0.5, with w^ the backward flow and w~ the forward flow at p + w^(p));
motion boundaries, where the backward flow changes fast (|grad u^|^2 + |grad v^|^2 > 0.01 |w^|^2 + 0.002);
and pixels whose source lies outside the previous frame.

Arrays and tensors in and out, no files. OpenCV (``opencv-python-headless``, the ``video`` extra) is imported
when a flow is first computed.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import torch

#: DIS presets by name (OpenCV's ``DISOPTICAL_FLOW_PRESET_*``).
PRESETS = ("ultrafast", "fast", "medium")
#: Ruder et al.'s thresholds: disocclusion (relative, absolute in px^2), motion boundary (relative, absolute).
DISOCCLUSION = (0.01, 0.5)
MOTION_BOUNDARY = (0.01, 0.002)


def _cv2():  # noqa: ANN202 - the cv2 module
    try:
        import cv2
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("optical flow needs OpenCV: pip install 'impasto[video]' (opencv-python-headless)") from exc
    return cv2


def as_gray(image: np.ndarray | torch.Tensor) -> np.ndarray:
    """A frame as a contiguous (H, W) uint8 luma array (Rec. 601 weights), from (H, W, 3) uint8 / float [0, 1]
    arrays or (1, 3, H, W) / (3, H, W) float tensors in [0, 1]."""
    if isinstance(image, torch.Tensor):
        t = image.detach().float().cpu()
        t = t[0] if t.ndim == 4 else t
        image = t.permute(1, 2, 0).numpy()
    a = np.asarray(image)
    if a.ndim == 2:
        gray = a.astype(np.float32) / (255.0 if a.dtype == np.uint8 else 1.0)
    else:
        a = a.astype(np.float32) / (255.0 if a.dtype == np.uint8 else 1.0)
        gray = a[..., 0] * 0.299 + a[..., 1] * 0.587 + a[..., 2] * 0.114
    return np.ascontiguousarray(np.clip(gray * 255.0 + 0.5, 0, 255).astype(np.uint8))


class FlowEstimator:
    """DIS optical flow with one OpenCV instance (reused frame after frame).

    DIS matches 8x8 patches over a pyramid; in frames smaller than ``min_side`` pixels (longest side) an object
    a few patches wide is lost at the coarse levels and takes the background's motion, so such frames are
    enlarged to ``min_side`` for the flow (the flow is brought back to the frame's size and scale).
    """

    def __init__(self, preset: str = "medium", min_side: int = 256) -> None:
        if preset not in PRESETS:
            raise ValueError(f"flow preset must be one of {', '.join(PRESETS)}, got {preset!r}")
        cv2 = _cv2()
        code = {"ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST, "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
                "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM}[preset]  # fmt: skip
        self.dis = cv2.DISOpticalFlow_create(code)
        self.min_side = min_side

    def __call__(self, first: np.ndarray | torch.Tensor, second: np.ndarray | torch.Tensor) -> np.ndarray:
        """The flow from ``first`` to ``second`` (any frame :func:`as_gray` takes, same size): (H, W, 2) float32
        with ``first(p) ~ second(p + flow(p))``."""
        a, b = as_gray(first), as_gray(second)
        if a.shape != b.shape:
            raise ValueError(f"frames differ in size: {a.shape} and {b.shape}")
        h, w = a.shape
        k = self.min_side / max(h, w)
        if k <= 1:
            return self.dis.calc(a, b, None)
        cv2 = _cv2()
        size = (round(w * k), round(h * k))
        big = self.dis.calc(cv2.resize(a, size, interpolation=cv2.INTER_CUBIC),
                            cv2.resize(b, size, interpolation=cv2.INTER_CUBIC), None)  # fmt: skip
        flow = cv2.resize(big, (w, h), interpolation=cv2.INTER_AREA)
        flow[..., 0] *= w / size[0]
        flow[..., 1] *= h / size[1]
        return flow

    def pair(self, previous: np.ndarray | torch.Tensor, current: np.ndarray | torch.Tensor) -> FlowPair:
        """Backward (current -> previous) and forward (previous -> current) flow between two frames."""
        a, b = as_gray(previous), as_gray(current)
        return FlowPair(self(b, a), self(a, b))


@dataclass
class FlowPair:
    """The flows between a previous and a current frame, and what follows from them."""

    backward: np.ndarray  # (H, W, 2): current -> previous, defined on the current frame's pixels
    forward: np.ndarray  # (H, W, 2): previous -> current, defined on the previous frame's pixels

    def reliability(self) -> np.ndarray:
        """:func:`reliability` of the backward flow: (H, W) float32, 1 where warping the previous frame to the
        current one can be trusted."""
        return reliability(self.backward, self.forward)


def _grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    return xs, ys


#: OpenCV interpolations :func:`warp` takes, by name.
INTERPOLATIONS = ("linear", "cubic", "lanczos")


def warp(
    image: np.ndarray | torch.Tensor, flow: np.ndarray, interpolation: str = "linear"
) -> np.ndarray | torch.Tensor:
    """``image`` sampled at ``p + flow(p)`` (edges replicated): the previous frame (or its result) brought to the
    current frame by the backward flow. ``interpolation``: ``linear``, ``cubic`` or ``lanczos`` (8x8 Lanczos, the
    sharpest: it blurs least what is warped again and again). Takes (H, W[, C]) arrays (float32 kept, other types
    computed in float32) or (1, C, H, W) / (C, H, W) tensors, returns the same kind."""
    if interpolation not in INTERPOLATIONS:
        raise ValueError(f"interpolation must be one of {', '.join(INTERPOLATIONS)}, got {interpolation!r}")
    if isinstance(image, torch.Tensor):
        t = image.detach().float().cpu()
        arr = (t[0] if t.ndim == 4 else t).permute(1, 2, 0).numpy()
        out = torch.from_numpy(warp(arr, flow, interpolation)).permute(2, 0, 1).contiguous()
        return out[None] if t.ndim == 4 else out
    cv2 = _cv2()
    a = np.asarray(image)
    h, w = a.shape[:2]
    if flow.shape[:2] != (h, w):
        raise ValueError(f"flow is {flow.shape[:2]}, the image {(h, w)}")
    xs, ys = _grid(h, w)
    src = a if a.dtype == np.float32 else a.astype(np.float32)
    mode = {"linear": cv2.INTER_LINEAR, "cubic": cv2.INTER_CUBIC, "lanczos": cv2.INTER_LANCZOS4}[interpolation]
    out = cv2.remap(src, xs + flow[..., 0], ys + flow[..., 1], mode, borderMode=cv2.BORDER_REPLICATE)
    if a.ndim == 3 and out.ndim == 2:
        out = out[..., None]
    return out


def reliability(backward: np.ndarray, forward: np.ndarray) -> np.ndarray:
    """Ruder et al.'s temporal weights for the backward flow: (H, W) float32, 0 at disocclusions, motion
    boundaries and pixels whose source is outside the previous frame, 1 elsewhere (see the module's text)."""
    h, w = backward.shape[:2]
    xs, ys = _grid(h, w)
    bx, by = backward[..., 0], backward[..., 1]
    fw = warp(forward, backward)  # the forward flow at p + w^(p)
    fx, fy = fw[..., 0], fw[..., 1]
    b2, f2 = bx * bx + by * by, fx * fx + fy * fy
    rel, absolute = DISOCCLUSION
    disoccluded = (fx + bx) ** 2 + (fy + by) ** 2 > rel * (f2 + b2) + absolute
    gy_u, gx_u = np.gradient(bx)
    gy_v, gx_v = np.gradient(by)
    rel, absolute = MOTION_BOUNDARY
    boundary = gx_u**2 + gy_u**2 + gx_v**2 + gy_v**2 > rel * b2 + absolute
    sx, sy = xs + bx, ys + by
    outside = (sx < 0) | (sx > w - 1) | (sy < 0) | (sy > h - 1)
    return (~(disoccluded | boundary | outside)).astype(np.float32)


def feather(weights: np.ndarray, radius: float = 2.0) -> np.ndarray:
    """Weights softened towards their zeros (never raised): ``weights * blur(weights)``, so that blending with
    them leaves no hard seam along an occlusion's edge while occluded pixels keep weight 0."""
    if radius <= 0:
        return weights
    return weights * _gaussian(weights.astype(np.float32), radius)


def _gaussian(x: np.ndarray, sigma: float) -> np.ndarray:
    cv2 = _cv2()
    k = int(2 * round(3 * sigma) + 1)
    return cv2.GaussianBlur(x, (k, k), sigma, borderType=cv2.BORDER_REFLECT)


def _bands(image: np.ndarray, levels: int) -> list[np.ndarray]:
    """Laplacian pyramid of an (H, W, C) float32 image: ``levels`` detail bands, finest first, then the rest."""
    cv2 = _cv2()
    out, cur = [], image
    for _ in range(levels):
        down = cv2.pyrDown(cur).reshape(-1, -(-cur.shape[1] // 2), *cur.shape[2:])
        out.append(cur - cv2.pyrUp(down, dstsize=(cur.shape[1], cur.shape[0])).reshape(cur.shape))
        cur = down
    return out + [cur]


def _collapse(bands: list[np.ndarray]) -> np.ndarray:
    """The image a Laplacian pyramid of :func:`_bands` came from."""
    cv2 = _cv2()
    cur = bands[-1]
    for band in reversed(bands[:-1]):
        cur = cv2.pyrUp(cur, dstsize=(band.shape[1], band.shape[0])).reshape(band.shape) + band
    return cur


@functools.lru_cache(maxsize=16)
def _angular_windows(h: int, w: int, n: int) -> np.ndarray:
    """(n, H, W // 2 + 1) float32: cos^2(theta - k pi / n) over a real spectrum's frequencies, normalized to sum
    to 1 at each (the steerable split of :func:`_orientations`)."""
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.rfftfreq(w)[None, :]
    theta = np.arctan2(fy, fx)
    windows = np.stack([np.cos(theta - k * np.pi / n) ** 2 for k in range(n)])
    return (windows / windows.sum(0)).astype(np.float32)


def _orientations(band: np.ndarray, n: int) -> list[np.ndarray]:
    """``band`` (H, W, C) split into ``n`` oriented parts that sum to it: angular windows cos^2(theta - k pi / n)
    (normalized) on its spectrum, so detail running along each direction is one part."""
    if n <= 1:
        return [band]
    from scipy import fft  # float32 transforms on every core (numpy's are float64, one thread)

    h, w = band.shape[:2]
    windows = _angular_windows(h, w, n)
    spectrum = fft.rfft2(band.astype(np.float32, copy=False), axes=(0, 1), workers=-1)
    parts = [fft.irfft2(spectrum * win[..., None], s=(h, w), axes=(0, 1), workers=-1) for win in windows[:-1]]
    return parts + [band - sum(parts)]


def restore_detail(image: np.ndarray, reference: np.ndarray, levels: int = 3, window: float = 4.0,
                   max_gain: float = 3.0, orientations: int = 1) -> np.ndarray:  # fmt: skip
    """``image`` (H, W, C) float32 given back the detail of ``reference`` that it lost, band by band: in each of
    ``levels`` bands of a Laplacian pyramid each pixel's detail is scaled so that its local energy (summed over
    the channels, in a Gaussian window of ``window`` pixels of that band) is the reference's again (gain 1 to
    ``max_gain``: detail is never taken away); the coarsest remainder (colours, light) is kept as it is. With
    ``orientations`` > 1 each band is first split into that many oriented parts, each given its own gain: detail
    blurred along one direction only (a warp's interpolation along a pan) is restored without strengthening the
    detail across it."""
    ours, theirs = _bands(image, levels), _bands(reference, levels)
    out = []
    for a, b in zip(ours[:-1], theirs[:-1], strict=True):
        band = np.zeros_like(a)
        for pa, pb in zip(_orientations(a, orientations), _orientations(b, orientations), strict=True):
            ea, eb = (sum(p[..., c] ** 2 for c in range(p.shape[-1]))[..., None] for p in (pa, pb))  # hue kept
            gain = np.sqrt((_gaussian(eb, window) + 1e-6) / (_gaussian(ea, window) + 1e-6))
            band += pa * gain.reshape(ea.shape).clip(1.0, max_gain)
        out.append(band)
    return _collapse(out + [ours[-1]])


def blend(
    stylized: np.ndarray,
    warped: np.ndarray,
    weights: np.ndarray,
    strength: float,
    feather_radius: float = 2.0,
    levels: int = 3,
    window: float = 4.0,
    max_gain: float = 3.0,
    orientations: int = 1,
) -> np.ndarray:
    """The temporal blend of the feed-forward methods: the new frame's stylization ``stylized`` (H, W, 3) float
    in [0, 1] moved towards the previous result ``warped`` to it, by ``strength`` x the feathered reliability
    ``weights``; then, with ``levels`` > 0, the detail that blending took away is restored band by band to the
    stylization's (:func:`restore_detail`).

    Averaging two stylizations whose brush strokes do not line up washes the strokes out, at every scale of the
    strokes, and each warp's interpolation blurs what is carried along; restoring each band's local energy keeps
    the strokes' strength (a variance-preserving blend, as Heitz and Neyret 2018 do for textures, band by band)
    while the colours and the strokes that line up stay consistent. Where the two agree every gain is 1 and
    nothing changes.
    """
    alpha = (strength * feather(weights, feather_radius))[..., None].astype(np.float32)
    out = stylized + alpha * (warped - stylized)
    if levels:
        out = restore_detail(out.astype(np.float32), stylized.astype(np.float32), levels, window, max_gain,
                             orientations)  # fmt: skip
    return np.clip(out, 0.0, 1.0)


def warping_error(
    current: np.ndarray | torch.Tensor, previous: np.ndarray | torch.Tensor, backward: np.ndarray, weights: np.ndarray
) -> float:
    """Temporal warping error: mean |current - warp(previous)| over the pixels (and channels) that ``weights``
    trusts, weighted by it; values in the images' unit (uint8 frames: 0-255). NaN when no pixel is trusted."""

    def hwc(x: np.ndarray | torch.Tensor) -> np.ndarray:
        if isinstance(x, torch.Tensor):
            t = x.detach().float().cpu()
            return (t[0] if t.ndim == 4 else t).permute(1, 2, 0).numpy()
        return np.asarray(x, dtype=np.float32)

    cur, prev = hwc(current), hwc(previous)
    diff = np.abs(cur - warp(prev, backward))
    wt = weights[..., None] if diff.ndim == 3 else weights
    mass = float(wt.sum()) * (diff.shape[-1] if diff.ndim == 3 else 1)
    return float((diff * wt).sum() / mass) if mass > 0 else float("nan")
