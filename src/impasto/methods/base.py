"""The one small interface every method implements, and the run it is given.

A method is built once from :class:`~impasto.options.Options` (networks loaded, nothing else) and then
``run`` on any number of :class:`Stylization` objects, each carrying its :class:`~impasto.plan.Plan`. It
reports each step through the callback and keeps the loss history of its last run in ``history`` (empty for
one-pass methods). It raises :class:`~impasto.errors.StylizeInterrupted` or
:class:`~impasto.errors.NonFiniteLossError` carrying an image the size of the content.
"""

from __future__ import annotations

from dataclasses import KW_ONLY, dataclass, field
from typing import Protocol

import torch

from ..core.progress import Callback
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
