"""The one small interface every method implements, and what it is given.

A method is built once from :class:`~impasto.options.Options` (networks loaded, nothing else) and then
``run`` on any number of :class:`Inputs` with the :class:`~impasto.plan.Plan` made for them. It reports each
step through the callback and keeps the loss history of its last run in ``history`` (empty for one-pass
methods). It raises :class:`~impasto.errors.StylizeInterrupted` or
:class:`~impasto.errors.NonFiniteLossError` carrying an image the size of the content.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import torch

from ..core.progress import Callback
from ..plan import Plan


@dataclass
class Inputs:
    """What a method stylizes, as the network sees it (after colour preservation), at the plan's final size."""

    content: torch.Tensor  # (1, 3, H, W) in [0, 1]
    styles: list[torch.Tensor] = field(default_factory=list)  # (1, 3, h, w) each, at the style size
    masks: torch.Tensor | None = None  # (K, 1, H, W) in [0, 1]: region k takes style k
    #: Resume: an image to start from (any size; resized to the scale ``start_step`` falls in) and the steps
    #: already done; the run does the remaining steps and numbers them on from ``start_step``.
    start: torch.Tensor | None = None
    start_step: int = 0
    # Label-matched regions (photo methods, one style image): content region k takes style region k.
    regions: torch.Tensor | None = None  # (K, 1, H, W) in [0, 1] at the content's size
    style_regions: torch.Tensor | None = None  # (K, 1, h, w) in [0, 1] at the style image's size
    #: Video (optimization methods): the previous frame's result warped to this frame (1, 3, H, W) and the
    #: per-pixel weights of the flow's consistency check (1, 1, H, W), for the temporal loss term.
    temporal: tuple[torch.Tensor, torch.Tensor] | None = None


class Method(Protocol):
    """A style transfer method: ``run(inputs, plan, callback) -> (1, 3, H, W) image on the CPU``."""

    history: list[dict[str, float]]

    def run(self, inputs: Inputs, plan: Plan, callback: Callback | None = None) -> torch.Tensor: ...
