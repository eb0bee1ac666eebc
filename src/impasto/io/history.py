"""Loss histories: one row per loss evaluation (``step``, ``loss``, one column per loss term, ``seconds``)."""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from .atomic import write_text

#: Columns of a row that are not loss terms.
NOT_TERMS = ("step", "loss", "seconds")


def term_names(history: Sequence[Mapping[str, float]]) -> list[str]:
    """The loss terms a history records, in the order of its rows' columns."""
    names: dict[str, None] = {}
    for row in history:
        names.update(dict.fromkeys(k for k in row if k not in NOT_TERMS))
    return list(names)


def history_text(history: Sequence[Mapping[str, float]], suffix: str) -> str:
    """A history as JSON (``.json``) or CSV (any other suffix; columns step, loss, the terms, seconds)."""
    if suffix.lower() == ".json":
        return json.dumps(list(history), indent=1)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=["step", "loss", *term_names(history), "seconds"], restval="")
    writer.writeheader()
    writer.writerows(history)
    return buf.getvalue()


def write_history(path: str | os.PathLike, history: Sequence[Mapping[str, float]]) -> Path:
    """Write a loss history as JSON or CSV (by the file's extension), atomically."""
    path = Path(path)
    return write_text(path, history_text(history, path.suffix))
