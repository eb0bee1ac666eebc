"""The photorealistic optimization (``--method photo``; Luan et al., *Deep Photo Style Transfer*, CVPR 2017): the
Gatys optimization (:mod:`impasto.methods.gatys`) with the photorealism regularizer, a matting Laplacian term
(:class:`~impasto.methods.terms.PhotoTerm`, ``photo_weight``), and label-matched regions (``content_seg`` and
``style_seg``: content region k takes the style of style region k). ``--preset photo`` sets its options.

It runs on the Gatys engine, whose terms the options choose; what it adds is checked and estimated here: one
style image, label maps instead of masks, and the whole picture at once (the Laplacian couples every pixel).
"""

from __future__ import annotations

from ..options import Options
from . import gatys
from .base import MethodSpec, Work, check_photorealistic, refuse_model
from .gatys import Gatys

#: Building the matting Laplacian once per scale, and its product at every step (seconds per pixel on the
#: reference machine; measured with ``benchmarks/bench_photo.py``, rough). Its memory (25 non-zeros per pixel)
#: is the term's ``bytes_per_pixel``.
PHOTO_BUILD_SECONDS_PER_PIXEL = 4e-7
PHOTO_STEP_SECONDS_PER_PIXEL = 1.0e-7


def seconds(options: Options, pixels: float, steps: int, device: str, precision: str) -> float:
    """Seconds of ``steps`` loss evaluations over ``pixels`` pixels with the regularizer (when its weight is not
    0): built once, applied at every step."""
    per_step = gatys.step_seconds(options, pixels, device, precision)
    if options.photo_weight > 0:
        per_step += pixels * PHOTO_STEP_SECONDS_PER_PIXEL
        return per_step * (steps + 1) + pixels * PHOTO_BUILD_SECONDS_PER_PIXEL
    return per_step * (steps + 1)


def cost(options: Options, work: Work) -> tuple[int, float]:
    """(peak bytes, seconds) of one scale: the optimization's, with the regularizer's time."""
    return gatys.scale_cost(options, work, seconds)


def check(options: Options) -> None:
    """One style image, label maps (not masks), the whole picture; no model file."""
    refuse_model(options)
    check_photorealistic(options)


SPEC = MethodSpec("photo", build=Gatys, cost=cost, check=check, styles="one", tileable=False)
