"""The scales of a coarse-to-fine run and how steps are shared out over scales and tile passes.

The scales are ``size / factor**k`` (k = n-1 ... 0), the coarsest being the one nearest to ``start_size`` (in
ratio), so every scale is an exact factor of the final size. Plain numbers in, plain numbers out.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

#: Smallest scale used (VGG-19 needs a few pixels left after four poolings).
MIN_SCALE = 32


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


def schedule(
    size: int, start_size: int | None, factor: float, steps: int, scale_steps: Sequence[int] | None = None
) -> list[tuple[int, int]]:
    """(longest side, steps) of each scale, coarse to fine: :func:`scale_sizes`, with ``scale_steps`` (one per
    scale) or ``steps`` shared out by :func:`balanced_steps` (most steps where they are cheap)."""
    sizes = scale_sizes(size, start_size, factor)
    if scale_steps:
        if len(scale_steps) != len(sizes):
            raise ValueError(f"{len(scale_steps)} step counts for {len(sizes)} scales")
        return list(zip(sizes, scale_steps, strict=True))
    return list(zip(sizes, balanced_steps(steps, sizes), strict=True))
