"""The public Python API: :func:`stylize` takes paths, PIL images, tensors or arrays and returns a PIL image.

Every front end (the CLI, batch mode, the web app) goes through these functions: :func:`plan` sizes a run
from the images' sizes alone, :func:`prepare` checks and loads everything a run needs (refusing what cannot
fit in memory before anything is loaded at the output size), :func:`run` runs it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from PIL import Image

from . import estimate
from .core.malloc import tune_allocator
from .core.progress import Callback
from .core.regions import match_regions
from .core.sizes import resize_tensor
from .errors import InputError
from .io.images import ImageLike, image_size, load_image, open_image, tensor_to_pil
from .io.labels import check_label_pair, load_label_map
from .io.masks import load_masks
from .options import Options, make_options
from .plan import Plan, check
from .runner import Runner
from .version import __version__

__all__ = ["Prepared", "Runner", "as_list", "metadata", "plan", "prepare", "run", "stylize", "stylize_tensors"]


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
    """One style or several, as a list; at least one."""
    styles = list(style) if isinstance(style, (list, tuple)) else [style]
    if not styles:
        raise InputError("at least one style image is needed")
    return styles


def _check_styles(options: Options, styles: Sequence[ImageLike]) -> None:
    if options.method in ("photo", "photo-fast") and len(styles) != 1:
        raise InputError(f"--method {options.method} takes one style image, got {len(styles)}")


def plan(content: ImageLike, style: ImageLike | Sequence[ImageLike], options: Options) -> Plan:
    """The plan of a run (scales, tiles, memory, time) from the images' sizes, without decoding pixels.
    Not checked: see :func:`impasto.plan.check` (``--dry-run`` prints plans that do not fit, too)."""
    styles = as_list(style)
    _check_styles(options, styles)
    return estimate.plan(options, image_size(content), [image_size(s) for s in styles])


def coarse_to_fine_hint(
    p: Plan, content: ImageLike, style: ImageLike | Sequence[ImageLike], options: Options
) -> str | None:
    """A one-line hint when coarse to fine would take far less time than a long single-scale plan ``p``."""
    sizes = [image_size(s) for s in as_list(style)]
    return estimate.coarse_to_fine_hint(options, p, image_size(content), sizes)


@dataclass
class Prepared:
    """A run ready to go: options, images loaded at their working sizes, region masks, and its plan."""

    options: Options
    content: torch.Tensor
    styles: list[torch.Tensor]
    masks: torch.Tensor | None
    plan: Plan
    regions: tuple[torch.Tensor, torch.Tensor] | None = None  # label-matched (content, style) regions


def prepare(
    content: ImageLike,
    style: ImageLike | Sequence[ImageLike],
    options: Options,
    masks: torch.Tensor | None = None,
    planned: Plan | None = None,
) -> Prepared:
    """Check and load everything a run needs. The plan (``planned``, or one made from the images' sizes) is
    checked against available memory before any image is loaded at the output size.

    ``masks`` (K, 1, H, W) in [0, 1], one per style, overrides the mask files named in ``options``.
    """
    styles = as_list(style)
    _check_styles(options, styles)
    if options.style_blend is not None and len(options.style_blend) != len(styles):
        raise InputError(f"--style-blend has {len(options.style_blend)} weights for {len(styles)} style images")
    p = check(planned if planned is not None else plan(content, styles, options))
    content_t = load_image(content, options.size, "content image")
    style_ts = [load_image(s, options.style_size(), "style image") for s in styles]
    if options.init not in ("content", "noise", "style"):
        open_image(options.init)  # a bad start image fails here, not after the targets are computed
    hw = tuple(content_t.shape[-2:])
    if masks is None:
        masks = load_masks(hw, len(style_ts), options.masks, options.mask_map, options.mask_colors)
    else:
        masks = _mask_tensor(masks, hw)
    regions = None
    if options.content_seg is not None:
        regions = label_regions(options, image_size(content), image_size(styles[0]), hw, tuple(style_ts[0].shape[-2:]))
    if tuple(p.scales[-1].hw) != hw:  # sizes that a file's header got wrong: plan the loaded tensors
        h, w = hw
        p = check(estimate.plan(options, (w, h), [(s.shape[-1], s.shape[-2]) for s in style_ts], device=p.device))
    return Prepared(options, content_t, style_ts, masks, p, regions)


def label_regions(
    options: Options,
    content_size: tuple[int, int],
    style_size: tuple[int, int],
    content_hw: tuple[int, ...],
    style_hw: tuple[int, ...],
) -> tuple[torch.Tensor, torch.Tensor] | None:
    """The label maps of ``options`` read, checked against their images' (width, height) as given, and matched
    by label (:func:`impasto.core.regions.match_regions`) at the working sizes; None when both maps have a
    single, common label (the whole image: the plain style loss)."""
    content_map = load_label_map(options.content_seg, "content label map")
    style_map = load_label_map(options.style_seg, "style label map")
    check_label_pair(content_map, style_map, content_size, style_size)
    if content_map.names == style_map.names and len(content_map.names) == 1:
        return None
    content_regions, style_regions, _ = match_regions(
        content_map.one_hot(content_hw[-2:]), content_map.names, style_map.one_hot(style_hw[-2:]), style_map.names
    )
    return content_regions, style_regions


def _mask_tensor(masks: torch.Tensor, hw: tuple[int, ...]) -> torch.Tensor:
    """Region masks given as a tensor, checked and resized to the content's (H, W)."""
    if not isinstance(masks, torch.Tensor) or masks.ndim != 4 or masks.shape[1] != 1 or masks.numel() == 0:
        raise InputError("masks must be a (K, 1, H, W) tensor in [0, 1], one region per style image")
    return resize_tensor(masks.float(), hw) if tuple(masks.shape[-2:]) != hw else masks.float()


def run(prepared: Prepared, callback: Callback | None = None, runner: Runner | None = None) -> torch.Tensor:
    """Run a prepared job; returns the (1, 3, H, W) result on the CPU. Pass a ``runner`` to reuse its networks
    across jobs (batch mode) or to read its ``history`` afterwards, also after an interruption."""
    tune_allocator()
    runner = runner if runner is not None else Runner(prepared.options)
    return runner(prepared.content, prepared.styles, prepared.masks, callback, prepared.plan, prepared.regions)


def stylize_tensors(
    content: ImageLike,
    style: ImageLike | Sequence[ImageLike],
    options: Options,
    callback: Callback | None = None,
    masks: torch.Tensor | None = None,
) -> torch.Tensor:
    """Run the method selected by ``options``; returns a (1, 3, H, W) tensor on the CPU."""
    return run(prepare(content, style, options, masks), callback)


def stylize(
    content: ImageLike,
    style: ImageLike | Sequence[ImageLike],
    *,
    preset: str = "default",
    callback: Callback | None = None,
    **options: Any,
) -> Image.Image:
    """Repaint ``content`` in the style of ``style`` (one image or a list, blended by ``style_blend``).

    Images may be file paths, PIL images, (3, H, W) / (1, 3, H, W) tensors (floats in [0, 1] or uint8) or
    (H, W, 3) numpy arrays (uint8 or floats in [0, 1]). ``options`` are fields of
    :class:`impasto.options.Options` (``size``, ``steps``, ``style_weight``, ``seed``, ...) and override the
    ``preset``. ``callback`` receives a :class:`impasto.core.progress.StepInfo` after every step.
    The returned image carries the options in ``image.info["impasto"]``.
    """
    opts = make_options(preset, **options)
    result = tensor_to_pil(stylize_tensors(content, style, opts, callback))
    result.info["impasto"] = metadata(opts, content, as_list(style))
    return result
