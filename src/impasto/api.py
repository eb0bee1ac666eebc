"""The public Python API: :func:`stylize` takes paths, PIL images, tensors or arrays and returns a PIL image.

Every front end (the CLI, batch mode, the web app) goes through these functions: :func:`plan` sizes a run
from the images' sizes alone, :func:`prepare` checks and loads everything a run needs (refusing what cannot
fit in memory before anything is loaded at the output size), :func:`run` runs it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from . import estimate
from .core.malloc import tune_allocator
from .core.progress import Callback
from .core.sizes import resize_tensor
from .errors import InputError, OutputError
from .io.atomic import write_bytes
from .io.images import ImageLike, image_size, load_image, open_image, tensor_to_pil
from .io.masks import load_masks
from .io.models import describe, load_model
from .methods.transformer import onnx_bytes, onnx_difference
from .options import Options, make_options
from .plan import Plan, check
from .runner import Runner
from .training import Trainer, TrainInfo, TrainingInterrupted, TrainOptions, TrainResult, make_train_options
from .version import __version__

__all__ = [
    "Prepared", "Runner", "TrainInfo", "TrainOptions", "TrainResult", "TrainingInterrupted", "as_list",
    "check_onnx", "export_onnx", "make_train_options", "metadata", "model_info", "plan", "prepare", "run", "stylize",
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
    return meta


def as_list(style: ImageLike | Sequence[ImageLike] | None, options: Options | None = None) -> list[ImageLike]:
    """One style or several, as a list; at least one (none with a trained model, ``options.method == "model"``)."""
    styles = [] if style is None else list(style) if isinstance(style, (list, tuple)) else [style]
    if options is not None and options.method == "model":
        if styles:
            raise InputError("a trained model (--model) takes no style image: its style is in its weights")
        return styles
    if not styles:
        raise InputError("at least one style image is needed (or a trained model: model=FILE / --model FILE)")
    return styles


def plan(content: ImageLike, style: ImageLike | Sequence[ImageLike] | None, options: Options) -> Plan:
    """The plan of a run (scales, tiles, memory, time) from the images' sizes, without decoding pixels.
    Not checked: see :func:`impasto.plan.check` (``--dry-run`` prints plans that do not fit, too)."""
    return estimate.plan(options, image_size(content), [image_size(s) for s in as_list(style, options)])


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


def prepare(
    content: ImageLike,
    style: ImageLike | Sequence[ImageLike] | None,
    options: Options,
    masks: torch.Tensor | None = None,
    planned: Plan | None = None,
) -> Prepared:
    """Check and load everything a run needs. The plan (``planned``, or one made from the images' sizes) is
    checked against available memory before any image is loaded at the output size.

    ``masks`` (K, 1, H, W) in [0, 1], one per style, overrides the mask files named in ``options``.
    """
    styles = as_list(style, options)
    if options.style_blend is not None and len(options.style_blend) != len(styles):
        raise InputError(f"--style-blend has {len(options.style_blend)} weights for {len(styles)} style images")
    p = check(planned if planned is not None else plan(content, styles, options))
    content_t = load_image(content, options.size, "content image")
    style_ts = [load_image(s, options.style_size(), "style image") for s in styles]
    if options.init not in ("content", "noise", "style"):
        open_image(options.init)  # a bad start image fails here, not after the targets are computed
    hw = tuple(content_t.shape[-2:])
    if masks is None:
        masks = load_masks(hw, max(1, len(style_ts)), options.masks, options.mask_map, options.mask_colors)
    else:
        masks = _mask_tensor(masks, hw)
    if tuple(p.scales[-1].hw) != hw:  # sizes that a file's header got wrong: plan the loaded tensors
        h, w = hw
        p = check(estimate.plan(options, (w, h), [(s.shape[-1], s.shape[-2]) for s in style_ts], device=p.device))
    return Prepared(options, content_t, style_ts, masks, p)


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
    return runner(prepared.content, prepared.styles, prepared.masks, callback, prepared.plan)


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
    callback: Any = None,
    checkpoint: str | os.PathLike | None = None,
    samples: str | os.PathLike | None = None,
    history: str | os.PathLike | None = None,
    warn: Any = None,
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
    the steps it took).
    """
    tune_allocator()
    if max_minutes is not None and not (isinstance(max_minutes, (int, float)) and max_minutes > 0):
        raise InputError(f"--minutes must be a number > 0, got {max_minutes!r}")
    kw = {"checkpoint": checkpoint, "samples": samples, "history": history, "warn": warn}
    if resume is not None:
        extra = {k: v for k, v in options.items() if v is not None and k not in ("steps", "epochs")}
        if extra:
            raise InputError(f"--resume continues with the checkpoint's options; drop {', '.join(sorted(extra))} "
                             "(only --steps or --epochs may be given, to extend it)")  # fmt: skip
        trainer = Trainer.resume(resume, style, output, data, options.get("steps"), options.get("epochs"), **kw)
    elif output is None:
        raise InputError("give the model file to write (-o MODEL.pt)")
    else:
        trainer = Trainer(style, output, make_train_options(**options), data, **kw)
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
