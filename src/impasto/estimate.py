"""Peak memory and run time of a run, estimated before any heavy work, and the tiles it needs to fit.

Memory model (bytes; ``A`` = pixels processed at once: the image, or one tile; ``P`` = pixels of the picture):

* fixed: the Python/PyTorch runtime (:data:`RUNTIME_BYTES`), the VGG-19 weights file held in memory, the
  network's float32 parameters and, in bf16/fp16, one low-precision copy of them, plus
  :data:`WORK_FIXED_BYTES` (kernel workspaces, allocator arenas; calibrated);
* activations: ``A`` x the bytes per input pixel that autograd keeps for the backward pass: each conv
  (and ReLU, in place) output down to the deepest layer in use, each pooling's output and, for max
  pooling, its int64 indices (2 bytes per value in bf16/fp16, 4 in fp32), plus a float32 copy of the
  content layers' features; and ``A`` x :data:`BACKWARD_BYTES_PER_PIXEL` for what the backward pass holds
  at its peak (gradients and float32 Gram temporaries at full resolution; calibrated, the same in every
  precision). The hand-written pass of :mod:`impasto.methods.handwritten` (CPU, zero padding, terms it
  knows) frees each layer's tensors as its backward goes by and holds no autograd graph:
  :data:`FUSED_BACKWARD_BYTES_PER_PIXEL` and :data:`FUSED_FIXED_SAVING` instead (calibrated the same way);
  each loss term adds its own ``bytes_per_pixel`` (:mod:`impasto.methods.terms`);
* image-sized float32 buffers: ``A`` x 12 bytes x (:data:`IMAGE_COPIES` + 2 x min(steps, L-BFGS history)),
  the history being ``options.lbfgs_history`` pairs of vectors (Adam keeps 2 instead);
* whole-picture buffers: ``P`` x 12 bytes x :data:`PICTURE_COPIES` (content, result, blending) and the
  style images.

The fast method keeps no activations for a backward pass: ``A`` x :data:`FAST_BYTES_PER_PIXEL`.
The photo method is the optimization method with the photorealism regularizer, whose matting Laplacian (25
non-zeros per pixel, one per scale) is its term's ``bytes_per_pixel``; building it costs
:data:`PHOTO_BUILD_SECONDS_PER_PIXEL` once per scale, applying it :data:`PHOTO_STEP_SECONDS_PER_PIXEL` per
step. The fast photorealistic method is the fast method plus the smoothing's
:data:`SMOOTH_BYTES_PER_PIXEL` and :data:`SMOOTH_SECONDS_PER_PIXEL`.
Time: loss evaluations x pixels x FLOPs per pixel (from the conv layers to the deepest in use) / this
machine's FLOP/s, measured on it (:func:`impasto.core.speed.measured_rate`: VGG-19's first layers timed once,
cached), times what runs of the method observed here took over that prediction
(:func:`impasto.core.speed.correction`; :data:`FIRST_RUN_FACTOR` before any), plus loading the networks (as
observed here; :data:`DEFAULT_LOAD_SECONDS` before). The result is a range (:attr:`impasto.plan.Plan.spread`),
wide until a run of the method was observed. :data:`THROUGHPUT` stands in where the measurement fails.
The memory constants were calibrated against peak RSS at 512, 1024 and 2048 px (``benchmarks/bench_estimate.py``).
"""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Sequence
from pathlib import Path

import torch

from .core import speed
from .core.device import pick_device, precision_name
from .core.schedule import split_steps
from .core.sizes import fit_size
from .core.tiles import default_overlap, shifts, tile_grid
from .core.vgg import LAYER_NAMES, channels_of, deepest, resolve_layers
from .io.models import load_model
from .methods import METHODS, handwritten
from .methods.terms import term_classes
from .methods.transformer import DEFAULT_WIDTH
from .methods.transformer import flops_per_pixel as transformer_flops_per_pixel
from .options import Options
from .plan import GB, MB, MEMORY_SAFETY, MIN_AUTO_TILE, Plan, ScalePlan, fmt_seconds

#: Resident memory of Python with PyTorch and impasto imported (CPU; measured).
RUNTIME_BYTES = 230 * MB
#: Bytes of the bundled VGG-19 weights file, which stays loaded.
VGG_FILE_BYTES = 80 * MB
#: Memory a run holds besides the runtime, weights and per-pixel terms (workspaces, arenas; calibrated).
WORK_FIXED_BYTES = 150 * MB
#: Peak bytes per pixel held by the backward pass besides the saved activations (calibrated).
BACKWARD_BYTES_PER_PIXEL = 1480
#: The same for the hand-written pass of :mod:`impasto.fused`, and what it saves of the fixed part (calibrated).
FUSED_BACKWARD_BYTES_PER_PIXEL = 130
FUSED_FIXED_SAVING = 40 * MB
#: Image-sized float32 buffers besides the optimizer's history (pixels, gradient, copies; L-BFGS holds the point
#: before its step through each evaluation, to store the step actually taken where the clamp moved a pixel, and
#: the best point and its gradient, to go back to where the loss climbs).
IMAGE_COPIES = 13
#: Picture-sized float32 buffers kept during a run (content, result, tile blending).
PICTURE_COPIES = 4
#: Peak bytes per pixel of the fast method (encoder and decoder, inference) in bf16 / fp16 (calibrated at
#: 1024-3072 px) and in fp32 with its Winograd convolutions (:mod:`impasto.core.winograd`; least squares over
#: CLI runs at 512 / 1024 / 1536 / 2048 px, 793 / 1759 / 2890 / 5378 MB: docs/design.md, "Winograd
#: convolutions"). Without Winograd fp32 took 1130; the difference is the heap's fragmentation more than the
#: transforms' buffers.
FAST_BYTES_PER_PIXEL = 340
FAST_FP32_BYTES_PER_PIXEL = 1600
#: Fixed memory of the fast method besides the runtime and the VGG file: encoder, decoder, bf16 copies.
FAST_FIXED_BYTES = 130 * MB
#: Peak bytes per pixel of a trained network's forward pass per unit of width (activations of the widest,
#: full-resolution layers; calibrated with ``benchmarks/bench_model.py --memory``), and its fixed memory.
MODEL_BYTES_PER_PIXEL_PER_WIDTH = 14
MODEL_FIXED_BYTES = 60 * MB
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
#: The photo method: building the matting Laplacian once per scale, and its product at every step (seconds per
#: pixel on the reference machine; measured with ``benchmarks/bench_photo.py``, rough).
PHOTO_BUILD_SECONDS_PER_PIXEL = 4e-7
PHOTO_STEP_SECONDS_PER_PIXEL = 1.0e-7
#: Li et al.'s smoothing: peak bytes per pixel (the guided filter's float32 window statistics, which the exact
#: solver's float32 stencil and vectors, ~170 B, stay below; measured 385-500 B at 1024 and 2048 px) and
#: seconds per pixel (exact: ~280 conjugate-gradient iterations at 803x538, more on larger pictures; rough).
SMOOTH_BYTES_PER_PIXEL = {"exact": 450, "guided": 450, "none": 0}
SMOOTH_SECONDS_PER_PIXEL = {"exact": 3e-6, "guided": 3e-7, "none": 0.0}
#: A method's run time over what the measured rate alone predicts, before any run of it was observed on this
#: machine (measured 0.74 for gatys, 0.88 for fast and photo-fast at 256 px on a 2-core AVX2 CPU: the small
#: measured image runs the convolutions less efficiently than a picture; the range covers the rest).
FIRST_RUN_FACTOR = {"gatys": 1.0, "photo": 1.0, "fast": 1.0, "photo-fast": 1.0, "model": 1.0}
#: Seconds loading a method's networks takes before it was observed on this machine (VGG-19 and the decoder
#: read from disk; measured 1.3-1.6 s with the files in the page cache, more from a cold disk).
DEFAULT_LOAD_SECONDS = 3.0
#: Backward pass cost relative to the forward pass (input gradients only: the weights are fixed).
BACKWARD_RATIO = 1.0
#: Tile sides tried, largest first, when tiles are chosen automatically (larger tiles gain little speed).
TILE_LADDER = (2048, 1536, 1024, 768, 512, 384, MIN_AUTO_TILE)


# -- the network's per-pixel costs --------------------------------------------------------------------------
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
    ``layers`` running with ``elem``-byte values (see the module docstring)."""
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


def available_memory(device: str = "cpu") -> int:
    """Bytes this process may reach: free GPU memory, or MemAvailable (capped by a cgroup limit) plus what
    this process already holds (the estimates count the whole process)."""
    if device.startswith("cuda"):
        return int(torch.cuda.mem_get_info()[0])
    avail = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                avail = int(line.split()[1]) * 1024
                break
    except OSError:
        pass
    if avail is None:
        try:
            avail = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            avail = 8 * GB
    for limit_file, usage_file in (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
                                   ("/sys/fs/cgroup/memory/memory.limit_in_bytes",
                                    "/sys/fs/cgroup/memory/memory.usage_in_bytes")):  # fmt: skip
        try:
            limit = Path(limit_file).read_text().strip()
            if limit != "max" and int(limit) < 1 << 60:
                avail = min(avail, int(limit) - int(Path(usage_file).read_text().strip()))
        except (OSError, ValueError):
            continue
    return max(0, avail) + _own_rss()


def _own_rss() -> int:
    """Resident bytes of this process (already counted by the estimate's fixed part)."""
    try:
        return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError, AttributeError):
        return 0


def uses_handwritten_pass(options: Options, device: str) -> bool:
    """Whether a Gatys run takes the hand-written pass of :mod:`impasto.methods.handwritten` (every term of the
    run is one it evaluates; masks, for one, make the style term guided)."""
    known = all(cls.handwritten(options) for cls in term_classes(options))
    return handwritten.applies(device, options.padding, known)


def terms_bytes_per_pixel(options: Options) -> float:
    """What the run's loss terms add per working pixel (see :meth:`impasto.methods.terms.Term.bytes_per_pixel`)."""
    return sum(cls.bytes_per_pixel(options) for cls in term_classes(options))


def gatys_peak_bytes(
    options: Options, area: int, picture: int, style_pixels: int, steps: int, precision: str,
    style_area: int | None = None, device: str = "cpu",
) -> int:  # fmt: skip
    """Peak bytes of the optimization method working on ``area`` pixels of a ``picture``-pixel image, with
    style images of ``style_pixels`` passed through the network ``style_area`` pixels at a time."""
    layers = [*options.content_layers, *options.style_layers]
    elem = 2 if precision in ("bf16", "fp16") else 4  # "mixed" keeps fp32 activations
    params = param_count(layers)
    low_copy = 2 if precision in ("bf16", "fp16", "mixed") else 0  # the network's weights in 16 bits
    hand_written = uses_handwritten_pass(options, device)
    fixed = RUNTIME_BYTES + VGG_FILE_BYTES + WORK_FIXED_BYTES + params * (4 + low_copy)
    fixed -= FUSED_FIXED_SAVING if hand_written else 0
    backward = FUSED_BACKWARD_BYTES_PER_PIXEL if hand_written else BACKWARD_BYTES_PER_PIXEL
    act = activation_bytes_per_pixel(layers, options.content_layers, elem, options.pooling) + backward
    act += terms_bytes_per_pixel(options)
    history = 2 if options.optimizer == "adam" else 2 * min(steps, getattr(options, "lbfgs_history", 20))
    work = area * (act + 12 * (IMAGE_COPIES + history))
    # Style targets: a forward pass (no gradient) over the style image; its peak is two conv outputs.
    style_fwd = (style_pixels if style_area is None else style_area) * (2 * 64 * elem + 64 * 4 + 12)
    return int(fixed + max(work, style_fwd) + picture * 12 * PICTURE_COPIES + style_pixels * 12)


def flops_rate(device: str, precision: str) -> float:
    """FLOP/s of VGG-19's passes on ``device`` in ``precision``: measured on this machine (cached), else
    :data:`THROUGHPUT`."""
    try:
        return speed.measured_rate(device, precision)
    except Exception:  # noqa: BLE001 - a device that cannot run the measurement: the table's figure
        return THROUGHPUT.get((device.split(":")[0], precision), 1e11)


def gatys_seconds(options: Options, pixels: float, steps: int, device: str, precision: str) -> float:
    """Seconds of ``steps`` loss evaluations over ``pixels`` pixels (plus the targets' forward passes)."""
    layers = [*options.content_layers, *options.style_layers]
    rate = flops_rate(device, precision)
    per_step = pixels * flops_per_pixel(layers) * (1 + BACKWARD_RATIO) / rate
    if options.photo_weight > 0:  # the matting Laplacian: built once, applied at every step
        per_step += pixels * PHOTO_STEP_SECONDS_PER_PIXEL
        return per_step * (steps + 1) + pixels * PHOTO_BUILD_SECONDS_PER_PIXEL
    return per_step * (steps + 1)


def fast_peak_bytes(area: int, picture: int, style_pixels: int, precision: str = "bf16") -> int:
    """Peak bytes of the fast method working on ``area`` pixels of a ``picture``-pixel image in ``precision``
    (fp32 and mixed run the networks in fp32)."""
    per_pixel = FAST_BYTES_PER_PIXEL if precision in ("bf16", "fp16") else FAST_FP32_BYTES_PER_PIXEL
    return int(RUNTIME_BYTES + VGG_FILE_BYTES + FAST_FIXED_BYTES + max(area, style_pixels) * per_pixel
               + picture * 12 * PICTURE_COPIES)  # fmt: skip


def fast_seconds(pixels: float, device: str, precision: str) -> float:
    """Seconds of one encoder + decoder pass over ``pixels`` pixels."""
    rate = flops_rate(device, precision)
    encoder = flops_per_pixel(["relu4_1"])
    return pixels * 2.2 * encoder / rate  # the decoder costs about 1.2 encoders


def model_width(options: Options) -> int:
    """The width of the network in ``options.model`` (read from the file; the default if it cannot be read,
    which loading the model reports)."""
    if not options.model:
        return DEFAULT_WIDTH
    try:
        st = os.stat(options.model)
    except OSError:
        return DEFAULT_WIDTH
    return _model_width(os.path.realpath(options.model), st.st_mtime_ns, st.st_size)


@functools.lru_cache(maxsize=8)
def _model_width(path: str, mtime_ns: int, size: int) -> int:
    return load_model(path).width


def model_peak_bytes(area: int, picture: int, width: int) -> int:
    """Peak bytes of a trained network working on ``area`` pixels of a ``picture``-pixel image."""
    return int(RUNTIME_BYTES + MODEL_FIXED_BYTES + area * MODEL_BYTES_PER_PIXEL_PER_WIDTH * width
               + picture * 12 * PICTURE_COPIES)  # fmt: skip


def model_seconds(pixels: float, width: int, device: str, precision: str) -> float:
    """Seconds of one pass of a trained network of ``width`` over ``pixels`` pixels (fp32: it runs in fp32)."""
    rate = flops_rate(device, "fp32")
    return pixels * transformer_flops_per_pixel(width) / rate


def _tile_area(hw: tuple[int, int], tile: int, overlap: int, passes: int) -> tuple[int, int]:
    """(largest tile's pixels, tiles in all passes) for a picture of ``hw``."""
    largest, count = 0, 0
    for s in shifts(passes):
        grid = tile_grid(hw[0], hw[1], tile, overlap, s)
        largest = max(largest, max(t.height * t.width for t in grid))
        count += len(grid)
    return largest, count


def _tile_pixels(hw: tuple[int, int], tile: int, overlap: int, passes: int) -> list[int]:
    return [sum(t.height * t.width for t in tile_grid(hw[0], hw[1], tile, overlap, s)) for s in shifts(passes)]


def _scale_plan(
    options: Options, size: int, hw: tuple[int, int], steps: int, tile: int | None, style_pixels: int,
    device: str, precision: str,
) -> ScalePlan:  # fmt: skip
    picture = hw[0] * hw[1]
    tiled = bool(tile) and max(hw) > tile  # type: ignore[operator]
    if tiled:
        overlap = options.tile_overlap if options.tile_overlap is not None else default_overlap(tile)  # type: ignore[arg-type]
        passes = max(1, min(options.tile_passes, steps)) if options.method == "gatys" and steps else options.tile_passes
        area, count = _tile_area(hw, tile, overlap, passes)  # type: ignore[arg-type]
        pass_pixels = _tile_pixels(hw, tile, overlap, passes)  # type: ignore[arg-type]
    else:
        area, count, passes, pass_pixels = picture, 1, 1, [picture]
    if options.method == "model":
        width = model_width(options)
        peak = model_peak_bytes(area, picture, width)
        seconds = model_seconds(sum(pass_pixels), width, device, precision)
        return ScalePlan(size, hw, 0, tile if tiled else None, count, peak, seconds)
    if options.method == "fast":
        peak = fast_peak_bytes(area, picture, style_pixels, precision)
        seconds = fast_seconds(sum(pass_pixels), device, precision)
        return ScalePlan(size, hw, 0, tile if tiled else None, count, peak, seconds)
    if options.method == "photo-fast":  # whole image: the smoothing couples every pixel
        smoothing = SMOOTH_BYTES_PER_PIXEL[options.smooth] * picture
        peak = fast_peak_bytes(picture, picture, style_pixels, precision) + smoothing
        seconds = fast_seconds(picture, device, precision) + SMOOTH_SECONDS_PER_PIXEL[options.smooth] * picture
        return ScalePlan(size, hw, 0, None, 1, int(peak), seconds)
    per_pass = split_steps(steps, passes) if tiled else [steps]
    steps_each = max(per_pass) if per_pass else 0
    style_area = min(style_pixels, tile * tile) if tiled else None  # type: ignore[operator]
    peak = gatys_peak_bytes(options, area, picture, style_pixels, steps_each, precision, style_area, device)
    seconds = sum(gatys_seconds(options, px, k, device, precision) for px, k in zip(pass_pixels, per_pass, strict=True))
    return ScalePlan(size, hw, steps, tile if tiled else None, count, peak, seconds)


def plan(
    options: Options,
    content_size: tuple[int, int],
    style_sizes: Sequence[tuple[int, int]] = (),
    device: str | None = None,
    available: int | None = None,
) -> Plan:
    """Plan a run from the options and the images' (width, height): scales, tiles, peak memory, time.

    ``options.tile``: None tiles a scale only when its whole-image estimate exceeds the memory budget
    (:data:`MEMORY_SAFETY` x ``available``), using the largest tile of :data:`TILE_LADDER` that fits; 0
    never tiles; N tiles every scale larger than N pixels. Nothing is allocated.
    """
    dev = str(pick_device(options.device)) if device is None else device
    precision = precision_name(options.precision, dev)
    available = available_memory(dev) if available is None else available
    budget = int(available * MEMORY_SAFETY)
    if not METHODS[options.method].iterative:
        sizes = [(options.size, 0)]
    else:
        sizes = options.scales()
    style_longest = options.style_size()
    styles = [fit_size(w, h, style_longest) for w, h in style_sizes] or [fit_size(4, 3, style_longest)]
    final = fit_size(*content_size, options.size)  # the content as loaded; coarser scales are fitted from it
    scales = []
    for i, (size, steps) in enumerate(sizes):
        w, h = final if size == options.size else fit_size(*final, size)
        last = i == len(sizes) - 1
        style_px = max(sw * sh for sw, sh in styles)
        style_px = style_px if last else int(style_px * (size / options.size) ** 2)
        hw = (h, w)
        if options.tile is None and options.method in ("photo", "photo-fast"):  # never tiled (refused)
            sp = _scale_plan(options, size, hw, steps, None, style_px, dev, precision)
        elif options.tile is None:
            sp = _scale_plan(options, size, hw, steps, None, style_px, dev, precision)
            for tile in TILE_LADDER:
                if sp.peak_bytes <= budget or tile >= max(hw):
                    continue
                sp = _scale_plan(options, size, hw, steps, tile, style_px, dev, precision)
        else:
            sp = _scale_plan(options, size, hw, steps, options.tile or None, style_px, dev, precision)
        scales.append(sp)
    if options.method == "model":
        precision = "fp32"  # trained networks run in fp32
    observed = speed.correction(options.method, dev, precision)
    factor = observed if observed is not None else FIRST_RUN_FACTOR.get(options.method, 3.0)
    for sp in scales:
        sp.seconds *= factor
    load = speed.load_seconds(options.method, dev)
    return Plan(options.method, dev, precision, scales, available, iterative=METHODS[options.method].iterative,
                load_seconds=DEFAULT_LOAD_SECONDS if load is None else load, factor=factor,
                spread=speed.RANGE_OBSERVED if observed is not None else speed.RANGE_MEASURED)  # fmt: skip


#: The coarsest scale :func:`coarse_to_fine_hint` suggests.
HINT_START_SIZE = 512


def coarse_to_fine_hint(options: Options, p: Plan, content_size: tuple[int, int],
                        style_sizes: Sequence[tuple[int, int]] = ()) -> str | None:  # fmt: skip
    """One line suggesting ``--start-size 512`` for a single-scale optimization plan at twice that size or
    more when coarse to fine would take at most half the time; None otherwise.

    Not the default: at 512 and 1024 px, measured, coarse to fine ends at a higher loss at full size than a
    single-scale run given the same time (docs/benchmarks.md). Above that, single-scale runs take hours and
    their strokes shrink with the picture, as the network sees a fixed number of pixels.
    """
    if options.method not in ("gatys", "photo") or options.start_size is not None or options.size < 2 * HINT_START_SIZE:
        return None
    alt = plan(dataclasses.replace(options, start_size=HINT_START_SIZE, scale_steps=None), content_size,
               style_sizes, device=p.device, available=p.available_bytes)  # fmt: skip
    if len(alt.scales) < 2 or not alt.fits or alt.seconds > p.seconds / 2:
        return None
    steps = ",".join(str(s.steps) for s in alt.scales)
    return (
        f"hint: coarse to fine from {HINT_START_SIZE} px (--start-size {HINT_START_SIZE}: {steps} steps) is "
        f"estimated at {fmt_seconds(alt.seconds)} instead of {fmt_seconds(p.seconds)}; it keeps the strokes "
        f"and composition of a {HINT_START_SIZE} px run, at a higher loss at full size"
    )
