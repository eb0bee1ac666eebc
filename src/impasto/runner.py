"""One style transfer run: plan once, then the method with the artistic controls of Gatys et al. 2017 around it.

:class:`Runner` is built once from :class:`~impasto.options.Options` (the method's networks are loaded then)
and called on tensors with the :class:`~impasto.plan.Plan` made for them (:meth:`Runner.plan`, or
:func:`impasto.estimate.plan` from the images' sizes before they are loaded):

1. colour preservation prepares the images the network sees (:mod:`impasto.core.color`): ``luminance`` gives
   it gray images (the style's luminance matched to the content's), ``histogram`` recolours the styles;
2. the method runs as the plan says (:mod:`impasto.methods`);
3. the result gets the content's chroma back (``luminance``) and, with masks, the content outside every
   region (:func:`impasto.core.regions.composite`). An interrupted or failed run's image is finished the same
   way before it reaches the caller.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import torch

from . import estimate, methods
from .core import color, speed
from .core.device import pick_device
from .core.progress import Callback
from .core.regions import composite
from .errors import InputError, NonFiniteLossError, StylizeInterrupted
from .methods.base import Inputs
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
    """A configured style transfer: ``runner(content, styles, masks, callback, plan)`` returns the result.

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

    def __call__(
        self,
        content: torch.Tensor,
        styles: Sequence[torch.Tensor],
        masks: torch.Tensor | None = None,
        callback: Callback | None = None,
        plan: Plan | None = None,
        start: torch.Tensor | None = None,
        start_step: int = 0,
        regions: tuple[torch.Tensor, torch.Tensor] | None = None,
        temporal: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """Stylize ``content`` (1, 3, H, W) with ``styles``; ``masks`` (K, 1, H, W), one per style, assign
        regions. Returns (1, 3, H, W) on the CPU in [0, 1]. Without ``plan``, one is made for these tensors.
        ``start`` (an image of the run, e.g. an intermediate one) and ``start_step`` (the steps it had done)
        resume a run: only the remaining steps run. ``temporal`` (video, optimization methods): the previous
        frame's result warped to this one (1, 3, H, W) and the flow's per-pixel weights (1, 1, H, W), the
        target of the temporal loss (:class:`~impasto.methods.terms.TemporalTerm`).

        ``regions``: label-matched (content (K, 1, H, W), style (K, 1, h, w)) regions of the photo methods
        (:func:`impasto.core.regions.match_regions`), region k of the content styled by region k of the one
        style image."""
        o = self.options
        takes = methods.METHODS[o.method].styles  # the style images the method takes: many, one or none
        if not styles and takes != "none":
            raise InputError("at least one style image is needed")
        if styles and takes == "none":
            raise InputError("a trained model (--model) takes no style image: its style is in its weights")
        if takes == "one" and len(styles) != 1:
            raise InputError(f"--method {o.method} takes one style image, got {len(styles)}")
        if regions is not None:
            if regions[0].shape[0] != regions[1].shape[0]:
                raise InputError(f"{regions[0].shape[0]} content region(s) for {regions[1].shape[0]} style regions")
            if tuple(regions[0].shape[-2:]) != tuple(content.shape[-2:]):
                raise InputError(f"regions are {tuple(regions[0].shape[-2:])}, the content {tuple(content.shape[-2:])}")
        if masks is not None:
            if takes == "none" and masks.shape[0] != 1:
                raise InputError(f"{masks.shape[0]} masks for one trained model: give one mask (white: stylized)")
            if takes != "none" and masks.shape[0] != len(styles):
                raise InputError(f"{masks.shape[0]} mask(s) for {len(styles)} style image(s): give one per style")
            if o.style_blend is not None:
                raise InputError("--style-blend does not apply with masks: each region takes its own style")
            if tuple(masks.shape[-2:]) != tuple(content.shape[-2:]):
                raise InputError(f"masks are {tuple(masks.shape[-2:])}, the content {tuple(content.shape[-2:])}")
        if o.style_blend is not None and len(o.style_blend) != len(styles):
            raise InputError(f"--style-blend has {len(o.style_blend)} weights for {len(styles)} style images")
        plan = plan if plan is not None else self.plan(content, styles)
        net_content, net_styles = prepare(content, styles, o.preserve_color)
        if start is not None and o.preserve_color == "luminance":  # the network sees luminance only
            start = color.gray(start)
        if temporal is not None and o.preserve_color == "luminance":
            temporal = (color.gray(temporal[0]), temporal[1])
        try:
            inputs = Inputs(net_content, net_styles, masks, start, start_step, temporal=temporal)
            if regions is not None:
                inputs.regions, inputs.style_regions = regions
            t = time.perf_counter()
            out = self.method.run(inputs, plan, callback)
            if start is None and temporal is None:  # a whole run, as planned: later estimates follow it
                speed.observe(o.method, plan.device, plan.precision, plan.seconds / plan.factor,
                              time.perf_counter() - t)  # fmt: skip
        except (StylizeInterrupted, NonFiniteLossError) as stop:
            raise stop.with_image(finish(stop.image, content, o.preserve_color, masks)) from None
        return finish(out, content, o.preserve_color, masks)
