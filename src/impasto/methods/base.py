"""The one small interface every method implements, and the run it is given.

A method is built once from :class:`~impasto.options.Options` (networks loaded, nothing else) and then
``run`` on any number of :class:`Stylization` objects, each carrying its :class:`~impasto.plan.Plan`. It
reports each step through the callback and keeps the loss history of its last run in ``history`` (empty for
one-pass methods). It raises :class:`~impasto.errors.StylizeInterrupted` or
:class:`~impasto.errors.NonFiniteLossError` carrying an image the size of the content.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import KW_ONLY, dataclass, field
from typing import Protocol

import torch

from ..core.progress import Callback
from ..errors import InputError
from ..options import Options
from ..plan import Plan


@dataclass
class Stylization:
    """One run's inputs, the same object from :func:`impasto.api.prepare` through the
    :class:`~impasto.runner.Runner` to a method's ``run``: the images at the plan's final size, the regions,
    where a resumed run starts, a video frame's temporal target, the plan and the options.

    :func:`impasto.api.prepare` makes and checks it; the runner hands the method a copy as the network sees it
    (after colour preservation, with its plan filled in)."""

    content: torch.Tensor  # (1, 3, H, W) in [0, 1]
    styles: list[torch.Tensor] = field(default_factory=list)  # (1, 3, h, w) each, at the style size
    masks: torch.Tensor | None = None  # (K, 1, H, W) in [0, 1]: region k takes style k
    _: KW_ONLY
    #: Label-matched regions (photo methods, one style image): content region k (K, 1, H, W) takes style region
    #: k (K, 1, h, w), each in [0, 1] at its image's size (:func:`impasto.core.regions.match_regions`).
    regions: tuple[torch.Tensor, torch.Tensor] | None = None
    #: Resume: an image to start from (any size; resized to the scale ``start_step`` falls in) and the steps
    #: already done; the run does the remaining steps and numbers them on from ``start_step``.
    start: torch.Tensor | None = None
    start_step: int = 0
    #: Video (optimization methods): the previous frame's result warped to this frame (1, 3, H, W) and the
    #: per-pixel weights of the flow's consistency check (1, 1, H, W), for the temporal loss term.
    temporal: tuple[torch.Tensor, torch.Tensor] | None = None
    plan: Plan | None = None  # None: the runner plans these tensors
    options: Options | None = None  # what :func:`impasto.api.run` builds a runner from when given none


class Method(Protocol):
    """A style transfer method: ``run(stylization, callback=...) -> (1, 3, H, W) image on the CPU``, following
    ``stylization.plan``."""

    history: list[dict[str, float]]

    def run(self, stylization: Stylization, *, callback: Callback | None = None) -> torch.Tensor: ...


@dataclass(frozen=True)
class Work:
    """One scale of a run as the planner (:mod:`impasto.estimate`) lays it out, what a method's cost is
    estimated from: the picture, the pixels processed at once, the tiles and their passes."""

    hw: tuple[int, int]  # the picture's (height, width) at this scale
    steps: int  # loss evaluations at this scale (0 for one-pass methods)
    area: int  # pixels processed at once: the picture, or its largest tile
    tile: int | None  # tile side, None: the whole picture at once
    passes: int  # passes over the tiles (1 untiled)
    pass_pixels: tuple[int, ...]  # pixels processed in each pass
    style_pixels: int  # pixels of the largest style image at this scale
    device: str
    precision: str

    @property
    def picture(self) -> int:
        """Pixels of the picture."""
        return self.hw[0] * self.hw[1]


def no_checks(options: Options) -> None:
    """A method whose options need no checks beyond each option's own."""


@dataclass(frozen=True)
class MethodSpec:
    """Everything impasto knows of one method, in the method's module; :data:`impasto.methods.METHODS` lists them.

    ``build`` makes the method from options and a device (an iterative method's build returns its one-scale
    :class:`~impasto.methods.gatys.Gatys` engine, which :class:`~impasto.methods.coarse_to_fine.CoarseToFine`
    runs over the plan's scales and tiles). ``check`` raises :class:`~impasto.errors.InputError` (one line) on
    options this method cannot take; :func:`impasto.options.validate` calls it after each option's own checks.
    ``cost`` gives (peak bytes, seconds) of one scale of a run (:class:`Work`) before any run was observed.
    """

    name: str  # as users name it: --method NAME
    build: Callable[[Options, torch.device | None], Method]
    cost: Callable[[Options, Work], tuple[int, float]]
    check: Callable[[Options], None] = no_checks
    iterative: bool = True  # optimizes over steps (False: one feed-forward pass)
    styles: str = "many"  # style images it takes: "many" (one or more), "one", or "none"
    files: tuple[str, ...] = ()  # options naming input files it needs (uploaded by a web user), e.g. "model"
    tileable: bool = True  # may run in tiles when the picture does not fit in memory
    precision: str | None = None  # the precision it always runs in (None: the options')
    #: Its run time over what :attr:`cost` predicts before any run of it was observed on this machine.
    first_run_factor: float = 1.0


# -- checks several methods share (each method's ``check`` calls those that apply to it) ------------------------
def refuse_model(options: Options) -> None:
    """A method other than ``model``: a model file names the method."""
    if options.model is not None:
        raise InputError(f"--model cannot be combined with --method {options.method} (the model is the method)")


def refuse_label_maps(options: Options) -> None:
    """A method without label-matched regions."""
    if options.content_seg is not None:
        raise InputError("--content-seg/--style-seg need --method photo or photo-fast (use --mask for gatys/fast)")


def refuse_photo_weight(options: Options) -> None:
    """A method without the photorealism regularizer."""
    if options.photo_weight > 0:
        raise InputError("--photo-weight needs --method photo (the optimization with the photorealism regularizer)")


def check_photorealistic(options: Options) -> None:
    """The photorealistic methods: label maps instead of masks, one style image, the whole picture at once."""
    masks = options.masks or options.mask_map is not None
    if options.content_seg is not None and masks:
        raise InputError("label maps (--content-seg/--style-seg) and --mask/--mask-map cannot be combined")
    if masks:
        raise InputError(f"--method {options.method} takes label maps (--content-seg/--style-seg), not "
                         "--mask/--mask-map")  # fmt: skip
    if options.tile:
        raise InputError(f"--method {options.method} does not run in tiles (the matting Laplacian couples the whole "
                         "picture); use --tile 0, --start-size or a smaller --size")  # fmt: skip
    if options.style_blend is not None:
        raise InputError(f"--method {options.method} takes one style image (no --style-blend)")
