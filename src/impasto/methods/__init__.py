"""Style transfer methods, one module each, behind one interface (:class:`~impasto.methods.base.Method`).

:func:`create` builds the method an :class:`~impasto.options.Options` names. Adding a method: a module here
with a class that has ``run(stylization, callback=...)`` and ``history``, and one line in :data:`METHODS` (its
:class:`MethodSpec`: how to build it and what a front end must ask the user for).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from ..options import Options
from .adain import FastMethod
from .base import Method, Stylization
from .coarse_to_fine import CoarseToFine
from .gatys import Gatys
from .photo_fast import PhotoFast
from .transformer import ModelMethod


@dataclass(frozen=True)
class MethodSpec:
    """A method: how to build it from options and a device, and the inputs a front end must ask for."""

    build: Callable[[Options, torch.device | None], Method]
    iterative: bool = True  # optimizes over steps (False: one feed-forward pass)
    styles: str = "many"  # style images it takes: "many" (one or more), "one", or "none"
    files: tuple[str, ...] = ()  # options naming input files it needs (uploaded by a web user), e.g. "model"


#: Method name (``--method``) -> its spec.
METHODS: dict[str, MethodSpec] = {
    "gatys": MethodSpec(lambda options, device: CoarseToFine(Gatys(options, device))),
    "fast": MethodSpec(FastMethod, iterative=False),
    "model": MethodSpec(ModelMethod, iterative=False, styles="none", files=("model",)),
    # Gatys + PhotoTerm + label regions
    "photo": MethodSpec(lambda options, device: CoarseToFine(Gatys(options, device)), styles="one"),
    "photo-fast": MethodSpec(PhotoFast, iterative=False, styles="one"),
}


def create(options: Options, device: torch.device | None = None) -> Method:
    """The method ``options.method`` names, built (networks loaded) for ``device`` (default: the options')."""
    return METHODS[options.method].build(options, device)


__all__ = ["METHODS", "Method", "MethodSpec", "Stylization", "create"]
