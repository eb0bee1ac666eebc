"""The model method (``--method model``, or ``--model FILE`` alone): a network trained by ``impasto train``, or a
built-in style (``builtin:N``), in one forward pass (:mod:`impasto.methods.transformer`), whole or in overlapping
tiles that share one set of instance-norm statistics.

``strength`` blends the result with the content in pixel space; masks keep the content outside their regions
(the runner composites them); colour preservation is the runner's, around any method. It takes no style image:
the style is in the weights. It always runs in fp32.
"""

from __future__ import annotations

import functools
import os

import torch

from ..core.costs import MB, PICTURE_COPIES, RUNTIME_BYTES, flops_rate
from ..core.device import pick_device
from ..core.progress import Callback
from ..errors import InputError
from ..io.models import load_model
from ..options import Options
from .base import MethodSpec, Stylization, Work, refuse_label_maps, refuse_photo_weight
from .transformer import DEFAULT_WIDTH, blend, flops_per_pixel, shared_stylizer

#: Peak bytes per pixel of a trained network's forward pass per unit of width (activations of the widest,
#: full-resolution layers; calibrated with ``benchmarks/bench_model.py --memory``), and its fixed memory.
MODEL_BYTES_PER_PIXEL_PER_WIDTH = 14
MODEL_FIXED_BYTES = 60 * MB


class ModelMethod:
    """A trained per-style network (``method="model"``, ``options.model``) behind the
    :class:`~impasto.methods.base.Method` interface: one pass, whole or in the plan's tiles. Style images are
    not used (the style is in the weights)."""

    def __init__(self, options: Options, device: torch.device | None = None) -> None:
        if not options.model:
            raise InputError("the model method needs a model file (--model FILE)")
        self.options = options
        self.history: list[dict[str, float]] = []  # one pass: no loss history
        self.stylizer = shared_stylizer(options.model, device or pick_device(options.device))

    def run(self, inputs: Stylization, *, callback: Callback | None = None) -> torch.Tensor:
        o, content = self.options, inputs.content
        tile = inputs.plan.scales[-1].tile
        if not tile or max(content.shape[-2:]) <= tile:
            out = self.stylizer(content)
        else:
            out = self.stylizer.tiled(content, tile, o.tile_overlap, o.tile_passes)
        return blend(out, content, o.strength)


def model_width(options: Options) -> int:
    """The width of the network in ``options.model`` (read from the file; the default if it cannot be read,
    which loading the model reports)."""
    if not options.model:
        return DEFAULT_WIDTH
    try:
        st = os.stat(options.model)
    except OSError:
        return DEFAULT_WIDTH
    return _model_width(os.path.realpath(options.model), st.st_mtime_ns, st.st_size)


@functools.lru_cache(maxsize=8)
def _model_width(path: str, mtime_ns: int, size: int) -> int:
    return load_model(path).width


def peak_bytes(area: int, picture: int, width: int) -> int:
    """Peak bytes of a trained network working on ``area`` pixels of a ``picture``-pixel image."""
    return int(RUNTIME_BYTES + MODEL_FIXED_BYTES + area * MODEL_BYTES_PER_PIXEL_PER_WIDTH * width
               + picture * 12 * PICTURE_COPIES)  # fmt: skip


def seconds(pixels: float, width: int, device: str) -> float:
    """Seconds of one pass of a trained network of ``width`` over ``pixels`` pixels (in fp32: it runs in fp32)."""
    rate = flops_rate(device, "fp32")
    return pixels * flops_per_pixel(width) / rate


def cost(options: Options, work: Work) -> tuple[int, float]:
    """(peak bytes, seconds) of one pass over the picture, whole or in tiles."""
    width = model_width(options)
    return peak_bytes(work.area, work.picture, width), seconds(sum(work.pass_pixels), width, work.device)


def check(options: Options) -> None:
    """A model file; no style images to recolour or blend, no label maps or photorealism regularizer."""
    if not options.model:
        raise InputError("--method model needs a model file: --model FILE (made by impasto train)")
    if options.preserve_color == "histogram":
        raise InputError("--preserve-color histogram recolours style images; a trained model has none: use luminance")
    if options.style_blend is not None:
        raise InputError("--style-blend does not apply to --model: a trained network has one style")
    refuse_label_maps(options)
    refuse_photo_weight(options)


SPEC = MethodSpec("model", build=ModelMethod, cost=cost, check=check, iterative=False, styles="none",
                  files=("model",), precision="fp32")  # fmt: skip
