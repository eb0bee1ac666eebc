"""What a run reports after each loss evaluation: :class:`StepInfo`, consumed alike by the CLI's progress
bar, the loss history, the plot and the web app."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch


@dataclass
class StepInfo:
    """One loss evaluation (or Adam step): its number, the weighted total and each term's weighted value."""

    step: int
    total: int
    loss: float
    parts: dict[str, float]  # loss term name -> weighted value, in the order the terms were built
    elapsed: float
    image: torch.Tensor  # the evaluated image, (1, 3, H, W), detached; do not modify

    def as_row(self) -> dict[str, float]:
        """The numbers of this step, for a loss history."""
        return {"step": self.step, "loss": self.loss, **self.parts, "seconds": round(self.elapsed, 4)}


#: A progress callback.
Callback = Callable[[StepInfo], None]
