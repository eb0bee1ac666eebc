"""Overlapping tiles for images too large to process whole: grid, blend windows, shifted passes.

Along each axis, ``n = ceil((L - overlap) / (tile - overlap))`` tiles of nearly equal length (differing by at
most one pixel, none longer than ``tile``) cover the ``L`` pixels with neighbours sharing exactly ``overlap``
pixels. A pass with ``shift`` f in (0, 1) moves every boundary back by f of a stride and adds one tile at
the end, so the seams of one pass fall inside the tiles of the next. Tiles are blended with windows that
rise as sin² over the overlap on sides facing another tile (1 elsewhere); across an overlap the two
windows sum to exactly one.

Two users: :func:`optimize_tiled` (Gatys optimization; content loss target per tile, style Gram targets
computed once from the whole style image at the scale of the whole picture) and :func:`tiled_apply` (any
``tile -> stylized tile`` function, such as the fast method with its style statistics computed once).
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from .errors import InputError, NonFiniteLossError
from .gatys import Losses, StepInfo, StyleTransfer, StylizeInterrupted, strength_factor
from .losses import ContentLoss, StyleLoss, gram_matrix
from .vgg import stride_of

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
    """Raise :class:`InputError` unless ``MIN_TILE <= tile`` and ``0 <= overlap <= tile / 2``."""
    if tile < MIN_TILE:
        raise InputError(f"--tile must be at least {MIN_TILE} pixels, got {tile}")
    if not 0 <= overlap <= tile // 2:
        raise InputError(f"--tile-overlap must be from 0 to half the tile ({tile // 2}), got {overlap}")


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
    from .images import resize_tensor

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


# -- Gatys optimization in tiles --------------------------------------------------------------------------
@dataclass
class StyleTargets:
    """Gram matrices of each style image at each style layer, with the positions they were taken over."""

    grams: dict[str, list[torch.Tensor]]
    positions: dict[str, list[int]]


def _core(tile: Tile, overlap: int) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) of the part of a tile that no neighbour shares more centrally; the cores
    of a grid partition the image."""
    top, bottom, left, right = tile.inner
    half = overlap // 2
    return (tile.top + (overlap - half if top else 0), tile.top + tile.height - (half if bottom else 0),
            tile.left + (overlap - half if left else 0), tile.left + tile.width - (half if right else 0))  # fmt: skip


def tiled_grams(
    transfer: StyleTransfer, image: torch.Tensor, layers: Sequence[str], tile: int, overlap: int | None = None
) -> tuple[dict[str, torch.Tensor], dict[str, int]]:
    """Raw Gram matrices F F^T (float32) and position counts of an image's features at ``layers``, summed
    over the cores of overlapping tiles, so a large image never passes through the network whole."""
    overlap = default_overlap(tile) if overlap is None else overlap
    grams: dict[str, torch.Tensor] = {}
    counts: dict[str, int] = dict.fromkeys(layers, 0)
    h, w = image.shape[-2:]
    for t in tile_grid(h, w, tile, overlap):
        feats = transfer.features(t.crop(image), layers)
        c_top, c_bottom, c_left, c_right = _core(t, overlap)
        for n in layers:
            s, f = stride_of(n), feats[n]
            rows = [j for j in range(f.shape[-2]) if c_top <= t.top + j * s + s // 2 < c_bottom]
            cols = [j for j in range(f.shape[-1]) if c_left <= t.left + j * s + s // 2 < c_right]
            if not rows or not cols:
                continue
            core = f[..., rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1].float().flatten(2)[0]
            g = core @ core.T
            grams[n] = grams[n] + g if n in grams else g
            counts[n] += core.shape[1]
        del feats
    return grams, counts


def style_targets(
    transfer: StyleTransfer, styles: Sequence[torch.Tensor], full_hw: tuple[int, int], tile: int | None = None
) -> StyleTargets:
    """Style Gram matrices from the whole style images, scaled for a picture of ``full_hw``; a style image
    larger than ``tile`` is passed through the network in tiles (:func:`tiled_grams`)."""
    o = transfer.options
    layers = transfer.style_layers
    grams: dict[str, list[torch.Tensor]] = {n: [] for n in layers}
    positions: dict[str, list[int]] = {n: [] for n in layers}
    for style in styles:
        image = transfer.style_image_for(style, full_hw)
        if tile and max(image.shape[-2:]) > tile:
            raw, counts = tiled_grams(transfer, image, layers, tile)
            for n in layers:
                c = raw[n].shape[0]
                div = {"positions": counts[n], "elements": c * counts[n], "none": 1}[o.gram_norm]
                grams[n].append((raw[n] / div)[None])
                positions[n].append(counts[n])
        else:
            feats = transfer.features(image, layers)
            for n in layers:
                grams[n].append(gram_matrix(feats[n], o.gram_norm).float())
                positions[n].append(feats[n].shape[-2] * feats[n].shape[-1])
            del feats
    return StyleTargets(grams, positions)


def tile_losses(
    transfer: StyleTransfer, content_tile: torch.Tensor, targets: StyleTargets, content_scale: float | None = None
) -> Losses:
    """The loss terms of one tile: content targets from the tile, style targets shared by all tiles.

    ``content_scale`` replaces each content loss's own normalization (so every tile weighs content alike).
    """
    o = transfer.options
    feats = transfer.features(content_tile, transfer.content_layers + transfer.style_layers)
    content = {n: ContentLoss(feats[n], o.normalize_losses) for n in transfer.content_layers}
    if content_scale is not None:
        for loss in content.values():
            loss.scale = content_scale
    style = {}
    for n in transfer.style_layers:
        here = feats[n].shape[-2] * feats[n].shape[-1]
        if o.gram_norm == "none":
            grams = [g * (here / p) for g, p in zip(targets.grams[n], targets.positions[n], strict=True)]
        else:
            grams = targets.grams[n]
        blend = o.style_blend if o.style_blend is not None else [1.0] * len(grams)
        style[n] = StyleLoss(grams, blend, o.gram_norm, o.normalize_losses, o.style_layer_norm)
    layer_w = o.style_layer_weights or [1.0] * len(transfer.style_layers)
    layer_weights = dict(zip(transfer.style_layers, layer_w, strict=True))
    style_weight = o.style_weight * strength_factor(o.strength)  # as in StyleTransfer.build_losses
    return Losses(content, style, layer_weights, o.content_weight, style_weight, o.tv_weight)


def content_scale(transfer: StyleTransfer, content: torch.Tensor, tiles: Sequence[Tile]) -> float | None:
    """1 / mean square of the content features over all tiles (the whole picture's normalization)."""
    if not transfer.options.normalize_losses:
        return None
    total, count = 0.0, 0
    for t in tiles:
        feats = transfer.features(t.crop(content), transfer.content_layers)
        for f in feats.values():
            total += float(f.float().pow(2).sum())
            count += f.numel()
    return 1.0 / max(total / max(count, 1), 1e-12)


def _paste(
    image: torch.Tensor, acc: torch.Tensor, wsum: torch.Tensor, tile: Tile, tile_image: torch.Tensor
) -> torch.Tensor:
    """The picture as blended so far, with ``tile_image`` in its tile (for an interrupted run)."""
    out = acc + (1 - wsum).clamp(0, 1) * image
    rows, cols = tile.slices
    out[..., rows, cols] = tile_image.detach().cpu().float()
    return out.clamp_(0, 1)


def optimize_tiled(
    transfer: StyleTransfer,
    image: torch.Tensor,
    content: torch.Tensor,
    styles: Sequence[torch.Tensor],
    steps: int,
    tile: int,
    overlap: int | None = None,
    passes: int = 2,
    callback: Callable[[StepInfo], None] | None = None,
) -> torch.Tensor:
    """Optimize ``image`` tile by tile: ``steps`` evaluations per tile, shared out over ``passes`` passes
    with shifted grids. Each tile starts from the picture as blended so far (completed by the pass's input
    image), so neighbours agree.

    The callback gets the scale's progress as steps 1..``steps`` (each reported once, with the tile's
    image and losses); ``transfer.history`` gets every evaluation with that step.
    """
    from .multiscale import split_steps

    overlap = default_overlap(tile) if overlap is None else overlap
    check_tile(tile, overlap)
    h, w = image.shape[-2:]
    image = image.detach().cpu().float().clone()
    content = content.cpu()
    passes = max(1, min(passes, steps)) if steps > 0 else 1
    per_pass = split_steps(steps, passes)
    grids = [tile_grid(h, w, tile, overlap, s) for s in shifts(passes)]
    targets = style_targets(transfer, styles, (h, w), tile)
    scale = content_scale(transfer, content, grids[0])
    total_evals = max(1, sum(len(g) * k for g, k in zip(grids, per_pass, strict=True)))
    done, reported, start = 0, 0, time.perf_counter()

    for grid, k in zip(grids, per_pass, strict=True):
        if k == 0:
            continue
        acc = torch.zeros_like(image)
        wsum = torch.zeros(1, 1, h, w)
        for t in grid:
            rows, cols = t.slices
            # The blend so far, completed by the pass's input where the windows do not yet sum to one: smooth
            # across the edges of earlier tiles (their border pixels carry almost no weight).
            init = acc[..., rows, cols] + (1 - wsum[..., rows, cols]).clamp_(0, 1) * image[..., rows, cols]
            losses = tile_losses(transfer, t.crop(content), targets, scale)
            first_row, t0 = len(transfer.history), time.perf_counter() - start

            def on_step(info: StepInfo, base: int = done) -> None:
                nonlocal reported
                step = min(steps, -(-(base + info.step) * steps // total_evals))
                if callback is not None and step > reported:
                    reported = step
                    callback(dataclasses.replace(info, step=step, total=steps))

            try:
                result = transfer.optimize(init, losses, k, on_step).cpu()
            except StylizeInterrupted as stop:
                raise StylizeInterrupted(_paste(image, acc, wsum, t, stop.image)) from None
            except NonFiniteLossError as err:
                err.image = _paste(image, acc, wsum, t, err.image)  # type: ignore[attr-defined]
                raise
            for row in transfer.history[first_row:]:
                row["step"] = min(steps, -(-(done + row["step"]) * steps // total_evals))
                row["seconds"] = round(row["seconds"] + t0, 4)
            done += k
            win = blend_window(t, overlap)
            acc[..., rows, cols] += result * win
            wsum[..., rows, cols] += win
            del losses, result
        image = (acc / wsum.clamp_min(1e-12)).clamp_(0, 1)
    return image


# -- the fast method in tiles ------------------------------------------------------------------------------
def _core_positions(tile: Tile, overlap: int, stride: int, pad_before: tuple[int, int], shape: tuple[int, int]):
    """Feature rows and columns of a (padded) tile whose centres fall in the tile's core."""
    c_top, c_bottom, c_left, c_right = _core(tile, overlap)
    rows = [j for j in range(shape[0]) if c_top <= tile.top + j * stride + stride // 2 - pad_before[0] < c_bottom]
    cols = [j for j in range(shape[1]) if c_left <= tile.left + j * stride + stride // 2 - pad_before[1] < c_right]
    return rows, cols


def fast_stylize(
    engine,  # impasto.fast.FastStyleTransfer
    content: torch.Tensor,
    styles: Sequence[torch.Tensor],
    tile: int,
    overlap: int | None = None,
    passes: int = 2,
    weights: Sequence[float] | None = None,
    strength: float = 1.0,
) -> torch.Tensor:
    """The fast method (AdaIN) over overlapping tiles with one transform for the whole picture.

    The style statistics are computed once from the whole style images; the content statistics are those
    of the whole picture, gathered from the cores of the tiles of a first grid, so every tile is normalized
    alike and no tile's own statistics show as a patch. Tiles are then decoded and blended
    (:func:`tiled_apply`).
    """
    from .fast import EPS, STRIDE, crop_pads, pad_to_stride

    overlap = default_overlap(tile) if overlap is None else overlap
    check_tile(tile, overlap)
    content = content.detach().float().cpu()
    stats = [engine.style_stats(s) for s in styles]
    w = [1.0] * len(stats) if weights is None else [float(v) for v in weights]
    total = sum(w)
    style_mean = sum(wi / total * m for wi, (m, _) in zip(w, stats, strict=True)).float()
    style_std = sum(wi / total * s for wi, (_, s) in zip(w, stats, strict=True)).float()

    h, wd = content.shape[-2:]
    acc = torch.zeros(style_mean.shape[1], dtype=torch.float64)
    acc2 = torch.zeros_like(acc)
    count = 0
    for t in tile_grid(h, wd, tile, overlap):
        padded, pads = pad_to_stride(t.crop(content))
        f = engine.encode(padded).float().cpu()
        rows, cols = _core_positions(t, overlap, STRIDE, (pads[2], pads[0]), tuple(f.shape[-2:]))
        core = f[0][:, rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1].double().flatten(1) if rows and cols else None
        if core is not None:
            acc += core.sum(1)
            acc2 += core.pow(2).sum(1)
            count += core.shape[1]
    mean = acc / max(count, 1)
    var = (acc2 / max(count, 1) - mean.pow(2)).clamp_min(0)
    content_mean = mean.float().view(1, -1, 1, 1)
    content_std = (var + EPS).sqrt().float().view(1, -1, 1, 1)

    def one(crop: torch.Tensor) -> torch.Tensor:
        padded, pads = pad_to_stride(crop)
        with torch.inference_mode():
            f = engine.encode(padded).float()
            dev = f.device
            target = (f - content_mean.to(dev)) / content_std.to(dev) * style_std.to(dev) + style_mean.to(dev)
            target = strength * target + (1 - strength) * f
            out = engine.decode(target)
        return crop_pads(out, pads).cpu()

    return tiled_apply(content, one, tile, overlap, passes)


def fast_run(engine, content: torch.Tensor, styles: Sequence[torch.Tensor], options, masks=None) -> torch.Tensor:
    """The fast method as the options say: whole image, or tiles when :func:`impasto.estimate.plan` (or
    ``options.tile``) calls for them. Masks are not combined with tiles."""
    from .estimate import check, plan

    h, w = content.shape[-2:]
    sizes = [(s.shape[-1], s.shape[-2]) for s in styles]
    tile = check(plan(options, (w, h), sizes, device=str(engine.device))).tiles[-1]
    if not tile or max(h, w) <= tile:
        return engine.stylize(content, styles, options.style_blend, options.strength, masks)
    if masks is not None:
        raise InputError("masks cannot be combined with tiles; use --tile 0 or a smaller --size")
    return fast_stylize(engine, content, styles, tile, options.tile_overlap, options.tile_passes,
                        options.style_blend, options.strength)  # fmt: skip
