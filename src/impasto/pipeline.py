"""One style transfer run, either method, with the artistic controls of Gatys et al. 2017 around it.

:class:`Stylizer` is built once from :class:`~impasto.options.Options` and then called on tensors:

1. colour preservation prepares the images the network sees (:mod:`impasto.color`): ``luminance`` gives it
   gray images (the style's luminance matched to the content's), ``histogram`` recolours the styles;
2. the method runs: optimization (:class:`~impasto.gatys.StyleTransfer`, guided Gram matrices per mask
   region) or AdaIN (:class:`~impasto.fast.FastStyleTransfer`, AdaIN per region), with the strength knob;
3. the result gets the content's chroma back (``luminance``) and, with masks, the content outside every
   region (:func:`impasto.masks.composite`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import lru_cache

import torch

from . import color, multiscale, tiling
from .device import pick_device
from .errors import InputError, NonFiniteLossError
from .fast import FastStyleTransfer
from .gatys import StepInfo, StyleTransfer, StylizeInterrupted
from .masks import composite
from .options import Options


@lru_cache(maxsize=2)
def fast_engine(device: str = "auto", precision: str = "auto") -> FastStyleTransfer:
    """A shared :class:`FastStyleTransfer` per device and precision (built once, style statistics cached)."""
    return FastStyleTransfer(pick_device(device), precision)


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


class Stylizer:
    """A configured style transfer: ``stylizer(content, styles, masks)`` returns the result tensor.

    Build it once and call it on many images: the networks (and, for the fast method, the style
    statistics) are kept. ``history`` holds the loss history of the last optimization run.
    """

    def __init__(self, options: Options, device: torch.device | None = None) -> None:
        self.options = options
        if options.method == "fast":
            dev = str(device) if device is not None else options.device
            self.engine: FastStyleTransfer | StyleTransfer = fast_engine(dev, options.precision)
        else:
            self.engine = StyleTransfer(options, device)

    @property
    def history(self) -> list[dict[str, float]]:
        return getattr(self.engine, "history", [])

    def __call__(
        self,
        content: torch.Tensor,
        styles: Sequence[torch.Tensor],
        masks: torch.Tensor | None = None,
        callback: Callable[[StepInfo], None] | None = None,
    ) -> torch.Tensor:
        """Stylize ``content`` (1, 3, H, W) with ``styles``; ``masks`` (K, 1, H, W), one per style, assign
        regions. Returns (1, 3, H, W) on the CPU in [0, 1]."""
        o = self.options
        if masks is not None:
            if masks.shape[0] != len(styles):
                raise InputError(f"{masks.shape[0]} mask(s) for {len(styles)} style image(s): give one per style")
            if o.style_blend is not None:
                raise InputError("--style-blend does not apply with masks: each region takes its own style")
            if tuple(masks.shape[-2:]) != tuple(content.shape[-2:]):
                raise InputError(f"masks are {tuple(masks.shape[-2:])}, the content {tuple(content.shape[-2:])}")
        net_content, net_styles = prepare(content, styles, o.preserve_color)
        if isinstance(self.engine, FastStyleTransfer):
            out = tiling.fast_run(self.engine, net_content, net_styles, o, masks)  # tiles when memory needs
            return finish(out, content, o.preserve_color, masks)
        self.engine.masks = masks
        try:
            out = multiscale.run(self.engine, net_content, net_styles, callback)  # scales and tiles per options
        except StylizeInterrupted as stop:
            raise StylizeInterrupted(finish(stop.image, content, o.preserve_color, masks)) from None
        except NonFiniteLossError as err:
            err.image = finish(err.image, content, o.preserve_color, masks)  # type: ignore[attr-defined]
            raise
        return finish(out, content, o.preserve_color, masks)
