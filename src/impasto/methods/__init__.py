"""Style transfer methods, one module each, behind one interface (:class:`~impasto.methods.base.Method`).

:func:`create` builds the method an :class:`~impasto.options.Options` names. Adding a method: a module here
with a class that has ``run(inputs, plan, callback)`` and ``history``, and one line in :data:`METHODS`.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from ..options import Options
from .adain import FastMethod
from .base import Inputs, Method
from .coarse_to_fine import CoarseToFine
from .gatys import Gatys
from .photo_fast import PhotoFast

#: Method name (``--method``) -> its constructor from options and a device.
METHODS: dict[str, Callable[[Options, torch.device | None], Method]] = {
    "gatys": lambda options, device: CoarseToFine(Gatys(options, device)),
    "fast": FastMethod,
    "photo": lambda options, device: CoarseToFine(Gatys(options, device)),  # Gatys + PhotoTerm + label regions
    "photo-fast": PhotoFast,
}


def create(options: Options, device: torch.device | None = None) -> Method:
    """The method ``options.method`` names, built (networks loaded) for ``device`` (default: the options')."""
    return METHODS[options.method](options, device)


__all__ = ["METHODS", "Inputs", "Method", "create"]
