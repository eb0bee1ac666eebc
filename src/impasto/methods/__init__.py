"""Style transfer methods, one module each, named as users name them, behind one interface
(:class:`~impasto.methods.base.Method`).

Each method's module owns its :class:`~impasto.methods.base.MethodSpec` (``SPEC``): how it is built, which
options it refuses (``check``), what it costs (``cost``), the style images it takes. :data:`METHODS` registers
them, one line each; :func:`create` builds the one an :class:`~impasto.options.Options` names. Adding a method:
a module here with a ``SPEC`` and one line in :data:`METHODS` (docs/architecture.md, "Adding a method").
"""

from __future__ import annotations

import torch

from ..options import Options, register_method
from . import fast, gatys, model, photo, photo_fast
from .base import Method, MethodSpec, Stylization, Work
from .coarse_to_fine import CoarseToFine


def register(*specs: MethodSpec) -> dict[str, MethodSpec]:
    """The methods by name, each registered as a choice of ``--method`` with its checks
    (:func:`impasto.options.register_method`)."""
    for spec in specs:
        register_method(spec.name, spec.check)
    return {spec.name: spec for spec in specs}


#: Method name (``--method``) -> its spec, in the order front ends list them.
METHODS: dict[str, MethodSpec] = register(
    gatys.SPEC,
    fast.SPEC,
    model.SPEC,
    photo.SPEC,  # the Gatys optimization with the photorealism regularizer and label regions
    photo_fast.SPEC,
)


def create(options: Options, device: torch.device | None = None) -> Method:
    """The method ``options.method`` names, built (networks loaded) for ``device`` (default: the options'). An
    iterative method runs over the plan's scales and tiles (:class:`CoarseToFine`)."""
    spec = METHODS[options.method]
    method = spec.build(options, device)
    return CoarseToFine(method) if spec.iterative else method  # type: ignore[arg-type]


__all__ = ["METHODS", "Method", "MethodSpec", "Stylization", "Work", "create", "register"]
