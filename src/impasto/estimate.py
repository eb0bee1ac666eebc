"""Peak memory and run time of a run, estimated before any heavy work, and the tiles it needs to fit.

The planner lays out a run's scales (:meth:`impasto.options.Options.scales`; one for a one-pass method) and,
where a method may run in tiles, the tiles each scale needs to fit in memory; each scale's peak bytes and
seconds are the method's own formula (:attr:`impasto.methods.base.MethodSpec.cost`, next to the method: e.g.
:func:`impasto.methods.gatys.peak_bytes`), applied to the pixels processed at once (the picture, or its largest
tile) and those of each pass (:class:`impasto.methods.base.Work`). The formulas share the runtime's fixed memory
and VGG-19's per-pixel costs (:mod:`impasto.core.costs`).

Time: each method's formula counts FLOPs per pixel over this machine's FLOP/s, measured on it
(:func:`impasto.core.speed.measured_rate`: VGG-19's first layers timed once, cached); the planner scales it by
what runs of the method observed here took over that prediction (:func:`impasto.core.speed.correction`; the
method's :attr:`~impasto.methods.base.MethodSpec.first_run_factor` before any) and adds loading the networks (as
observed here; :data:`DEFAULT_LOAD_SECONDS` before). The result is a range (:attr:`impasto.plan.Plan.spread`),
wide until a run of the method was observed.
The memory constants were calibrated against peak RSS at 512, 1024 and 2048 px (``benchmarks/bench_estimate.py``).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path

import torch

from .core import speed
from .core.device import pick_device, precision_name
from .core.sizes import fit_size
from .core.tiles import default_overlap, shifts, tile_grid
from .methods import METHODS, Work
from .options import Options
from .plan import GB, MEMORY_SAFETY, MIN_AUTO_TILE, Plan, ScalePlan, fmt_seconds

#: A method's run time over what its formula alone predicts, before any run of it was observed on this machine
#: (each method's :attr:`~impasto.methods.base.MethodSpec.first_run_factor`).
FIRST_RUN_FACTOR = {name: spec.first_run_factor for name, spec in METHODS.items()}
#: Seconds loading a method's networks takes before it was observed on this machine (VGG-19 and the decoder
#: read from disk; measured 1.3-1.6 s with the files in the page cache, more from a cold disk).
DEFAULT_LOAD_SECONDS = 3.0
#: Tile sides tried, largest first, when tiles are chosen automatically (larger tiles gain little speed).
TILE_LADDER = (2048, 1536, 1024, 768, 512, 384, MIN_AUTO_TILE)


def available_memory(device: str = "cpu") -> int:
    """Bytes this process may reach: free GPU memory, or MemAvailable (capped by a cgroup limit) plus what
    this process already holds (the estimates count the whole process)."""
    if device.startswith("cuda"):
        return int(torch.cuda.mem_get_info()[0])
    avail = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                avail = int(line.split()[1]) * 1024
                break
    except OSError:
        pass
    if avail is None:
        try:
            avail = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            avail = 8 * GB
    for limit_file, usage_file in (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
                                   ("/sys/fs/cgroup/memory/memory.limit_in_bytes",
                                    "/sys/fs/cgroup/memory/memory.usage_in_bytes")):  # fmt: skip
        try:
            limit = Path(limit_file).read_text().strip()
            if limit != "max" and int(limit) < 1 << 60:
                avail = min(avail, int(limit) - int(Path(usage_file).read_text().strip()))
        except (OSError, ValueError):
            continue
    return max(0, avail) + _own_rss()


def _own_rss() -> int:
    """Resident bytes of this process (already counted by the estimate's fixed part)."""
    try:
        return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError, AttributeError):
        return 0


def _tile_area(hw: tuple[int, int], tile: int, overlap: int, passes: int) -> tuple[int, int]:
    """(largest tile's pixels, tiles in all passes) for a picture of ``hw``."""
    largest, count = 0, 0
    for s in shifts(passes):
        grid = tile_grid(hw[0], hw[1], tile, overlap, s)
        largest = max(largest, max(t.height * t.width for t in grid))
        count += len(grid)
    return largest, count


def _tile_pixels(hw: tuple[int, int], tile: int, overlap: int, passes: int) -> list[int]:
    return [sum(t.height * t.width for t in tile_grid(hw[0], hw[1], tile, overlap, s)) for s in shifts(passes)]


def _scale_plan(
    options: Options, size: int, hw: tuple[int, int], steps: int, tile: int | None, style_pixels: int,
    device: str, precision: str,
) -> ScalePlan:  # fmt: skip
    """One scale, whole or in ``tile``-pixel tiles, costed by the method's formula."""
    spec = METHODS[options.method]
    picture = hw[0] * hw[1]
    tiled = bool(tile) and max(hw) > tile  # type: ignore[operator]
    if tiled:
        overlap = options.tile_overlap if options.tile_overlap is not None else default_overlap(tile)  # type: ignore[arg-type]
        passes = max(1, min(options.tile_passes, steps)) if spec.iterative and steps else options.tile_passes
        area, count = _tile_area(hw, tile, overlap, passes)  # type: ignore[arg-type]
        pass_pixels = _tile_pixels(hw, tile, overlap, passes)  # type: ignore[arg-type]
    else:
        area, count, passes, pass_pixels = picture, 1, 1, [picture]
    work = Work(hw, steps if spec.iterative else 0, area, tile if tiled else None, passes, tuple(pass_pixels),
                style_pixels, device, precision)  # fmt: skip
    peak, seconds = spec.cost(options, work)
    return ScalePlan(size, hw, work.steps, work.tile, count, peak, seconds)


def plan(
    options: Options,
    content_size: tuple[int, int],
    style_sizes: Sequence[tuple[int, int]] = (),
    device: str | None = None,
    available: int | None = None,
) -> Plan:
    """Plan a run from the options and the images' (width, height): scales, tiles, peak memory, time.

    ``options.tile``: None tiles a scale only when its whole-image estimate exceeds the memory budget
    (:data:`MEMORY_SAFETY` x ``available``), using the largest tile of :data:`TILE_LADDER` that fits; 0
    never tiles; N tiles every scale larger than N pixels. Nothing is allocated.
    """
    dev = str(pick_device(options.device)) if device is None else device
    precision = precision_name(options.precision, dev)
    available = available_memory(dev) if available is None else available
    budget = int(available * MEMORY_SAFETY)
    spec = METHODS[options.method]
    if not spec.iterative:
        sizes = [(options.size, 0)]
    else:
        sizes = options.scales()
    style_longest = options.style_size()
    styles = [fit_size(w, h, style_longest) for w, h in style_sizes] or [fit_size(4, 3, style_longest)]
    final = fit_size(*content_size, options.size)  # the content as loaded; coarser scales are fitted from it
    scales = []
    for i, (size, steps) in enumerate(sizes):
        w, h = final if size == options.size else fit_size(*final, size)
        last = i == len(sizes) - 1
        style_px = max(sw * sh for sw, sh in styles)
        style_px = style_px if last else int(style_px * (size / options.size) ** 2)
        hw = (h, w)
        if options.tile is None and not spec.tileable:  # never tiled (refused)
            sp = _scale_plan(options, size, hw, steps, None, style_px, dev, precision)
        elif options.tile is None:
            sp = _scale_plan(options, size, hw, steps, None, style_px, dev, precision)
            for tile in TILE_LADDER:
                if sp.peak_bytes <= budget or tile >= max(hw):
                    continue
                sp = _scale_plan(options, size, hw, steps, tile, style_px, dev, precision)
        else:
            sp = _scale_plan(options, size, hw, steps, options.tile or None, style_px, dev, precision)
        scales.append(sp)
    precision = spec.precision or precision  # a method that always runs in one precision
    observed = speed.correction(options.method, dev, precision)
    factor = observed if observed is not None else spec.first_run_factor
    for sp in scales:
        sp.seconds *= factor
    load = speed.load_seconds(options.method, dev)
    return Plan(options.method, dev, precision, scales, available, iterative=spec.iterative, tileable=spec.tileable,
                load_seconds=DEFAULT_LOAD_SECONDS if load is None else load, factor=factor,
                spread=speed.RANGE_OBSERVED if observed is not None else speed.RANGE_MEASURED)  # fmt: skip


#: The coarsest scale :func:`coarse_to_fine_hint` suggests.
HINT_START_SIZE = 512


def coarse_to_fine_hint(options: Options, p: Plan, content_size: tuple[int, int],
                        style_sizes: Sequence[tuple[int, int]] = ()) -> str | None:  # fmt: skip
    """One line suggesting ``--start-size 512`` for a single-scale optimization plan at twice that size or
    more when coarse to fine would take at most half the time; None otherwise.

    Not the default: at 512 and 1024 px, measured, coarse to fine ends at a higher loss at full size than a
    single-scale run given the same time (docs/benchmarks.md). Above that, single-scale runs take hours and
    their strokes shrink with the picture, as the network sees a fixed number of pixels.
    """
    if not METHODS[options.method].iterative or options.start_size is not None or options.size < 2 * HINT_START_SIZE:
        return None
    alt = plan(dataclasses.replace(options, start_size=HINT_START_SIZE, scale_steps=None), content_size,
               style_sizes, device=p.device, available=p.available_bytes)  # fmt: skip
    if len(alt.scales) < 2 or not alt.fits or alt.seconds > p.seconds / 2:
        return None
    steps = ",".join(str(s.steps) for s in alt.scales)
    return (
        f"hint: coarse to fine from {HINT_START_SIZE} px (--start-size {HINT_START_SIZE}: {steps} steps) is "
        f"estimated at {fmt_seconds(alt.seconds)} instead of {fmt_seconds(p.seconds)}; it keeps the strokes "
        f"and composition of a {HINT_START_SIZE} px run, at a higher loss at full size"
    )
