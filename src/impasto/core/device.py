"""Device and precision selection."""

from __future__ import annotations

import torch

from ..errors import InputError


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


def precision_name(precision: str, device: torch.device | str) -> str:
    """What a ``--precision`` setting runs as on ``device``: fp32, bf16, fp16 or mixed (fp32 forward, low-precision
    gradients)."""
    dev = torch.device(device)
    if pick_grad_dtype(precision, dev) is not None:
        return "mixed"
    dtype = pick_dtype(precision, dev)
    return {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16", torch.float32: "fp32"}[dtype]
