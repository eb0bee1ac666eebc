"""The time estimate against the wall clock: each command's ``--dry-run`` range, then the command itself timed
from the shell (start-up included), twice, in a fresh speed cache: the first run is estimated from the measured
rate alone, the second also from what the first took.

    python benchmarks/bench_time_estimate.py                  # fast and gatys at 256 px
    python benchmarks/bench_time_estimate.py --steps 60       # the gatys run with 60 steps (default 20)
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT

CONTENT, STYLE = ROOT / "examples" / "chelsea.png", ROOT / "examples" / "starry_night.jpg"
RANGE = re.compile(r"estimated time (.+?) in all")


def seconds(text: str) -> tuple[float, float]:
    """(low, high) seconds from ``5\u201315 s``, ``40 s\u20132 min``, ``about 3 s``."""
    unit = {"s": 1, "min": 60, "h": 3600}
    parts = re.findall(r"([\d.]+)\s*(s|min|h)?", text)
    values, last = [], "s"
    for number, u in reversed(parts):
        last = u or last
        values.append(float(number) * unit[last])
    values.reverse()
    return (values[0], values[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--size", type=int, default=256)
    args = ap.parse_args()
    env = {**os.environ, "IMPASTO_CACHE_DIR": tempfile.mkdtemp(prefix="impasto-speed-")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), env.get("PYTHONPATH", "")])
    out = Path(tempfile.mkdtemp()) / "out.png"
    cases = {"fast": ["--method", "fast"], "gatys": ["--steps", str(args.steps)]}
    for name, extra in cases.items():
        argv = [sys.executable, "-m", "impasto", str(CONTENT), str(STYLE), "-o", str(out), "-s", str(args.size), *extra]
        for attempt in (1, 2):
            plan = subprocess.run([*argv, "--dry-run"], capture_output=True, text=True, env=env, check=True).stdout
            text = RANGE.search(plan).group(1)
            lo, hi = seconds(text)
            t = time.perf_counter()
            subprocess.run([*argv, "-q"], env=env, check=True)
            took = time.perf_counter() - t
            verdict = "inside" if lo <= took <= hi else "OUTSIDE"
            print(f"{name:6} {args.size} px run {attempt}: estimated {text:>14}, took {took:6.1f} s  ({verdict})")


if __name__ == "__main__":
    main()
