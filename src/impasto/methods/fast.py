"""The fast method (``--method fast``): AdaIN's one forward pass (:mod:`impasto.methods.adain`) over the whole
picture, or over overlapping tiles with one transform for the whole picture when it does not fit in memory.

Its memory is the encoder's and decoder's inference activations (no backward pass); its time, one encoder and
decoder pass.
"""

from __future__ import annotations

import torch

from ..core.costs import MB, PICTURE_COPIES, RUNTIME_BYTES, VGG_FILE_BYTES, flops_per_pixel, flops_rate
from ..core.progress import Callback
from ..errors import InputError
from ..options import Options
from .adain import AdaIN, check_encoder, stylize_tiled
from .base import MethodSpec, Stylization, Work, refuse_label_maps, refuse_model, refuse_photo_weight

#: Peak bytes per pixel of the fast method (encoder and decoder, inference) in bf16 / fp16 (calibrated at
#: 1024-3072 px) and in fp32 with its Winograd convolutions (:mod:`impasto.core.winograd`; least squares over
#: CLI runs at 512 / 1024 / 1536 / 2048 px, 793 / 1759 / 2890 / 5378 MB: docs/design.md, "Winograd
#: convolutions"). Without Winograd fp32 took 1130; the difference is the heap's fragmentation more than the
#: transforms' buffers.
FAST_BYTES_PER_PIXEL = 340
FAST_FP32_BYTES_PER_PIXEL = 1600
#: Fixed memory of the fast method besides the runtime and the VGG file: encoder, decoder, bf16 copies.
FAST_FIXED_BYTES = 130 * MB


class FastMethod:
    """The fast method behind the :class:`~impasto.methods.base.Method` interface: the shared :class:`AdaIN`
    engine on the whole picture, or in the plan's tiles."""

    def __init__(self, options: Options, device: torch.device | None = None) -> None:
        self.options = options
        self.history: list[dict[str, float]] = []  # one pass: no loss history
        self.engine = AdaIN.shared(str(device) if device is not None else options.device, options.precision)

    def run(self, inputs: Stylization, *, callback: Callback | None = None) -> torch.Tensor:
        """Stylize ``inputs`` in one pass, whole or in the plan's tiles (masks are not combined with tiles)."""
        o, content = self.options, inputs.content
        tile = inputs.plan.scales[-1].tile
        if not tile or max(content.shape[-2:]) <= tile:
            return self.engine.stylize(content, inputs.styles, o.style_blend, o.strength, inputs.masks)
        if inputs.masks is not None:
            raise InputError("masks cannot be combined with tiles; use --tile 0 or a smaller --size")
        return stylize_tiled(self.engine, content, inputs.styles, tile, o.tile_overlap, o.tile_passes,
                             o.style_blend, o.strength)  # fmt: skip


def peak_bytes(area: int, picture: int, style_pixels: int, precision: str = "bf16") -> int:
    """Peak bytes of the fast method working on ``area`` pixels of a ``picture``-pixel image in ``precision``
    (fp32 and mixed run the networks in fp32)."""
    per_pixel = FAST_BYTES_PER_PIXEL if precision in ("bf16", "fp16") else FAST_FP32_BYTES_PER_PIXEL
    return int(RUNTIME_BYTES + VGG_FILE_BYTES + FAST_FIXED_BYTES + max(area, style_pixels) * per_pixel
               + picture * 12 * PICTURE_COPIES)  # fmt: skip


def seconds(pixels: float, device: str, precision: str) -> float:
    """Seconds of one encoder + decoder pass over ``pixels`` pixels."""
    rate = flops_rate(device, precision)
    encoder = flops_per_pixel(["relu4_1"])
    return pixels * 2.2 * encoder / rate  # the decoder costs about 1.2 encoders


def cost(options: Options, work: Work) -> tuple[int, float]:
    """(peak bytes, seconds) of one pass over the picture, whole or in tiles."""
    return peak_bytes(work.area, work.picture, work.style_pixels, work.precision), seconds(
        sum(work.pass_pixels), work.device, work.precision)  # fmt: skip


def check(options: Options) -> None:
    """The AdaIN network's limits; no model file, label maps or photorealism regularizer."""
    refuse_model(options)
    check_encoder(options)
    refuse_label_maps(options)
    refuse_photo_weight(options)


SPEC = MethodSpec("fast", build=FastMethod, cost=cost, check=check, iterative=False)
