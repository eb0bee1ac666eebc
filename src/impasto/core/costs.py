"""What every method's memory and time estimate is built from: the runtime's fixed memory, VGG-19's per-pixel
costs up to a layer, and this machine's FLOP/s.

Each method's own formula (:attr:`impasto.methods.base.MethodSpec.cost`) combines these; the planner
(:mod:`impasto.estimate`) lays out the scales and tiles it is applied to.
"""

from __future__ import annotations

from collections.abc import Sequence

from . import speed
from .vgg import LAYER_NAMES, channels_of, deepest, resolve_layers

MB = 1 << 20
#: Resident memory of Python with PyTorch and impasto imported (CPU; measured).
RUNTIME_BYTES = 230 * MB
#: Bytes of the bundled VGG-19 weights file, which stays loaded.
VGG_FILE_BYTES = 80 * MB
#: Picture-sized float32 buffers kept during a run (content, result, tile blending).
PICTURE_COPIES = 4
#: Sustained FLOP/s of VGG-19 forward + backward, by (device type, precision), used only where this machine's
#: speed cannot be measured: the CPU figures were measured on a 2-core AVX-512 machine with bf16, the others
#: are conservative guesses.
THROUGHPUT = {
    ("cpu", "bf16"): 2.9e11,
    ("cpu", "fp32"): 1.6e11,
    ("cpu", "fp16"): 0.5e11,
    ("cpu", "mixed"): 2.1e11,  # fp32 forward, bf16 backward: 4/3 of fp32's rate
    ("cuda", "mixed"): 1.3e13,
    ("cuda", "bf16"): 2.0e13,
    ("cuda", "fp16"): 2.0e13,
    ("cuda", "fp32"): 1.0e13,
    ("mps", "fp16"): 2.0e12,
    ("mps", "fp32"): 2.0e12,
    ("mps", "bf16"): 2.0e12,
}


def _walk(layers: Sequence[str]) -> list[tuple[str, int, int]]:
    """(layer, channels, stride) of every layer up to the deepest of ``layers``."""
    last = LAYER_NAMES.index(deepest(layers))
    out, stride = [], 1
    for name in LAYER_NAMES[: last + 1]:
        if name.startswith("pool"):
            stride *= 2
            out.append((name, channels_of(LAYER_NAMES[LAYER_NAMES.index(name) - 1]), stride))
        else:
            out.append((name, channels_of(name), stride))
    return out


def flops_per_pixel(layers: Sequence[str]) -> float:
    """Forward multiply-adds x 2 per input pixel of VGG-19 up to the deepest of ``layers``."""
    total, c_in = 0.0, 3
    for name, c, stride in _walk(layers):
        if name.startswith("conv"):
            total += 2 * 9 * c_in * c / stride**2
            c_in = c
    return total


def activation_bytes_per_pixel(
    layers: Sequence[str], content_layers: Sequence[str], elem: int, pooling: str = "max"
) -> float:
    """Bytes per input pixel that autograd keeps for the backward pass of VGG-19 up to the deepest of
    ``layers`` running with ``elem``-byte values: each conv (and ReLU, in place) output, each pooling's output
    and, for max pooling, its int64 indices, plus a float32 copy of the content layers' features."""
    content = set(resolve_layers(content_layers))
    total = 3 * 4 + 3 * elem  # the input and its normalized copy
    for name, c, stride in _walk(layers):
        per = c / stride**2
        if name.startswith("conv"):
            total += per * elem
        elif name.startswith("pool"):
            total += per * elem + (per * 8 if pooling == "max" else 0)
        if name in content and elem < 4:
            total += per * 4  # float32 copy for the content loss
    return total


def param_count(layers: Sequence[str]) -> int:
    """Parameters of VGG-19's convolutions up to the deepest of ``layers``."""
    total, c_in = 0, 3
    for name, c, _ in _walk(layers):
        if name.startswith("conv"):
            total += 9 * c_in * c + c
            c_in = c
    return total


def flops_rate(device: str, precision: str) -> float:
    """FLOP/s of VGG-19's passes on ``device`` in ``precision``: measured on this machine (cached), else
    :data:`THROUGHPUT`."""
    try:
        return speed.measured_rate(device, precision)
    except Exception:  # noqa: BLE001 - a device that cannot run the measurement: the table's figure
        return THROUGHPUT.get((device.split(":")[0], precision), 1e11)
