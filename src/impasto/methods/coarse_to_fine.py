"""Coarse-to-fine optimization: stylize a small version first, upsample it and continue at larger sizes.

The driver of the Gatys method: it follows the plan's scales (:mod:`impasto.core.schedule` chose them) and, per
scale, optimizes the whole image (:class:`~impasto.methods.gatys.Gatys`) or overlapping tiles
(:mod:`impasto.methods.tiled`) as the plan says. At each scale the content image is resized to it and the
style targets are recomputed with the style image scaled to match (``style_scale`` times the scale's size), so
brush strokes keep their size relative to the picture. A plan of one whole-image scale is a plain Gatys run.
"""

from __future__ import annotations

import dataclasses
import time

import torch

from ..core.malloc import release_free_memory
from ..core.progress import Callback, StepInfo
from ..core.sizes import resize_tensor
from ..errors import InputError, NonFiniteLossError, StylizeInterrupted
from .base import Stylization
from .gatys import Gatys
from .tiled import optimize_tiled


class CoarseToFine:
    """The Gatys method over the plan's scales and tiles; one step count and total across all of them."""

    def __init__(self, engine: Gatys) -> None:
        self.engine = engine

    @property
    def history(self) -> list[dict[str, float]]:
        """The loss history of the last run, with global step numbers and seconds since its start."""
        return self.engine.history

    def run(self, inputs: Stylization, *, callback: Callback | None = None) -> torch.Tensor:
        """Stylize ``inputs`` as its plan says; returns the result on the CPU at the content's size.

        With its ``start`` and ``start_step`` it resumes: the scales done are skipped, the start image
        is resized to the scale the step falls in, and only the remaining steps run, numbered on from there.
        On Ctrl-C or a non-finite loss, the exception's image is upsampled to the final size.
        """
        engine, scales = self.engine, inputs.plan.scales if inputs.plan is not None else []
        if not scales:
            raise InputError("no scales to run")
        full_hw = tuple(inputs.content.shape[-2:])
        if tuple(scales[-1].hw) != full_hw:
            raise ValueError(f"the plan is for {scales[-1].hw}, the content is {full_hw}")
        tiled = any(s.tile and max(s.hw) > s.tile for s in scales)
        regions = inputs.regions
        if len(scales) == 1 and not tiled:
            return engine.stylize(inputs, steps=scales[0].steps, callback=callback)
        if tiled and inputs.masks is not None:
            raise InputError("masks cannot be combined with tiles; use --tile 0 or a smaller --size")
        if tiled and (regions is not None or engine.options.photo_weight > 0):
            raise InputError("--method photo does not run in tiles; use --tile 0, --start-size or a smaller --size")
        if tiled and inputs.temporal is not None:
            raise InputError("the temporal loss (video) cannot be used with tiles; use --tile 0 or a smaller --size")
        o = engine.options
        torch.manual_seed(o.seed)
        engine.history = []
        total = sum(s.steps for s in scales)
        offset, start = 0, time.perf_counter()
        image: torch.Tensor | None = None
        first = min(max(0, inputs.start_step), total) if inputs.start is not None else 0
        if first >= total and inputs.start is not None:  # nothing left to do
            return resize_tensor(inputs.start.cpu(), full_hw)
        base = 0  # steps before the current scale's first step run here

        def wrapped(info: StepInfo) -> None:
            if callback is not None:
                callback(dataclasses.replace(info, step=base + info.step, total=total,
                                             elapsed=time.perf_counter() - start))  # fmt: skip

        for scale in scales:
            if offset + scale.steps <= first:  # a scale the resumed run had finished
                offset += scale.steps
                continue
            done = max(0, first - offset)  # steps of this scale done before a resume
            base = offset + done
            hw = tuple(scale.hw)
            content = resize_tensor(inputs.content, hw)
            if image is None and inputs.start is not None:
                image = inputs.start.cpu()
            elif image is None:
                image = engine.initial_image(content, inputs.styles, regions)
            image = resize_tensor(image, hw) if tuple(image.shape[-2:]) != hw else image
            first_row, t0 = len(engine.history), time.perf_counter() - start
            try:
                if scale.tile and max(hw) > scale.tile:
                    image = optimize_tiled(
                        engine, image, content, inputs.styles, scale.steps - done, scale.tile, o.tile_overlap,
                        o.tile_passes, wrapped,
                    )  # fmt: skip
                else:
                    terms = engine.build_terms(content, inputs.styles, inputs.masks, regions, temporal=inputs.temporal)
                    image = engine.optimize(image, terms, scale.steps - done, wrapped)
                    del terms
            except (StylizeInterrupted, NonFiniteLossError) as stop:
                raise stop.with_image(resize_tensor(stop.image.cpu(), full_hw)) from None
            finally:
                for row in engine.history[first_row:]:
                    row["step"] += base
                    row["seconds"] = round(row["seconds"] + t0, 4)
            image = image.cpu()
            offset += scale.steps
            release_free_memory()
        assert image is not None
        return image
