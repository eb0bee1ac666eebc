"""glibc malloc tuning: keep freed memory in the heap so large tensors are reused at every step."""

from __future__ import annotations

import ctypes
import os
import platform
import sys

_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4
_allocator_tuned = False


def tune_allocator() -> bool:
    """Keep freed memory in the process's heap (glibc): large tensors are then reused at every step instead
    of being mapped, page-faulted and unmapped again. Gatys steps run ~10-15% faster on CPU
    (``benchmarks/bench_gatys.py --allocator both``); peak memory is unchanged, but the process keeps its
    high-water mark until it exits. Process-wide, so only the entry points call it (the ``impasto`` command, the
    web app's workers, the cluster's actors), never a library call: a program of its own that calls
    :func:`impasto.stylize` in a loop may call it first. ``IMPASTO_KEEP_MALLOC=1`` turns it off. Returns whether
    it was applied.
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


def release_free_memory() -> None:
    """Give the heap's free pages back to the system (glibc's ``malloc_trim``) when :func:`tune_allocator` keeps
    them: between the scales of a coarse-to-fine run, so that the memory a smaller scale freed, in pieces the
    next scale's larger tensors do not fit, is not counted on top of that scale's."""
    if not _allocator_tuned:
        return
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip() not in ("", "0")
