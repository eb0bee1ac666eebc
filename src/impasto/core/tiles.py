"""Overlapping tiles for images too large to process whole: grid, blend windows, shifted passes.

Along each axis, ``n = ceil((L - overlap) / (tile - overlap))`` tiles of nearly equal length (differing by at
most one pixel, none longer than ``tile``) cover the ``L`` pixels with neighbours sharing exactly ``overlap``
pixels. A pass with ``shift`` f in (0, 1) moves every boundary back by f of a stride and adds one tile at
the end, so the seams of one pass fall inside the tiles of the next. Tiles are blended with windows that
rise as sin² over the overlap on sides facing another tile (1 elsewhere); across an overlap the two
windows sum to exactly one.

:func:`tiled_apply` runs any ``tile -> stylized tile`` function over a grid and blends the results; the
Gatys method in tiles (:mod:`impasto.methods.tiled`) and AdaIN in tiles (:mod:`impasto.methods.adain`) build
on this geometry. :func:`core_box` gives each tile the part that no neighbour shares more centrally.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from ..errors import InputError
from .sizes import resize_tensor

#: Smallest tile side accepted (VGG-19 needs some context around each position).
MIN_TILE = 64


@dataclass(frozen=True)
class Tile:
    """A rectangle of the image; ``inner`` tells which sides (top, bottom, left, right) face another tile."""

    top: int
    left: int
    height: int
    width: int
    inner: tuple[bool, bool, bool, bool] = (False, False, False, False)

    @property
    def slices(self) -> tuple[slice, slice]:
        return slice(self.top, self.top + self.height), slice(self.left, self.left + self.width)

    def crop(self, t: torch.Tensor) -> torch.Tensor:
        """This tile of a (N, C, H, W) tensor."""
        rows, cols = self.slices
        return t[..., rows, cols]


def default_overlap(tile: int) -> int:
    """Overlap used when none is given: an eighth of the tile, at least 16 pixels."""
    return max(16, tile // 8)


def check_tile(tile: int, overlap: int) -> None:
    """Raise :class:`InputError` unless ``MIN_TILE <= tile`` and ``0 <= overlap <= tile / 3``.

    A third at most: then every tile with neighbours on both sides is at least twice the overlap long (the
    shortest are those of a two-tile axis, at least (tile + overlap) / 2), so its two ramps do not meet and the
    windows of neighbours sum to one everywhere, shifted passes included. With more overlap a short middle tile
    would also overlap its neighbours' neighbours (found by the property test in tests/test_tiling.py)."""
    if tile < MIN_TILE:
        raise InputError(f"--tile must be at least {MIN_TILE} pixels, got {tile}")
    if not 0 <= overlap <= tile // 3:
        raise InputError(f"--tile-overlap must be from 0 to a third of the tile ({tile // 3}), got {overlap}")


def axis_spans(length: int, tile: int, overlap: int, shift: float = 0.0) -> list[tuple[int, int]]:
    """(start, stop) of the tiles along one axis (see the module docstring)."""
    if length <= tile:
        return [(0, length)]
    n = math.ceil((length - overlap) / (tile - overlap))
    base, extra = divmod(length + (n - 1) * overlap, n)
    spans, start = [], 0
    for i in range(n):
        size = base + (1 if i < extra else 0)
        spans.append((start, start + size))
        start += size - overlap
    shift = shift % 1.0
    if shift == 0:
        return spans
    d = round(shift * (spans[0][1] - spans[0][0] - overlap))
    if d == 0:
        return spans
    moved = [(max(0, a - d), b - d) for a, b in spans]
    return moved + [(length - overlap - d, length)]


def tile_grid(height: int, width: int, tile: int, overlap: int, shift: float = 0.0) -> list[Tile]:
    """Tiles covering a ``height`` x ``width`` image, row by row (see :func:`axis_spans`)."""
    rows = axis_spans(height, tile, overlap, shift)
    cols = axis_spans(width, tile, overlap, shift)
    tiles = []
    for i, (r0, r1) in enumerate(rows):
        for j, (c0, c1) in enumerate(cols):
            inner = (i > 0, i < len(rows) - 1, j > 0, j < len(cols) - 1)
            tiles.append(Tile(r0, c0, r1 - r0, c1 - c0, inner))
    return tiles


def _ramp(length: int, overlap: int, rise: bool, fall: bool) -> torch.Tensor:
    w = torch.ones(length)
    if overlap > 0:
        k = min(overlap, length)
        up = torch.sin((torch.arange(k) + 0.5) / overlap * (math.pi / 2)) ** 2
        if rise:
            w[:k] = torch.minimum(w[:k], up)
        if fall:
            w[length - k :] = torch.minimum(w[length - k :], up.flip(0))
    return w


def blend_window(tile: Tile, overlap: int) -> torch.Tensor:
    """(1, 1, h, w) weights of a tile: sin² ramps over ``overlap`` pixels on its inner sides, 1 elsewhere."""
    top, bottom, left, right = tile.inner
    wy = _ramp(tile.height, overlap, top, bottom)
    wx = _ramp(tile.width, overlap, left, right)
    return (wy[:, None] * wx[None, :])[None, None]


def shifts(passes: int) -> list[float]:
    """Grid shift of each pass: 0, 1/passes, 2/passes, ..."""
    return [p / passes for p in range(passes)]


def tiled_apply(
    image: torch.Tensor,
    fn: Callable[[torch.Tensor], torch.Tensor],
    tile: int,
    overlap: int | None = None,
    passes: int = 2,
) -> torch.Tensor:
    """Apply a ``tile -> stylized tile`` function over overlapping tiles of ``image`` and blend the results.

    Every pass uses a grid shifted by :func:`shifts`, and all tiles of all passes are blended together, so
    no tile border is a border in every pass. ``fn`` gets (1, 3, h, w) crops on the CPU; an output of
    another size is resized to the crop's. Returns a tensor the size of ``image``, on the CPU.
    """
    overlap = default_overlap(tile) if overlap is None else overlap
    check_tile(tile, overlap)
    h, w = image.shape[-2:]
    acc = torch.zeros(1, 3, h, w)
    wsum = torch.zeros(1, 1, h, w)
    for shift in shifts(max(1, passes)):
        for t in tile_grid(h, w, tile, overlap, shift):
            out = fn(t.crop(image)).detach().float().cpu()
            out = resize_tensor(out, (t.height, t.width))
            win = blend_window(t, overlap)
            rows, cols = t.slices
            acc[..., rows, cols] += out * win
            wsum[..., rows, cols] += win
    return acc / wsum.clamp_min(1e-12)


def core_box(tile: Tile, overlap: int) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) of the part of a tile that no neighbour shares more centrally; the cores
    of a grid partition the image."""
    top, bottom, left, right = tile.inner
    half = overlap // 2
    return (tile.top + (overlap - half if top else 0), tile.top + tile.height - (half if bottom else 0),
            tile.left + (overlap - half if left else 0), tile.left + tile.width - (half if right else 0))  # fmt: skip


def core_positions(
    tile: Tile, overlap: int, stride: int, shape: tuple[int, int], pad_before: tuple[int, int] = (0, 0)
) -> tuple[list[int], list[int]]:
    """Rows and columns of a tile's (h, w) = ``shape`` feature map at ``stride`` whose centres fall in the
    tile's core (:func:`core_box`); ``pad_before`` (top, left) is padding added before the tile."""
    c_top, c_bottom, c_left, c_right = core_box(tile, overlap)
    rows = [j for j in range(shape[0]) if c_top <= tile.top + j * stride + stride // 2 - pad_before[0] < c_bottom]
    cols = [j for j in range(shape[1]) if c_left <= tile.left + j * stride + stride // 2 - pad_before[1] < c_right]
    return rows, cols
