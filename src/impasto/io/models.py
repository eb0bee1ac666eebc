"""Model files of trained per-style networks and training checkpoints: writing them atomically, reading them
back safely.

A file is PyTorch's zip format (``torch.save``) holding only plain data: a dict with ``format`` =
``"impasto-model"``, an integer ``format_version``, ``kind`` (``model`` or ``checkpoint``), ``metadata`` (one
JSON string: impasto's version, the architecture and width, the style image's name and sha256, every training
option, the step count, the losses) and ``state_dict`` (name -> float32 tensor). A checkpoint adds what
resuming needs: the optimizer's state dict, the random generators' states and the loss history.

Reading never unpickles arbitrary objects: :func:`torch.load` runs with ``weights_only=True``, whose unpickler
accepts tensors and plain containers only, so a pickle that would run code is refused before anything in it
runs. Anything that is not such a dict, that is truncated or corrupt, or that a newer impasto wrote, is an
:class:`~impasto.errors.InputError` in one line.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import warnings
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..errors import InputError
from ..version import __version__
from . import builtin
from .atomic import write_bytes

#: What the ``format`` entry of every impasto model file says.
FORMAT = "impasto-model"
#: The model file format this version writes and reads (a newer one is refused with a clear message).
FORMAT_VERSION = 1
#: The architecture the state dict belongs to: Johnson et al.'s network (trained from scratch) ...
ARCHITECTURE = "johnson2016-instancenorm"
#: ... or Dumoulin et al.'s conditional-instance-norm network (the built-in styles, and networks trained from them).
MULTISTYLE = "dumoulin2017-conditional-instancenorm"
ARCHITECTURES = (ARCHITECTURE, MULTISTYLE)
KINDS = ("model", "checkpoint")


@dataclass
class LoadedModel:
    """A model file's contents: the network's weights and what was recorded about them."""

    path: str
    kind: str
    metadata: dict[str, Any]
    state_dict: dict[str, torch.Tensor]
    optimizer: dict[str, Any] | None = None  # checkpoints only
    rng: dict[str, torch.Tensor] = field(default_factory=dict)  # checkpoints only
    history: list[dict[str, float]] = field(default_factory=list)  # checkpoints only

    @property
    def width(self) -> int:
        return int(self.metadata["width"])

    @property
    def step(self) -> int:
        return int(self.metadata.get("step", 0))


def model_bytes(
    state_dict: Mapping[str, torch.Tensor],
    metadata: Mapping[str, Any],
    kind: str = "model",
    optimizer: Mapping[str, Any] | None = None,
    rng: Mapping[str, torch.Tensor] | None = None,
    history: list[dict[str, float]] | None = None,
) -> bytes:
    """The bytes of a model file (or, with ``kind="checkpoint"``, of a checkpoint)."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}")
    payload: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "kind": kind,
        "metadata": json.dumps(dict(metadata), sort_keys=True, default=str),
        "state_dict": {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in state_dict.items()},
    }
    if kind == "checkpoint":
        payload["optimizer"] = optimizer if optimizer is not None else {}
        payload["rng"] = dict(rng or {})
        payload["history"] = json.dumps(history or [])
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    return buffer.getvalue()


def save_model(path: str | os.PathLike, state_dict: Mapping[str, torch.Tensor], metadata: Mapping[str, Any],
               kind: str = "model", **extra: Any) -> Path:  # fmt: skip
    """Write a model file (or checkpoint) atomically (:func:`impasto.io.atomic.write_bytes`)."""
    return write_bytes(path, model_bytes(state_dict, metadata, kind, **extra))


def _refuse(path: str, why: str) -> InputError:
    return InputError(f"{why}: {path}")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:160] if text else type(exc).__name__


def load_model(path: str | os.PathLike, kind: str | None = None) -> LoadedModel:
    """Read and check a model file (``kind``: require ``model`` or ``checkpoint``; None takes either).

    Raises :class:`InputError` in one line for a missing file, a file that is not an impasto model (another
    PyTorch file, an image, a pickle of Python objects, which is never executed), a truncated or corrupt file,
    or one written in a newer format.
    """
    if builtin.is_builtin(path):
        if kind == "checkpoint":
            raise InputError(f"not a training checkpoint: {path} names the built-in styles")
        return load_builtin(str(path))
    p = os.fspath(path)
    if not os.path.exists(p):
        raise InputError(f"model file not found: {p}")
    if os.path.isdir(p):
        raise InputError(f"expected a model file, got a folder: {p}")
    if os.path.getsize(p) == 0:
        raise InputError(f"model file is empty: {p}")
    try:
        with warnings.catch_warnings():  # torch warns about refused pickles on stderr: the error below says it
            warnings.simplefilter("ignore")
            data = torch.load(p, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "weights_only" in str(exc) or "Unsupported global" in str(exc) or "GLOBAL" in str(exc):
            raise _refuse(p, "refused: not an impasto model, it holds Python objects other than tensors and "
                          "plain data (loading it could run code; nothing in it was run)") from None  # fmt: skip
        raise _refuse(p, f"not an impasto model file, or corrupt ({_first_line(exc)})") from None
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile, KeyError, AttributeError) as exc:
        raise _refuse(p, f"not an impasto model file, or corrupt ({_first_line(exc)})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise _refuse(p, "not an impasto model file (a PyTorch file without impasto's model header)")
    version = data.get("format_version")
    if not isinstance(version, int):
        raise _refuse(p, "corrupt impasto model file (no format version)")
    if version > FORMAT_VERSION:
        raise _refuse(p, f"model file format {version} was written by a newer impasto; this version "
                      f"({__version__}) reads format {FORMAT_VERSION}: upgrade impasto")  # fmt: skip
    file_kind = data.get("kind")
    if file_kind not in KINDS:
        raise _refuse(p, f"corrupt impasto model file (unknown kind {file_kind!r})")
    if kind == "checkpoint" and file_kind != "checkpoint":
        raise _refuse(p, "not a training checkpoint (a finished model file has no optimizer state to resume)")
    try:
        metadata = json.loads(data["metadata"])
        state = data["state_dict"]
        history = json.loads(data.get("history", "[]"))
    except (KeyError, TypeError, json.JSONDecodeError) as exc:
        raise _refuse(p, f"corrupt impasto model file ({_first_line(exc)})") from None
    if not isinstance(metadata, dict) or metadata.get("architecture") not in ARCHITECTURES:
        raise _refuse(p, f"unsupported network in model file (expected architecture {' or '.join(ARCHITECTURES)})")
    if not isinstance(metadata.get("width"), int):
        raise _refuse(p, "corrupt impasto model file (no network width)")
    if not isinstance(state, dict) or not state:
        raise _refuse(p, "corrupt impasto model file (no weights)")
    for name, t in state.items():
        if not isinstance(name, str) or not isinstance(t, torch.Tensor) or t.dtype != torch.float32:
            raise _refuse(p, "corrupt impasto model file (weights are not float32 tensors)")
        if not torch.isfinite(t).all():
            raise _refuse(p, f"corrupt impasto model file (weight {name} has NaN or infinite values)")
    optimizer = data.get("optimizer") if file_kind == "checkpoint" else None
    rng = data.get("rng", {}) if file_kind == "checkpoint" else {}
    return LoadedModel(p, file_kind, metadata, state, optimizer, rng if isinstance(rng, dict) else {}, history)


def load_builtin(spec: str) -> LoadedModel:
    """The built-in styles as a model (:mod:`impasto.io.builtin`): the 26-style network's weights, and the spec's
    normalized style weights in the metadata (``style_weights``)."""
    weights = builtin.parse_spec(spec)
    name = builtin.canonical(spec)
    state = {k: torch.from_numpy(v.copy()) for k, v in builtin.read_weights().items()}
    metadata = {
        "architecture": MULTISTYLE,
        "width": int(state["contract.0.w"].shape[0]) if "contract.0.w" in state else 0,
        "styles": builtin.STYLES,
        "style_weights": weights,
        "style": {"name": name, "sha256": builtin.SHA256},
        "source": dict(builtin.SOURCE),
    }
    return LoadedModel(name, "model", metadata, state)


def model_stand_in(model: str | os.PathLike) -> Path:
    """A path standing for a ``--model`` value where outputs are named after it: the file itself, or for the
    built-in styles a file-name-safe name (``builtin19``, ``builtin3-0p5_12-0p5``)."""
    return Path(builtin.tag(str(model)) if builtin.is_builtin(model) else model)


def check_state_dict(model: LoadedModel, expected: Mapping[str, torch.Tensor]) -> None:
    """Raise :class:`InputError` unless the model's weights have exactly the names and shapes of ``expected``
    (the state dict of the network it claims to be)."""
    names, want = set(model.state_dict), set(expected)
    if names != want:
        odd = sorted(names ^ want)
        raise _refuse(model.path, f"corrupt impasto model file (weights {', '.join(odd[:3])} missing or unexpected)")
    for name, t in expected.items():
        if tuple(model.state_dict[name].shape) != tuple(t.shape):
            got = tuple(model.state_dict[name].shape)
            raise _refuse(model.path, f"corrupt impasto model file (weight {name} is {got}, expected {tuple(t.shape)})")


def describe(model: LoadedModel) -> str:
    """A few lines about a model file (for ``impasto export`` and errors)."""
    m = model.metadata
    style = m.get("style", {})
    if "source" in m:  # the built-in styles
        src = m["source"]
        return (f"built-in styles {style.get('name')}: Dumoulin et al.'s network, width {m.get('width')}, from "
                f"{src.get('package', '?')} (sha256 {str(style.get('sha256', '?'))[:12]}...)")  # fmt: skip
    losses = m.get("losses", {})
    parts = [f"{model.kind} {model.path}: width {m.get('width')}, {m.get('step', 0)} steps",
             f"style {style.get('name', '?')} (sha256 {str(style.get('sha256', '?'))[:12]}...)",
             f"impasto {m.get('impasto', '?')}"]  # fmt: skip
    if losses:
        parts.append("losses " + ", ".join(f"{k} {v:.4g}" for k, v in losses.items() if isinstance(v, float)))
    return "; ".join(parts)
