"""Device and precision selection."""

from __future__ import annotations

import contextlib
import ctypes
import os
import platform
import sys

import torch

from .errors import InputError


def pick_device(name: str = "auto") -> torch.device:
    """``auto`` picks cuda, then mps, then cpu; an explicit name must be available."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise InputError(f"unknown device '{name}' (use auto, cpu, cuda, cuda:N or mps)") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"device '{name}' requested but CUDA is not available on this machine")
    if dev.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise InputError(f"device '{name}' requested but MPS is not available on this machine")
    if dev.type not in ("cpu", "cuda", "mps"):
        raise InputError(f"unsupported device '{name}' (use auto, cpu, cuda or mps)")
    return dev


def cpu_supports_bf16() -> bool:
    """True when this CPU has native bf16 matrix support (oneDNN avx512_bf16 / AMX)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def pick_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """Compute dtype of the forward pass for a precision name, or None for plain fp32."""
    if precision in ("fp32", "mixed"):
        return None
    if precision == "bf16":
        if device.type == "cuda" and not torch.cuda.is_bf16_supported():
            raise InputError("--precision bf16 is not supported by this GPU (try fp16)")
        return torch.bfloat16
    if precision == "fp16":
        return torch.float16
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "cpu" and cpu_supports_bf16():
        return torch.bfloat16
    return None


def pick_grad_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """Dtype of the backward pass's convolutions under ``mixed`` precision (fp32 forward): bf16 where the
    hardware has it, else fp16 on CUDA, else None (plain fp32). None for every other precision."""
    if precision != "mixed":
        return None
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "cpu" and cpu_supports_bf16():
        return torch.bfloat16
    return None


def autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    """Autocast context for ``dtype`` (no-op when None)."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4
_allocator_tuned = False


def tune_allocator() -> bool:
    """Keep freed memory in the process's heap (glibc): large tensors are then reused at every step instead
    of being mapped, page-faulted and unmapped again. Gatys steps run ~10-15% faster on CPU
    (``benchmarks/bench_gatys.py --allocator both``); peak memory is unchanged, but the process keeps its
    high-water mark until it exits. Process-wide, so the CLI and :func:`impasto.stylize` call it and the
    lower-level classes do not; ``IMPASTO_KEEP_MALLOC=1`` turns it off. Returns whether it was applied.
    """
    global _allocator_tuned
    if _allocator_tuned:
        return True
    if sys.platform != "linux" or platform.libc_ver()[0] != "glibc" or _env_flag("IMPASTO_KEEP_MALLOC"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        ok = libc.mallopt(_M_MMAP_MAX, 0) == 1 and libc.mallopt(_M_TRIM_THRESHOLD, 2**30) == 1
    except (OSError, AttributeError):
        return False
    _allocator_tuned = ok
    return ok


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip() not in ("", "0")
