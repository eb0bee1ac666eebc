"""The plan of a run: its scales (size, steps, tiles), peak memory and time, decided once before any heavy
work (by :mod:`impasto.estimate`) and passed down to the method, which follows it. ``--dry-run`` prints it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .errors import InputError

MB = 1 << 20
GB = 1 << 30
#: Share of available memory a run may plan to use.
MEMORY_SAFETY = 0.85
#: The smallest tile side the planner picks by itself (the last rung of its ladder).
MIN_AUTO_TILE = 256


@dataclass
class ScalePlan:
    """One scale of a plan: picture size, steps, tiles (None: whole image), peak bytes, seconds."""

    size: int
    hw: tuple[int, int]
    steps: int
    tile: int | None
    tiles: int  # tiles processed in all passes (1 when untiled)
    peak_bytes: int
    seconds: float


@dataclass
class Plan:
    """What a run will do and need: its scales, peak memory, time and the memory available."""

    method: str
    device: str
    precision: str
    scales: list[ScalePlan]
    available_bytes: int
    iterative: bool = True  # optimizes over steps (False: one feed-forward pass)
    tileable: bool = True  # the method may run in tiles (False: the photo methods, which couple every pixel)
    load_seconds: float = 0.0  # loading the method's networks before the first step
    startup_seconds: float = 0.0  # before that: starting the program (set by a front end that knows it)
    factor: float = 1.0  # what the scales' seconds were scaled by from the measured rate (runs observed here)
    spread: tuple[float, float] = (1.0, 1.0)  # the likely range of the time, as factors of the estimate

    @property
    def peak_bytes(self) -> int:
        return max(s.peak_bytes for s in self.scales)

    @property
    def seconds(self) -> float:
        return sum(s.seconds for s in self.scales)

    @property
    def total_seconds(self) -> float:
        """The whole wait: start-up, loading the networks and the run."""
        return self.startup_seconds + self.load_seconds + self.seconds

    @property
    def seconds_range(self) -> tuple[float, float]:
        """(shortest, longest) likely total time in seconds."""
        lo, hi = self.spread
        return self.total_seconds * lo, self.total_seconds * hi

    @property
    def time_text(self) -> str:
        """The total time as a range: ``20-50 s``, ``1-3 min``."""
        return fmt_range(*self.seconds_range)

    @property
    def budget_bytes(self) -> int:
        return int(self.available_bytes * MEMORY_SAFETY)

    @property
    def fits(self) -> bool:
        return self.peak_bytes <= self.budget_bytes

    @property
    def tiles(self) -> list[int | None]:
        return [s.tile for s in self.scales]

    def describe(self) -> str:
        """Several lines for ``--dry-run``."""
        lines = [f"plan: {self.method} on {self.device} ({self.precision})"]
        for s in self.scales:
            where = f"{s.tiles} tiles of <= {s.tile} px" if s.tile else "whole image"
            steps = f"{s.steps:>5} steps" if self.iterative else "one pass"
            lines.append(f"  {s.hw[1]:>5}x{s.hw[0]:<5} {steps}, {where:<24} peak {fmt_bytes(s.peak_bytes):>9}, "
                         f"~{fmt_seconds(s.seconds)}")  # fmt: skip
        before = [f"{what} ~{fmt_seconds(max(t, 1.0))}" for what, t in (("start-up", self.startup_seconds),
                  ("loading the networks", self.load_seconds)) if t > 0]  # fmt: skip
        if before:
            lines.append(f"  before the first step: {', '.join(before)}")
        verdict = "fits" if self.fits else "does NOT fit"
        lines.append(f"estimated peak memory {fmt_bytes(self.peak_bytes)} of {fmt_bytes(self.available_bytes)} "
                     f"available ({verdict}); estimated time {self.time_text} in all, from this machine's "
                     "measured speed")  # fmt: skip
        return "\n".join(lines)


def fmt_bytes(n: float) -> str:
    """1.2 GB, 340 MB."""
    return f"{n / GB:.1f} GB" if n >= GB else f"{n / MB:.0f} MB"


def fmt_seconds(s: float) -> str:
    """45 s, 12 min, 2.5 h."""
    if s < 90:
        return f"{s:.0f} s"
    return f"{s / 60:.0f} min" if s < 5400 else f"{s / 3600:.1f} h"


def _in_unit(s: float, unit: str) -> str:
    div = {"s": 1.0, "min": 60.0, "h": 3600.0}[unit]
    return f"{s / div:.1f}".rstrip("0").rstrip(".") if unit == "h" else str(max(1, round(s / div)))


def _unit_of(s: float) -> str:
    return "s" if s < 90 else "min" if s < 5400 else "h"


def fmt_range(lo: float, hi: float) -> str:
    """A time range: ``5\u201315 s``, ``1\u20133 min``, ``40 s\u20132 min`` (each end in its own unit when they
    differ), ``1.5\u20133 h``; ``about 3 s`` when both ends read the same; never below 1 s."""
    lo, hi = max(lo, 1.0), max(hi, 1.0)
    unit_lo, unit_hi = _unit_of(lo), _unit_of(hi)
    a, b = _in_unit(lo, unit_lo), _in_unit(hi, unit_hi)
    if unit_lo != unit_hi:
        return f"{a} {unit_lo}\u2013{b} {unit_hi}"
    return f"about {b} {unit_hi}" if a == b else f"{a}\u2013{b} {unit_hi}"


def check(p: Plan) -> Plan:
    """Raise :class:`InputError` with a suggestion when the plan does not fit in memory; else return it."""
    if p.fits:
        return p
    worst = max(p.scales, key=lambda s: s.peak_bytes)
    need, have = fmt_bytes(p.peak_bytes), fmt_bytes(p.budget_bytes)
    smaller = max(64, int(worst.size * math.sqrt(p.budget_bytes / max(p.peak_bytes, 1)) * 0.9) // 64 * 64)
    if worst.tile and worst.tile > MIN_AUTO_TILE:
        hint = f"use a smaller --tile (below {worst.tile}) or a smaller --size"
    elif worst.tile or not p.tileable:
        hint = f"use a smaller --size (about {smaller})"
    else:
        hint = f"use --tile 1024 or a smaller --size (about {smaller})"
    raise InputError(f"not enough memory for {worst.hw[1]}x{worst.hw[0]}: needs about {need}, {have} usable; {hint}")
