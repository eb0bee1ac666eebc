"""Label maps (semantic segmentations) for photorealistic style transfer (Luan et al. 2017).

A label map gives every pixel of an image a label; regions of the content and of the style image are matched
by label (:func:`impasto.core.regions.match_regions`). Two kinds are read:

* colour-coded PNGs in the paper's convention (Luan et al.'s ``examples/segmentation``): each region painted
  in one colour of :data:`PAPER_PALETTE`. Their edges are anti-aliased, so every pixel snaps to the nearest
  palette colour among those that cover at least :data:`MIN_LABEL_SHARE` of the map; a colour that covers that
  much and is far from every palette colour is an error (it is not the paper's convention).
* integer label PNGs (grayscale ``L``, 16-bit ``I;16`` or 32-bit ``I``): each value is one label.

The two images' maps must be of the same kind (labels are matched by colour name or by value).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import InputError
from .images import open_image, to_rgb

#: The colours of the paper's label maps (Luan et al.'s segmentation examples), by name.
PAPER_PALETTE: dict[str, tuple[int, int, int]] = {
    "blue": (0, 0, 255),
    "green": (0, 255, 0),
    "black": (0, 0, 0),
    "white": (255, 255, 255),
    "red": (255, 0, 0),
    "yellow": (255, 255, 0),
    "grey": (128, 128, 128),
    "lightblue": (0, 255, 255),
    "purple": (255, 0, 255),
}
#: Share of a colour-coded map a palette colour must cover to be a label (smaller ones are edge blends).
MIN_LABEL_SHARE = 0.002
#: Largest RGB distance from a palette colour at which a colour covering a real share is still that colour.
MAX_COLOUR_DISTANCE = 60.0


@dataclass
class LabelMap:
    """A label map: ``labels`` (H, W) int64 indices into ``names`` (a colour name or ``label N``)."""

    labels: np.ndarray
    names: list[str]
    kind: str  # "colour" or "integer"
    path: str

    @property
    def size(self) -> tuple[int, int]:
        """(width, height)."""
        return int(self.labels.shape[1]), int(self.labels.shape[0])

    def one_hot(self, hw: tuple[int, int] | None = None) -> torch.Tensor:
        """(K, 1, H, W) float masks, one per label in ``names`` order, resized (antialiased, soft at edges)
        to ``hw`` if given."""
        k = len(self.names)
        onehot = torch.from_numpy(self.labels).reshape(1, 1, *self.labels.shape) == torch.arange(k).view(k, 1, 1, 1)
        masks = onehot.float()
        if hw is not None and tuple(hw) != tuple(masks.shape[-2:]):
            masks = F.interpolate(masks, size=tuple(hw), mode="area" if hw[0] <= masks.shape[-2] else "bilinear")
        return masks


def _segment_distance(points: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Distance of each point (P, 3) to the segment from colour a to colour b."""
    ab = b - a
    t = np.clip(((points - a) @ ab) / max(float(ab @ ab), 1e-12), 0.0, 1.0)
    return np.sqrt(((points - (a + t[:, None] * ab)) ** 2).sum(-1))


def _colour_labels(rgb: np.ndarray, path: str) -> tuple[np.ndarray, list[str]]:
    """Labels of a colour-coded map. The labels are the palette colours that at least :data:`MIN_LABEL_SHARE`
    of the pixels are close to; every other colour must be an edge blend of two of them (close to the segment
    between them) and snaps to the nearest label; a colour that is neither and covers that share is an error."""
    codes = (rgb[..., 0].astype(np.int64) << 16) | (rgb[..., 1].astype(np.int64) << 8) | rgb[..., 2]
    values, inverse, counts = np.unique(codes.reshape(-1), return_inverse=True, return_counts=True)
    colours = np.stack([(values >> 16) & 255, (values >> 8) & 255, values & 255], axis=1).astype(np.float64)
    names = list(PAPER_PALETTE)
    palette = np.array([PAPER_PALETTE[n] for n in names], dtype=np.float64)
    dist = np.sqrt(((colours[:, None, :] - palette[None, :, :]) ** 2).sum(-1))  # (colours, palette)
    shares = counts / codes.size
    close = dist <= MAX_COLOUR_DISTANCE / 2
    present = [p for p in range(len(names)) if shares[close[:, p]].sum() >= MIN_LABEL_SHARE]
    if not present:  # only blends: the most common nearest palette colour
        present = [int(np.bincount(dist.argmin(1), weights=counts, minlength=len(names)).argmax())]
    to_labels = dist[:, present].min(1)
    for i, j in ((i, j) for i in present for j in present if i < j):
        to_labels = np.minimum(to_labels, _segment_distance(colours, palette[i], palette[j]))
    for i in np.argsort(-counts):
        if shares[i] < MIN_LABEL_SHARE:
            break
        if to_labels[i] > MAX_COLOUR_DISTANCE:
            hexa = "#{:02x}{:02x}{:02x}".format(*colours[i].astype(int))
            raise InputError(f"label map {path}: colour {hexa} ({shares[i]:.1%} of it) is not one of the paper's "
                             f"label colours ({', '.join(names)}); use those or an integer label PNG")  # fmt: skip
    snapped = dist[:, present].argmin(1)  # each colour to the nearest label
    labels = snapped[inverse].reshape(rgb.shape[:2])
    return labels.astype(np.int64), [names[p] for p in present]


def load_label_map(path: str | os.PathLike, what: str = "label map") -> LabelMap:
    """Read a colour-coded or integer label PNG (see the module docstring); one-line errors."""
    try:
        im = open_image(path)
    except InputError as err:
        raise InputError(f"{what}: {err}") from None
    p = str(path)
    if im.mode in ("L", "I", "I;16", "I;16B", "I;16L", "I;16N"):
        values = np.asarray(im).astype(np.int64)
        uniq, labels = np.unique(values, return_inverse=True)
        return LabelMap(labels.reshape(values.shape), [f"label {int(v)}" for v in uniq], "integer", p)
    if im.mode not in ("RGB", "RGBA", "P", "LA", "PA", "CMYK"):
        raise InputError(f"{what} {p}: unsupported image mode {im.mode} (use an RGB colour map or an integer PNG)")
    rgb = np.asarray(to_rgb(im), dtype=np.uint8)
    labels, names = _colour_labels(rgb, p)
    return LabelMap(labels, names, "colour", p)


def check_label_pair(content: LabelMap, style: LabelMap, content_size: tuple[int, int],
                     style_size: tuple[int, int]) -> None:  # fmt: skip
    """One-line errors for label maps that do not fit their images ((width, height) as loaded from the files)
    or each other."""
    for lm, size, image in ((content, content_size, "content image"), (style, style_size, "style image")):
        if lm.size != tuple(size):
            raise InputError(f"label map {lm.path} is {lm.size[0]}x{lm.size[1]} but the {image} is "
                             f"{size[0]}x{size[1]}: a label map must have its image's size")  # fmt: skip
    if content.kind != style.kind:
        raise InputError(f"label maps of different kinds: {content.path} is {content.kind}-coded, {style.path} "
                         f"{style.kind}-coded; use the same kind for both")  # fmt: skip
