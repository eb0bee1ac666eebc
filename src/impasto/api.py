"""The public Python API: :func:`stylize` takes paths, PIL images, tensors or arrays and returns a PIL image.

Every front end (the CLI, batch mode, the web app) goes through these functions: :func:`plan` sizes a run
from the images' sizes alone, :func:`prepare` checks and loads everything a run needs (refusing what cannot
fit in memory before anything is loaded at the output size), :func:`run` runs it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from PIL import Image, ImageDraw, ImageFont

from . import estimate
from .core import malloc
from .core.checks import Spec, check_arguments, check_fields
from .core.color import PRESERVE_COLOR
from .core.device import pick_device
from .core.progress import Callback
from .core.regions import match_regions
from .core.sizes import resize_tensor
from .core.speed import process_age
from .errors import InputError, OutputError
from .io import builtin
from .io.atomic import write_bytes
from .io.images import ImageLike, image_size, load_image, open_image, read_metadata, tensor_to_pil
from .io.labels import check_label_pair, load_label_map
from .io.masks import load_masks
from .io.models import describe, load_model
from .methods import METHODS, Stylization
from .methods.transformer import Stylizer, onnx_bytes, onnx_difference
from .options import _CHOICES as CHOICES
from .options import INIT_KINDS, PRESETS, Options, make_options, validate
from .plan import Plan, check
from .runner import Runner, finish
from .training import (
    LR_SCHEDULES,
    STYLE_ROWS,
    UNTIL_STOPPED,
    Trainer,
    TrainInfo,
    TrainingInterrupted,
    TrainOptions,
    TrainResult,
    make_train_options,
)
from .version import __version__

__all__ = [
    "LR_SCHEDULES", "STYLE_ROWS", "Runner", "Stylization", "TrainInfo", "TrainOptions", "TrainResult",
    "TrainingInterrupted", "as_list", "catalog", "check_onnx", "checkpoint_step", "export_onnx", "make_train_options",
    "metadata", "model_info", "plan", "plan_sizes", "prepare", "preview", "run", "style_sheet", "stylize",
    "stylize_tensors", "train",
]  # fmt: skip


def _describe(image: ImageLike) -> str:
    if isinstance(image, (str, os.PathLike)):
        return os.path.basename(os.fspath(image))
    return type(image).__name__


def metadata(options: Options, content: ImageLike, styles: Sequence[ImageLike]) -> dict[str, Any]:
    """What an output records so that it can be reproduced (with a trained model: its style and sha256)."""
    meta = {
        "impasto": __version__,
        "options": options.to_dict(),
        "content": _describe(content),
        "styles": [_describe(s) for s in styles],
        "torch": torch.__version__,
    }
    if options.model:
        m = load_model(options.model)
        meta["model"] = {"name": os.path.basename(options.model), "style": m.metadata.get("style"),
                         "step": m.step, "width": m.width}  # fmt: skip
        for key in ("source", "start"):  # built-in styles: where the weights come from; trained ones: their start
            if key in m.metadata:
                meta["model"][key] = m.metadata[key]
    return meta


def as_list(style: ImageLike | Sequence[ImageLike] | None, options: Options | None = None) -> list[ImageLike]:
    """One style or several, as a list, checked against ``options``: as many as its method takes
    (:class:`MethodSpec`'s ``styles``: one or more by default, exactly one, or none: a trained model's style is in
    its weights) and as ``style_blend`` has weights. Every front end's count of style images is checked here."""
    styles = [] if style is None else list(style) if isinstance(style, (list, tuple)) else [style]
    takes = METHODS[options.method].styles if options is not None and options.method in METHODS else "many"
    if takes == "none":
        if styles:
            raise InputError(f"--method {options.method} takes no style image: its style is in its weights")
        return styles
    if not styles:
        raise InputError("at least one style image is needed (or a trained model: model=FILE / --model FILE)")
    if takes == "one" and len(styles) != 1:
        raise InputError(f"--method {options.method} takes one style image, got {len(styles)}")
    _check_blend(options, len(styles))
    return styles


def _check_blend(options: Options | None, styles: int) -> None:
    """One ``style_blend`` weight per style image."""
    if options is not None and options.style_blend is not None and len(options.style_blend) != styles:
        raise InputError(f"--style-blend has {len(options.style_blend)} weights for {styles} style images")


def plan(content: ImageLike, style: ImageLike | Sequence[ImageLike] | None, options: Options) -> Plan:
    """The plan of a run (scales, tiles, memory, time) from the images' sizes, without decoding pixels.
    Not checked: see :func:`impasto.plan.check` (``--dry-run`` prints plans that do not fit, too)."""
    return estimate.plan(options, image_size(content), [image_size(s) for s in as_list(style, options)])


def plan_sizes(content: tuple[int, int], styles: Sequence[tuple[int, int]], options: Options) -> Plan:
    """The plan of a run from the images' (width, height) alone (a front end that has not uploaded them yet)."""
    as_list(list(styles), options)  # as many as the method takes and --style-blend weighs
    for w, h in [content, *styles]:
        if not (isinstance(w, int) and isinstance(h, int) and w > 0 and h > 0):
            raise InputError(f"image sizes must be positive whole numbers, got {w}x{h}")
    _check_blend(options, len(styles))
    return estimate.plan(options, content, list(styles))


def startup_seconds() -> float:
    """Seconds since this process started: what starting the program (Python, torch, impasto) took so far,
    which a run started the same way waits for again (``--dry-run`` counts it in the estimate)."""
    return process_age()


def catalog() -> dict[str, Any]:
    """What a front end can offer, from the options and methods themselves (a new method or option shows up
    without changes to the front end): each method (name, whether it optimizes over steps, the style images it
    takes and the options naming files it needs), the presets, every option's default and the choices of the
    options that have them."""
    methods = []
    for name in CHOICES["method"]:
        spec = METHODS.get(name)
        if spec is None:
            continue
        methods.append({"name": name, "iterative": spec.iterative, "styles": spec.styles, "files": list(spec.files)})
    presets = {name: {k: list(v) if isinstance(v, tuple) else v for k, v in values.items()}
               for name, values in PRESETS.items()}  # fmt: skip
    choices = {name: list(values) for name, values in CHOICES.items()}
    choices["preserve_color"] = list(PRESERVE_COLOR)
    return {"methods": methods, "presets": presets, "defaults": Options().to_dict(), "choices": choices}


def coarse_to_fine_hint(
    p: Plan, content: ImageLike, style: ImageLike | Sequence[ImageLike], options: Options
) -> str | None:
    """A one-line hint when coarse to fine would take far less time than a long single-scale plan ``p``."""
    sizes = [image_size(s) for s in as_list(style)]
    return estimate.coarse_to_fine_hint(options, p, image_size(content), sizes)


def prepare(
    content: ImageLike,
    style: ImageLike | Sequence[ImageLike] | None,
    options: Options,
    masks: torch.Tensor | None = None,
    planned: Plan | None = None,
    start: ImageLike | None = None,
    start_step: int | None = None,
) -> Stylization:
    """Check and load everything a run needs. The plan (``planned``, or one made from the images' sizes) is
    checked against available memory before any image is loaded at the output size.

    ``masks`` (K, 1, H, W) in [0, 1], one per style, overrides the mask files named in ``options``.
    ``start`` resumes a run from one of its images (an intermediate image written every few steps, an
    interrupted run's image) after ``start_step`` steps (default: the step recorded in the file, see
    :func:`checkpoint_step`): only the remaining steps run, at the scale that step falls in.
    """
    validate(options)
    styles = as_list(style, options)  # as many as the method takes, one blend weight each
    p = check(planned if planned is not None else plan(content, styles, options))
    content_t = load_image(content, options.size, "content image")
    style_ts = [load_image(s, options.style_size(), "style image") for s in styles]
    if options.init not in INIT_KINDS:
        open_image(options.init)  # a bad start image fails here, not after the targets are computed
    hw = tuple(content_t.shape[-2:])
    if masks is None:
        masks = load_masks(hw, max(1, len(style_ts)), options.masks, options.mask_map, options.mask_colors)
    else:
        masks = _mask_tensor(masks, hw, len(style_ts), options)
    regions = None
    if options.content_seg is not None:
        regions = label_regions(options, image_size(content), image_size(styles[0]), hw, tuple(style_ts[0].shape[-2:]))
    if tuple(p.scales[-1].hw) != hw:  # sizes that a file's header got wrong: plan the loaded tensors
        h, w = hw
        p = check(estimate.plan(options, (w, h), [(s.shape[-1], s.shape[-2]) for s in style_ts], device=p.device))
    prepared = Stylization(content_t, style_ts, masks, regions=regions, plan=p, options=options)
    if start is not None:
        prepared.start, prepared.start_step = _start(start, start_step, p, content_t)
    return prepared


def checkpoint_step(image: ImageLike) -> int | None:
    """The step an image written during a run records (``--save-every`` images, interrupted runs, the web app's
    previews), or None."""
    try:
        if isinstance(image, Image.Image):
            meta = image.info.get("impasto")
            meta = json.loads(meta) if isinstance(meta, (str, bytes)) else meta
        elif isinstance(image, (str, os.PathLike)):
            meta = read_metadata(image)
        else:
            return None
    except (OSError, ValueError):
        return None
    step = meta.get("step") if isinstance(meta, dict) else None
    return step if isinstance(step, int) and not isinstance(step, bool) and step >= 0 else None


def _start(start: ImageLike, start_step: int | None, p: Plan, content: torch.Tensor) -> tuple[torch.Tensor, int]:
    """The image and step a resumed run continues from, checked against the run's plan and content."""
    name = _describe(start)
    if not p.iterative:
        raise InputError(f"--resume needs an optimizing method: --method {p.method} runs in one pass")
    total = sum(s.steps for s in p.scales)
    step = checkpoint_step(start) if start_step is None else start_step
    if step is None:
        raise InputError(f"{name} records no step: give --resume-step N (the steps it had done)")
    if not isinstance(step, int) or isinstance(step, bool) or not 0 <= step <= total:
        raise InputError(f"--resume-step must be a whole number from 0 to {total} (the run's steps), got {step!r}")
    image = load_image(start, None, "resume image")
    (h, w), (sh, sw) = content.shape[-2:], image.shape[-2:]
    if abs(sw / sh - w / h) > 0.02 * (w / h) + 2 / min(sw, sh):  # not the run's picture at some scale
        raise InputError(f"cannot resume from {name}: it is {sw}x{sh}, the picture {w}x{h} (a tile or another image?)")
    return image, step


def preview(prepared: Stylization, image: torch.Tensor) -> torch.Tensor:
    """An image reported during a run (:class:`~impasto.core.progress.StepInfo`'s, at any scale) as the result
    would look: colour and unstyled regions put back as the runner does at the end. (1, 3, h, w) on the CPU."""
    hw = tuple(image.shape[-2:])
    content = prepared.content if tuple(prepared.content.shape[-2:]) == hw else resize_tensor(prepared.content, hw)
    masks = prepared.masks
    if masks is not None and tuple(masks.shape[-2:]) != hw:
        masks = resize_tensor(masks, hw)
    return finish(image, content, prepared.options.preserve_color if prepared.options else None, masks)


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


def _mask_tensor(masks: torch.Tensor, hw: tuple[int, ...], styles: int, options: Options) -> torch.Tensor:
    """Region masks given as a tensor, checked against the ``styles`` style images and ``options``, resized to
    the content's (H, W)."""
    if not isinstance(masks, torch.Tensor) or masks.ndim != 4 or masks.shape[1] != 1 or masks.numel() == 0:
        raise InputError("masks must be a (K, 1, H, W) tensor in [0, 1], one region per style image")
    trained = METHODS[options.method].styles == "none"  # a trained network: one region, stylized or not
    if trained and masks.shape[0] != 1:
        raise InputError(f"{masks.shape[0]} masks for one trained model: give one mask (white: stylized)")
    if not trained and masks.shape[0] != styles:
        raise InputError(f"{masks.shape[0]} mask(s) for {styles} style image(s): give one per style")
    if options.style_blend is not None:
        raise InputError("--style-blend does not apply with masks: each region takes its own style")
    return resize_tensor(masks.float(), hw) if tuple(masks.shape[-2:]) != hw else masks.float()


def tune_allocator() -> bool:
    """Keep freed memory in this process's heap for faster steps (see :func:`impasto.core.malloc.tune_allocator`):
    process-wide, so the entry points call it (the ``impasto`` command, the web app's workers, the cluster's
    actors), never a library call. Returns whether it was applied."""
    return malloc.tune_allocator()


def run(prepared: Stylization, callback: Callback | None = None, runner: Runner | None = None) -> torch.Tensor:
    """Run a prepared run (:func:`prepare`'s, or a copy of one with another content, start image or temporal
    target: a video's frames); returns the (1, 3, H, W) result on the CPU. Pass a ``runner`` to reuse its
    networks across runs (batch mode, video) or to read its ``history`` afterwards, also after an
    interruption."""
    if runner is None:
        if prepared.options is None:
            raise ValueError("a run without options needs a runner")
        runner = Runner(prepared.options)
    return runner(prepared, callback=callback)


def stylize_tensors(
    content: ImageLike,
    style: ImageLike | Sequence[ImageLike] | None,
    options: Options,
    callback: Callback | None = None,
    masks: torch.Tensor | None = None,
) -> torch.Tensor:
    """Run the method selected by ``options``; returns a (1, 3, H, W) tensor on the CPU."""
    return run(prepare(content, style, options, masks), callback)


def stylize(
    content: ImageLike,
    style: ImageLike | Sequence[ImageLike] | None = None,
    *,
    preset: str = "default",
    callback: Callback | None = None,
    **options: Any,
) -> Image.Image:
    """Repaint ``content`` in the style of ``style`` (one image or a list, blended by ``style_blend``), or
    with a trained per-style network: ``stylize(content, model="model.pt")`` (no style image).

    Images may be file paths, PIL images, (3, H, W) / (1, 3, H, W) tensors (floats in [0, 1] or uint8) or
    (H, W, 3) numpy arrays (uint8 or floats in [0, 1]). ``options`` are fields of
    :class:`impasto.options.Options` (``size``, ``steps``, ``style_weight``, ``seed``, ...) and override the
    ``preset``. ``callback`` receives a :class:`impasto.core.progress.StepInfo` after every step.
    The returned image carries the options in ``image.info["impasto"]``.
    """
    check_arguments(stylize, {"preset": preset, "callback": callback})  # the images: when loaded, before the run
    opts = make_options(preset, **options)
    result = tensor_to_pil(stylize_tensors(content, style, opts, callback))
    result.info["impasto"] = metadata(opts, content, as_list(style, opts))
    return result


# -- trained per-style networks --------------------------------------------------------------------------
def train(
    style: str | os.PathLike,
    output: str | os.PathLike | None,
    *,
    data: str | os.PathLike | None = None,
    resume: str | os.PathLike | None = None,
    callback: Callable[[TrainInfo], None] | None = None,
    checkpoint: str | os.PathLike | None = None,
    samples: str | os.PathLike | None = None,
    history: str | os.PathLike | None = None,
    warn: Callable[[str], None] | None = None,
    max_minutes: float | None = None,
    **options: Any,
) -> TrainResult:
    """Train a per-style network (Johnson et al. 2016) on the photos of ``data`` (a folder, searched
    recursively; default: the bundled examples) to paint like ``style``; writes the model file ``output``
    (None with ``resume``: the one the checkpoint records) and returns a :class:`~impasto.training.TrainResult`.

    ``options`` are fields of :class:`~impasto.training.TrainOptions` (``steps``, ``batch_size``, ``lr``,
    ``width``, ``style_weight``, ``seed``, ...). ``resume`` continues a checkpoint exactly, with its options
    (only ``steps``/``epochs`` may be given, to extend it). Checkpoints go to ``checkpoint`` (default
    ``OUTPUT.ckpt.pt``) every ``checkpoint_every`` steps and on Ctrl-C / SIGTERM, which raise
    :class:`~impasto.training.TrainingInterrupted`. ``callback`` gets a :class:`~impasto.training.TrainInfo`
    after every step. ``max_minutes`` ends the run after that long as if its steps were done (the model file records
    the steps it took); without ``steps`` or ``epochs`` it trains for the whole budget.
    """
    kw = {"checkpoint": checkpoint, "samples": samples, "history": history, "warn": warn}
    named = {"style": style, "output": output, "data": data, "resume": resume, "callback": callback,
             "max_minutes": max_minutes, **kw}  # fmt: skip
    check_arguments(train, named, {"max_minutes": Spec(lo=0.0, lo_open=True, flag="--minutes")})
    if resume is not None:
        extra = {k: v for k, v in options.items() if v is not None and k not in ("steps", "epochs")}
        if extra:
            raise InputError(f"--resume continues with the checkpoint's options; drop {', '.join(sorted(extra))} "
                             "(only --steps or --epochs may be given, to extend it)")  # fmt: skip
        extend = check_fields(TrainOptions, {k: v for k, v in options.items() if v is not None})
        tune_allocator()
        trainer = Trainer.resume(resume, style, output, data, extend.get("steps"), extend.get("epochs"), **kw)
    elif output is None:
        raise InputError("give the model file to write (-o MODEL.pt)")
    else:
        if max_minutes is not None and options.get("steps") is None and options.get("epochs") is None:
            options["steps"] = UNTIL_STOPPED  # a time budget alone: train for all of it
        train_options = make_train_options(**options)
        tune_allocator()
        trainer = Trainer(style, output, train_options, data, **kw)
    return trainer.run(callback, None if max_minutes is None else 60.0 * max_minutes)


def export_onnx(model: str | os.PathLike, output: str | os.PathLike, opset: int = 18) -> Path:
    """Write a trained model as ONNX (input ``image``: (N, 3, H, W) RGB in [0, 1], any H and W; output
    ``stylized``, the same shape, clamped to [0, 1]), atomically. Needs the ``onnx`` extra
    (``pip install impasto[onnx]``)."""
    return write_bytes(output, onnx_bytes(load_model(model), opset))


#: Largest difference allowed between onnxruntime and PyTorch on the exported network.
ONNX_TOLERANCE = 1e-3


def check_onnx(model: str | os.PathLike, onnx_file: str | os.PathLike) -> float | None:
    """Run an exported ONNX file with onnxruntime on a picture of odd size and compare it with PyTorch; returns
    the largest difference (None without onnxruntime). Raises :class:`OutputError` above
    :data:`ONNX_TOLERANCE`."""
    diff = onnx_difference(load_model(model), onnx_file)
    if diff is not None and not diff <= ONNX_TOLERANCE:
        raise OutputError(f"{onnx_file}: onnxruntime differs from PyTorch by {diff:.3g} (> {ONNX_TOLERANCE})")
    return diff


def model_info(model: str | os.PathLike) -> str:
    """One line about a model file: width, steps, style and its sha256, impasto version, losses."""
    return describe(load_model(model))


# -- the built-in styles -----------------------------------------------------------------------------------------
def style_sheet(content: ImageLike, tile: int = 256, columns: int = 7, device: str = "auto") -> Image.Image:
    """A contact sheet of the built-in styles (``model="builtin:N"``): ``content`` (its longest side ``tile``
    pixels) as it is, then stylized with each of the 26 styles, each labelled with the index to pass as
    ``builtin:N``, ``columns`` to a row."""
    if not isinstance(tile, int) or isinstance(tile, bool) or not 32 <= tile <= 2048:
        raise InputError(f"--tile must be a whole number from 32 to 2048, got {tile!r}")
    if not isinstance(columns, int) or isinstance(columns, bool) or not 1 <= columns <= builtin.STYLES + 1:
        raise InputError(f"--columns must be a whole number from 1 to {builtin.STYLES + 1}, got {columns!r}")
    x = load_image(content, tile, "content image")
    stylizer = Stylizer(load_model(f"{builtin.PREFIX}0"), pick_device(device))
    tiles = [("original", x)]
    for i in range(builtin.STYLES):
        stylizer.net.set_style([float(i == j) for j in range(builtin.STYLES)])  # type: ignore[union-attr]
        tiles.append((str(i), stylizer(x)))
    h, w = x.shape[-2:]
    pad, label = 6, 20
    rows = -(-len(tiles) // columns)
    sheet = Image.new("RGB", (columns * (w + pad) + pad, rows * (h + label + pad) + pad), "white")
    draw = ImageDraw.Draw(sheet)
    try:
        font: Any = ImageFont.load_default(size=15)
    except (TypeError, OSError, ImportError):  # Pillow without FreeType: its bitmap font
        font = ImageFont.load_default()
    for n, (name, t) in enumerate(tiles):
        r, c = divmod(n, columns)
        left, top = pad + c * (w + pad), pad + r * (h + label + pad)
        sheet.paste(tensor_to_pil(t), (left, top + label))
        draw.text((left + 2, top + 2), name, fill="black", font=font)
    sheet.info["impasto"] = {"impasto": __version__, "content": _describe(content), "sheet": "builtin styles 0-25",
                             "source": dict(builtin.SOURCE)}  # fmt: skip
    return sheet
