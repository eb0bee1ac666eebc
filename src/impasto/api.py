"""The public Python API: :func:`stylize` takes paths, PIL images or tensors and returns a PIL image."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

import torch
from PIL import Image

from . import __version__, estimate
from .device import tune_allocator
from .gatys import StepInfo
from .images import ImageLike, load_image, resize_tensor, tensor_to_pil
from .masks import load_masks
from .options import Options, make_options
from .pipeline import Stylizer


def _describe(image: ImageLike) -> str:
    if isinstance(image, (str, os.PathLike)):
        return os.path.basename(os.fspath(image))
    return type(image).__name__


def metadata(options: Options, content: ImageLike, styles: Sequence[ImageLike]) -> dict[str, Any]:
    """What an output records so that it can be reproduced."""
    return {
        "impasto": __version__,
        "options": options.to_dict(),
        "content": _describe(content),
        "styles": [_describe(s) for s in styles],
        "torch": torch.__version__,
    }


def as_list(style: ImageLike | Sequence[ImageLike]) -> list[ImageLike]:
    """One style or several, as a list."""
    if isinstance(style, (list, tuple)):
        return list(style)
    return [style]


def stylize_tensors(
    content: ImageLike,
    style: ImageLike | Sequence[ImageLike],
    options: Options,
    callback: Callable[[StepInfo], None] | None = None,
    masks: torch.Tensor | None = None,
) -> torch.Tensor:
    """Run the method selected by ``options``; returns a (1, 3, H, W) tensor on the CPU.

    ``masks`` (K, 1, H, W) in [0, 1], one per style, overrides the mask files named in ``options``.
    """
    styles = as_list(style)
    # Refuse what cannot fit in memory before loading anything at the output size.
    estimate.check(estimate.plan(options, estimate.image_size(content), [estimate.image_size(s) for s in styles]))
    content_t = load_image(content, options.size, "content image")
    style_longest = max(16, round(options.style_scale * options.size))
    style_ts = [load_image(s, style_longest, "style image") for s in styles]
    if masks is None:
        hw = tuple(content_t.shape[-2:])
        masks = load_masks(hw, len(style_ts), options.masks, options.mask_map, options.mask_colors)  # type: ignore[arg-type]
    elif tuple(masks.shape[-2:]) != tuple(content_t.shape[-2:]):
        masks = resize_tensor(masks.float(), tuple(content_t.shape[-2:]))
    return Stylizer(options)(content_t, style_ts, masks, callback)


def stylize(
    content: ImageLike,
    style: ImageLike | Sequence[ImageLike],
    *,
    preset: str = "default",
    callback: Callable[[StepInfo], None] | None = None,
    **options: Any,
) -> Image.Image:
    """Repaint ``content`` in the style of ``style`` (one image or a list, blended by ``style_blend``).

    Images may be file paths, PIL images or (3, H, W) / (1, 3, H, W) tensors in [0, 1]. ``options`` are
    fields of :class:`impasto.options.Options` (``size``, ``steps``, ``style_weight``, ``seed``, ...) and
    override the ``preset``. ``callback`` receives a :class:`impasto.gatys.StepInfo` after every step.
    The returned image carries the options in ``image.info["impasto"]``.
    """
    opts = make_options(preset, **options)
    tune_allocator()
    result = tensor_to_pil(stylize_tensors(content, style, opts, callback))
    result.info["impasto"] = metadata(opts, content, as_list(style))
    return result
