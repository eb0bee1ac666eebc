"""This machine's speed, measured rather than assumed: the run-time estimates (:mod:`impasto.estimate`) are
built from it.

* :func:`measured_rate`: FLOP/s of VGG-19's first convolutions (forward and input gradient) on a small image,
  timed once per device, precision and thread count (a fraction of a second) and kept in a cache file;
* :func:`observe`: after a real run, how long it took against what the measured rate predicted; later estimates
  of that method are scaled by the ratio (:func:`correction`), so they follow the machine as it is used,
  load included;
* :func:`observe_load` / :func:`load_seconds`: how long loading a method's networks took.

The cache is ``$IMPASTO_CACHE_DIR/speed.json`` (default ``$XDG_CACHE_HOME/impasto``, else ``~/.cache/impasto``),
one entry per machine (CPU model), torch version and thread count; a cache that cannot be read or written only
costs a new measurement.
"""

from __future__ import annotations

import json
import os
import platform
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import torch

#: VGG-19's layers the measurement runs (channels in, out, stride of the input): conv1_1 .. conv3_1.
_BENCH_LAYERS = ((3, 64, 1), (64, 64, 1), (64, 128, 2), (128, 128, 2), (128, 256, 4))
#: Side of the measured image (small: the measurement takes a fraction of a second on a CPU core).
_BENCH_SIDE = 64
#: Runs predicted shorter than this are not observed (see :func:`observe`).
MIN_OBSERVED_SECONDS = 1.0
#: Weight of a new observation in the running correction (the rest is the earlier ones).
OBSERVATION_WEIGHT = 0.5
#: Estimate range, as factors of the estimate: before any run of the method was observed on this machine, and
#: after (the measurement alone misses what a run does besides convolutions; load from other programs varies).
RANGE_MEASURED = (0.6, 2.0)
RANGE_OBSERVED = (0.75, 1.5)

_lock = threading.Lock()
_memory: dict[str, Any] | None = None
_loaded_here: set[str] = set()


def cache_file() -> Path:
    """Where measurements and observations are kept."""
    root = os.environ.get("IMPASTO_CACHE_DIR")
    if not root:
        root = os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "impasto")
    return Path(root) / "speed.json"


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_key(device: str, precision: str) -> str:
    """The cache key of a measurement: machine, torch, threads (CPU), device type and precision."""
    kind = device.split(":")[0]
    where = f"{_cpu_name()}|{torch.get_num_threads()}t" if kind == "cpu" else device
    return f"{where}|torch {torch.__version__}|{kind}|{precision}"


def _read() -> dict[str, Any]:
    global _memory
    if _memory is None:
        try:
            data = json.loads(cache_file().read_text())
            _memory = data if isinstance(data, dict) else {}
        except (OSError, ValueError):
            _memory = {}
    return _memory


def _write(data: dict[str, Any]) -> None:
    path = cache_file()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".speed-", suffix=".json")
        with os.fdopen(fd, "w") as out:
            json.dump(data, out, indent=1, sort_keys=True)
        os.replace(tmp, path)
    except OSError:
        pass  # a read-only home: measured again next time


def _entry(key: str) -> dict[str, Any]:
    data = _read()
    entry = data.get(key)
    if not isinstance(entry, dict):
        entry = data[key] = {}
    return entry


def bench_flops(side: int = _BENCH_SIDE) -> float:
    """FLOPs of one forward and input-gradient pass of the measured layers over a ``side`` x ``side`` image."""
    pixels = side * side
    return sum(2 * 2 * 9 * c_in * c_out * pixels / stride**2 for c_in, c_out, stride in _BENCH_LAYERS)


def measure(device: str, precision: str, repeats: int = 3) -> float:
    """FLOP/s of VGG-19's first layers (random weights: the speed does not depend on them), forward and the
    input's gradient, on ``device`` in ``precision`` (fp32, bf16 or fp16); the fastest of ``repeats`` passes
    after one warm-up."""
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision, torch.float32)
    dev = torch.device(device)
    gen = torch.Generator().manual_seed(0)
    convs = []
    for c_in, c_out, stride in _BENCH_LAYERS:
        w = (torch.randn(c_out, c_in, 3, 3, generator=gen) * 0.05).to(dev, dtype)
        convs.append((w, stride))
    x0 = torch.rand(1, 3, _BENCH_SIDE, _BENCH_SIDE, generator=gen).to(dev, dtype)

    def once() -> float:
        x = x0.clone().requires_grad_(True)
        t = time.perf_counter()
        h, scale = x, 1
        for w, stride in convs:
            if stride > scale:
                h = torch.nn.functional.max_pool2d(h, 2)
                scale = stride
            h = torch.relu(torch.nn.functional.conv2d(h, w, padding=1))
        h.float().square().mean().backward()
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        return time.perf_counter() - t

    with torch.enable_grad():
        once()
        best = min(once() for _ in range(repeats))
    return bench_flops() / max(best, 1e-9)


def measured_rate(device: str, precision: str) -> float:
    """This machine's FLOP/s for ``device`` and ``precision``: from the cache, or measured now and cached
    (mixed precision, fp32 forward and bf16 backward: 4/3 of fp32's rate)."""
    if precision == "mixed":
        return measured_rate(device, "fp32") * 4 / 3
    key = machine_key(device, precision)
    with _lock:
        rate = _entry(key).get("rate")
        if isinstance(rate, (int, float)) and rate > 0:
            return float(rate)
    rate = measure(device, precision)
    with _lock:
        _entry(key)["rate"] = rate
        _write(_read())
    return rate


def correction(method: str, device: str, precision: str) -> float | None:
    """How much longer than the measured rate predicts runs of ``method`` took on this machine (None: no run
    observed yet)."""
    with _lock:
        value = _entry(machine_key(device, precision)).get(f"factor:{method}")
    return float(value) if isinstance(value, (int, float)) and value > 0 else None


def observe(method: str, device: str, precision: str, predicted: float, actual: float) -> None:
    """Record a finished run of ``method`` that took ``actual`` seconds where the measured rate alone predicted
    ``predicted``. Runs predicted under :data:`MIN_OBSERVED_SECONDS` are left out: their fixed costs (targets,
    copies, Python) outweigh the convolutions, and would make the estimates of real pictures too long."""
    if predicted < MIN_OBSERVED_SECONDS or actual <= 0:
        return
    ratio = actual / predicted
    with _lock:
        entry = _entry(machine_key(device, precision))
        old = entry.get(f"factor:{method}")
        if isinstance(old, (int, float)) and old > 0:
            ratio = (1 - OBSERVATION_WEIGHT) * old + OBSERVATION_WEIGHT * ratio
        entry[f"factor:{method}"] = ratio
        _write(_read())


def load_seconds(method: str, device: str) -> float | None:
    """Seconds loading ``method``'s networks took when last observed on this machine (None: not yet)."""
    with _lock:
        value = _read().get(f"load|{_cpu_name()}|{device.split(':')[0]}", {}).get(method)
    return float(value) if isinstance(value, (int, float)) else None


def observe_load(method: str, device: str, seconds: float) -> None:
    """Record how long loading ``method``'s networks took, the first time this process loads them (later
    loads reuse what is in memory and say nothing of a fresh start, nor does a load that took no time: another
    method had loaded the same networks)."""
    if method in _loaded_here or seconds < 0.05:
        return
    _loaded_here.add(method)
    with _lock:
        data = _read()
        key = f"load|{_cpu_name()}|{device.split(':')[0]}"
        entry = data.get(key) if isinstance(data.get(key), dict) else {}
        entry[method] = round(seconds, 3)
        data[key] = entry
        _write(data)


def process_age() -> float:
    """Seconds since this process started (its start-up: importing Python, torch and impasto), 0 if unknown."""
    try:
        start_ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        return max(0.0, uptime - start_ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError, AttributeError):
        return 0.0
