"""One style transfer run: plan once, then the method with the artistic controls of Gatys et al. 2017 around it.

:class:`Runner` is built once from :class:`~impasto.options.Options` (the method's networks are loaded then)
and called on a :class:`~impasto.methods.base.Stylization` (from :func:`impasto.api.prepare`): its tensors and
the :class:`~impasto.plan.Plan` made for them (:meth:`Runner.plan` when it has none):

1. colour preservation prepares the images the network sees (:mod:`impasto.core.color`): ``luminance`` gives
   it gray images (the style's luminance matched to the content's), ``histogram`` recolours the styles;
2. the method runs as the plan says (:mod:`impasto.methods`);
3. the result gets the content's chroma back (``luminance``) and, with masks, the content outside every
   region (:func:`impasto.core.regions.composite`). An interrupted or failed run's image is finished the same
   way before it reaches the caller.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence

import torch

from . import estimate, methods
from .core import color, speed
from .core.device import pick_device
from .core.progress import Callback
from .core.regions import composite
from .errors import InputError, NonFiniteLossError, StylizeInterrupted
from .methods.base import Stylization
from .options import Options
from .plan import Plan, check


def prepare(
    content: torch.Tensor, styles: Sequence[torch.Tensor], preserve_color: str | None
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """The content and style images the network sees under a colour preservation mode."""
    if preserve_color is None:
        return content, list(styles)
    if preserve_color == "luminance":
        return color.gray(content), [color.match_luminance(s, content) for s in styles]
    if preserve_color == "histogram":
        return content, [color.match_color(s, content) for s in styles]
    raise InputError(f"--preserve-color must be luminance or histogram, got {preserve_color!r}")


def finish(
    result: torch.Tensor, content: torch.Tensor, preserve_color: str | None, masks: torch.Tensor | None
) -> torch.Tensor:
    """The network's output turned into the final image: content chroma back, unstyled regions restored."""
    result = result.cpu()
    if preserve_color == "luminance":
        result = color.combine_luminance(result, content)
    if masks is not None:
        result = composite(result, content, masks).clamp(0, 1)
    return result


class Runner:
    """A configured style transfer: ``runner(stylization, callback=...)`` returns the result.

    Build it once and call it on many images: the networks (and, for the fast method, the style statistics)
    are kept. ``history`` holds the loss history of the last run.
    """

    def __init__(self, options: Options, device: torch.device | None = None) -> None:
        self.options = options
        self.device = device
        t = time.perf_counter()
        self.method = methods.create(options, device)
        where = str(device) if device is not None else str(pick_device(options.device))
        speed.observe_load(options.method, where, time.perf_counter() - t)  # later estimates count it

    @property
    def history(self) -> list[dict[str, float]]:
        return self.method.history

    def plan(self, content: torch.Tensor, styles: Sequence[torch.Tensor]) -> Plan:
        """The plan for these tensors (the content at its final size), checked to fit in memory."""
        h, w = content.shape[-2:]
        sizes = [(int(s.shape[-1]), int(s.shape[-2])) for s in styles]
        dev = str(self.device) if self.device is not None else None
        return check(estimate.plan(self.options, (int(w), int(h)), sizes, device=dev))

    def __call__(self, stylization: Stylization, *, callback: Callback | None = None) -> torch.Tensor:
        """Stylize ``stylization`` (checked by :func:`impasto.api.prepare`, or built so by the caller); returns
        (1, 3, H, W) on the CPU in [0, 1]. Without its plan, one is made for its tensors. The method is given a
        copy as the network sees it: colour preservation applied to the content, styles, start image and
        temporal target."""
        o, s = self.options, stylization
        plan = s.plan if s.plan is not None else self.plan(s.content, s.styles)
        net_content, net_styles = prepare(s.content, s.styles, o.preserve_color)
        start, temporal = s.start, s.temporal
        if start is not None and o.preserve_color == "luminance":  # the network sees luminance only
            start = color.gray(start)
        if temporal is not None and o.preserve_color == "luminance":
            temporal = (color.gray(temporal[0]), temporal[1])
        seen = dataclasses.replace(s, content=net_content, styles=net_styles, start=start, temporal=temporal, plan=plan)
        try:
            t = time.perf_counter()
            out = self.method.run(seen, callback=callback)
            if start is None and temporal is None:  # a whole run, as planned: later estimates follow it
                speed.observe(o.method, plan.device, plan.precision, plan.seconds / plan.factor,
                              time.perf_counter() - t)  # fmt: skip
        except (StylizeInterrupted, NonFiniteLossError) as stop:
            raise stop.with_image(finish(stop.image, s.content, o.preserve_color, s.masks)) from None
        return finish(out, s.content, o.preserve_color, s.masks)
