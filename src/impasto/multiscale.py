"""Coarse-to-fine optimization: stylize a small version first, upsample it and continue at larger sizes.

The scales are ``size / scale_factor**k`` (k = n-1 ... 0), the coarsest being the one nearest to
``start_size`` (in ratio), so every scale is an exact factor of the final size. At each scale the content
image is resized to it and the style targets are recomputed with the style image scaled to match
(``style_scale`` times the scale's size), so brush strokes keep their size relative to the picture.
Scales too large for memory run in overlapping tiles (:mod:`impasto.tiling`).
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from .errors import InputError, NonFiniteLossError
from .gatys import StepInfo, StyleTransfer, StylizeInterrupted
from .images import fit_size, resize_tensor
from .options import Options

#: Smallest scale used (VGG-19 needs a few pixels left after four poolings).
MIN_SCALE = 32


@dataclass(frozen=True)
class Scale:
    """One scale of a run: longest side, loss evaluations, and the tile size (None: whole image)."""

    size: int
    steps: int
    tile: int | None = None


def scale_sizes(size: int, start_size: int | None, factor: float = 2.0) -> list[int]:
    """Longest sides of the scales, coarse to fine: ``size / factor**k`` for k = n-1 ... 0.

    The number of coarser scales is ``round(log(size / start_size) / log(factor))``, so the coarsest is the
    one closest to ``start_size``; none is smaller than :data:`MIN_SCALE`. ``start_size`` None or at least
    ``size`` gives the single scale ``[size]``.
    """
    if start_size is None or start_size >= size or factor <= 1:
        return [size]
    n = max(0, round(math.log(size / start_size) / math.log(factor)))
    sizes = [round(size / factor**k) for k in range(n, 0, -1)]
    return [s for s in sizes if s >= MIN_SCALE and s < size] + [size]


def split_steps(steps: int, n: int) -> list[int]:
    """``steps`` in all over ``n`` parts (tile passes): equal shares, the remainder going to the first."""
    base, extra = divmod(steps, n)
    return [base + (1 if i < extra else 0) for i in range(n)]


def balanced_steps(steps: int, sizes: Sequence[int]) -> list[int]:
    """Default steps per scale for ``steps`` in all over scales of longest sides ``sizes`` (coarse to fine):
    shares inversely proportional to each scale's pixel count, so every scale takes about the same time
    (with factor 2: 4:1 from one scale to the next; 300 over 512 -> 4096 px is 224, 57, 15, 4). Each scale
    gets at least one step when ``steps`` allows; the shares add up to ``steps`` exactly.
    """
    n = len(sizes)
    if n == 0:
        return []
    if steps < n:
        return split_steps(steps, n)
    weights = [(sizes[-1] / s) ** 2 for s in sizes]
    shares = [(steps - n) * w / sum(weights) for w in weights]
    out = [1 + math.floor(x) for x in shares]
    for i in sorted(range(n), key=lambda i: shares[i] - math.floor(shares[i]), reverse=True)[: steps - sum(out)]:
        out[i] += 1  # largest remainders first
    return out


def schedule(options: Options, tiles: Sequence[int | None] | None = None) -> list[Scale]:
    """The scales of a run from its options (``start_size``, ``scale_factor``, ``scale_steps``, ``steps``).

    ``scale_steps`` gives the steps per scale explicitly, coarse to fine; if it has fewer entries than there
    are scales, its first entry is repeated for the extra coarse scales, and extra entries are dropped from
    its start. Otherwise ``steps`` is shared out by :func:`balanced_steps` (most steps where they are cheap).
    ``tiles`` (one per scale) sets each scale's tile size.
    """
    sizes = scale_sizes(options.size, options.start_size, options.scale_factor)
    n = len(sizes)
    if options.scale_steps:
        given = list(options.scale_steps)
        steps = ([given[0]] * (n - len(given)) + given)[-n:]
    else:
        steps = balanced_steps(options.steps, sizes)
    tiles = list(tiles) if tiles is not None else [None] * n
    if len(tiles) != n:
        raise ValueError(f"{len(tiles)} tile sizes for {n} scales")
    return [Scale(s, k, t) for s, k, t in zip(sizes, steps, tiles, strict=True)]


def _hw(content_hw: tuple[int, int], size: int) -> tuple[int, int]:
    w, h = fit_size(content_hw[1], content_hw[0], size)
    return h, w


def stylize(
    transfer: StyleTransfer,
    content: torch.Tensor,
    styles: Sequence[torch.Tensor],
    scales: Sequence[Scale],
    callback: Callable[[StepInfo], None] | None = None,
    tile_overlap: int | None = None,
    tile_passes: int = 2,
) -> torch.Tensor:
    """Run ``transfer`` over ``scales`` (coarse to fine) on a content tensor at the final size.

    The callback sees one step count and total across all scales. ``transfer.history`` gets every
    evaluation with that global step and the seconds since the start. On Ctrl-C or a non-finite loss,
    the exception's image is upsampled to the final size. Returns the result on the CPU.
    """
    from . import tiling

    if not scales:
        raise InputError("no scales to run")
    torch.manual_seed(transfer.options.seed)
    transfer.history = []
    full_hw = tuple(content.shape[-2:])
    total = sum(s.steps for s in scales)
    offset, start = 0, time.perf_counter()
    image: torch.Tensor | None = None

    def wrapped(info: StepInfo) -> None:
        if callback is not None:
            callback(dataclasses.replace(info, step=offset + info.step, total=total,
                                         elapsed=time.perf_counter() - start))  # fmt: skip

    for i, scale in enumerate(scales):
        hw = full_hw if i == len(scales) - 1 else _hw(full_hw, scale.size)
        content_s = resize_tensor(content, hw)
        image = transfer.initial_image(content_s, styles) if image is None else resize_tensor(image, hw)
        first_row, t0 = len(transfer.history), time.perf_counter() - start
        try:
            if scale.tile and max(hw) > scale.tile:
                image = tiling.optimize_tiled(
                    transfer, image, content_s, styles, scale.steps, scale.tile, tile_overlap, tile_passes, wrapped
                )
            else:
                losses = transfer.build_losses(content_s, styles)
                image = transfer.optimize(image, losses, scale.steps, wrapped)
                del losses
        except StylizeInterrupted as stop:
            raise StylizeInterrupted(resize_tensor(stop.image.cpu(), full_hw)) from None
        except NonFiniteLossError as err:
            err.image = resize_tensor(err.image.cpu(), full_hw)  # type: ignore[attr-defined]
            raise
        finally:
            for row in transfer.history[first_row:]:
                row["step"] += offset
                row["seconds"] = round(row["seconds"] + t0, 4)
        image = image.cpu()
        offset += scale.steps
    assert image is not None
    return image


def planned_tiles(options: Options, content: torch.Tensor, styles: Sequence[torch.Tensor], device: str) -> list:
    """Tile size of each scale (None: whole image) as :func:`impasto.estimate.plan` chooses them; raises
    :class:`InputError` when the run cannot fit in memory."""
    from .estimate import check, plan

    h, w = content.shape[-2:]
    return check(plan(options, (w, h), [(s.shape[-1], s.shape[-2]) for s in styles], device=device)).tiles


def run(
    transfer: StyleTransfer,
    content: torch.Tensor,
    styles: Sequence[torch.Tensor],
    callback: Callable[[StepInfo], None] | None = None,
) -> torch.Tensor:
    """Stylize as the options say: one scale (``transfer.stylize``), or several and/or tiles (:func:`stylize`).

    Tiles follow :func:`impasto.estimate.plan` (``options.tile``: None when memory requires, 0 never, N
    forced). Region masks work at every scale but not with tiles.
    """
    o = transfer.options
    scales = schedule(o, planned_tiles(o, content, styles, str(transfer.device)))
    tiled = any(s.tile for s in scales)
    if len(scales) == 1 and not tiled and scales[0].steps == o.steps:
        return transfer.stylize(content, styles, callback)
    if tiled and getattr(transfer, "masks", None) is not None:
        raise InputError("masks cannot be combined with tiles; use --tile 0 or a smaller --size")
    return stylize(transfer, content, styles, scales, callback, o.tile_overlap, o.tile_passes)
