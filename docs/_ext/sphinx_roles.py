"""Griffe extension for the API reference: the docstrings use Sphinx roles (:func:`stylize`,
:class:`~impasto.training.TrainResult`); MkDocs renders Markdown, so each role becomes a code span of its name."""

from __future__ import annotations

import re
from typing import Any

import griffe

_ROLE = re.compile(r":(?:func|class|meth|mod|data|attr|exc|obj):`~?([^`]+)`")


class SphinxRoles(griffe.Extension):
    """Rewrite Sphinx cross-reference roles in every docstring as Markdown code spans."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = _ROLE.sub(r"`\1`", obj.docstring.value)
