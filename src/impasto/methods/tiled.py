"""The Gatys method over overlapping tiles, for pictures too large to optimize whole.

Each tile is optimized with content targets from its own part of the content image and style Gram targets
computed once from the whole style images at the scale of the whole picture (a style image larger than a
tile passes through the network in tiles too, its Gram matrices summed over the tiles' cores, so overlaps
count once). Tiles start from the picture as blended so far and are blended with the windows of
:mod:`impasto.core.tiles`; passes shift the grid so that no border is a border in every pass.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence

import torch

from ..core.losses import gram_matrix
from ..core.progress import Callback, StepInfo
from ..core.schedule import split_steps
from ..core.tiles import Tile, blend_window, check_tile, core_positions, default_overlap, shifts, tile_grid
from ..core.vgg import stride_of
from ..errors import NonFiniteLossError, StylizeInterrupted
from .gatys import Gatys
from .terms import StyleGrams, Targets, Term, build_terms


def tiled_grams(
    engine: Gatys, image: torch.Tensor, layers: Sequence[str], tile: int, overlap: int | None = None
) -> tuple[dict[str, torch.Tensor], dict[str, int]]:
    """Raw Gram matrices F F^T (float32) and position counts of an image's features at ``layers``, summed
    over the cores of overlapping tiles, so a large image never passes through the network whole."""
    overlap = default_overlap(tile) if overlap is None else overlap
    grams: dict[str, torch.Tensor] = {}
    counts: dict[str, int] = dict.fromkeys(layers, 0)
    h, w = image.shape[-2:]
    for t in tile_grid(h, w, tile, overlap):
        feats = engine.features(t.crop(image), layers)
        for n in layers:
            f = feats[n]
            rows, cols = core_positions(t, overlap, stride_of(n), tuple(f.shape[-2:]))
            if not rows or not cols:
                continue
            core = f[..., rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1].float().flatten(2)[0]
            g = core @ core.T
            grams[n] = grams[n] + g if n in grams else g
            counts[n] += core.shape[1]
        del feats
    return grams, counts


def style_grams(
    engine: Gatys, styles: Sequence[torch.Tensor], full_hw: tuple[int, int], tile: int | None = None
) -> StyleGrams:
    """Style Gram matrices from the whole style images, scaled for a picture of ``full_hw``; a style image
    larger than ``tile`` is passed through the network in tiles (:func:`tiled_grams`)."""
    o = engine.options
    layers = engine.style_layers
    grams: dict[str, list[torch.Tensor]] = {n: [] for n in layers}
    positions: dict[str, list[int]] = {n: [] for n in layers}
    for style in styles:
        image = engine.style_image_for(style, full_hw)
        if tile and max(image.shape[-2:]) > tile:
            raw, counts = tiled_grams(engine, image, layers, tile)
            for n in layers:
                c = raw[n].shape[0]
                div = {"positions": counts[n], "elements": c * counts[n], "none": 1}[o.gram_norm]
                grams[n].append((raw[n] / div)[None])
                positions[n].append(counts[n])
        else:
            feats = engine.features(image, layers)
            for n in layers:
                grams[n].append(gram_matrix(feats[n], o.gram_norm).float())
                positions[n].append(feats[n].shape[-2] * feats[n].shape[-1])
            del feats
    return StyleGrams(grams, positions)


def tile_terms(
    engine: Gatys, content_tile: torch.Tensor, grams: StyleGrams, content_scale: float | None = None
) -> list[Term]:
    """The loss terms of one tile: content targets from the tile, style targets shared by all tiles.

    ``content_scale`` replaces each content loss's own normalization (so every tile weighs content alike).
    """
    feats = engine.features(content_tile, engine.content_layers + engine.style_layers)
    return build_terms(engine.options, Targets(content_tile, feats, grams, content_scale=content_scale))


def content_scale(engine: Gatys, content: torch.Tensor, tiles: Sequence[Tile]) -> float | None:
    """1 / mean square of the content features over all tiles (the whole picture's normalization)."""
    if not engine.options.normalize_losses:
        return None
    total, count = 0.0, 0
    for t in tiles:
        feats = engine.features(t.crop(content), engine.content_layers)
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
    engine: Gatys,
    image: torch.Tensor,
    content: torch.Tensor,
    styles: Sequence[torch.Tensor],
    steps: int,
    tile: int,
    overlap: int | None = None,
    passes: int = 2,
    callback: Callback | None = None,
) -> torch.Tensor:
    """Optimize ``image`` tile by tile: ``steps`` evaluations per tile, shared out over ``passes`` passes
    with shifted grids. Each tile starts from the picture as blended so far (completed by the pass's input
    image), so neighbours agree.

    The callback gets the scale's progress as steps 1..``steps`` (each reported once, with the tile's
    image and losses); ``engine.history`` gets every evaluation with that step.
    """
    overlap = default_overlap(tile) if overlap is None else overlap
    check_tile(tile, overlap)
    h, w = image.shape[-2:]
    image = image.detach().cpu().float().clone()
    content = content.cpu()
    passes = max(1, min(passes, steps)) if steps > 0 else 1
    per_pass = split_steps(steps, passes)
    grids = [tile_grid(h, w, tile, overlap, s) for s in shifts(passes)]
    grams = style_grams(engine, styles, (h, w), tile)
    scale = content_scale(engine, content, grids[0])
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
            terms = tile_terms(engine, t.crop(content), grams, scale)
            first_row, t0 = len(engine.history), time.perf_counter() - start

            def on_step(info: StepInfo, base: int = done) -> None:
                nonlocal reported
                step = min(steps, -(-(base + info.step) * steps // total_evals))
                if callback is not None and step > reported:
                    reported = step
                    callback(dataclasses.replace(info, step=step, total=steps))

            try:
                result = engine.optimize(init, terms, k, on_step).cpu()
            except (StylizeInterrupted, NonFiniteLossError) as stop:
                raise stop.with_image(_paste(image, acc, wsum, t, stop.image)) from None
            for row in engine.history[first_row:]:
                row["step"] = min(steps, -(-(done + row["step"]) * steps // total_evals))
                row["seconds"] = round(row["seconds"] + t0, 4)
            done += k
            win = blend_window(t, overlap)
            acc[..., rows, cols] += result * win
            wsum[..., rows, cols] += win
            del terms, result
        image = (acc / wsum.clamp_min(1e-12)).clamp_(0, 1)
    return image
