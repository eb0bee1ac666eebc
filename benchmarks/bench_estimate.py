"""The memory estimate against the measured peak RSS at 512, 1024 and 2048 px (and its time estimate).

Each size runs the ``impasto`` command (default preset, tubingen.jpg + starry_night.jpg) in a fresh
subprocess that reports its own peak RSS (``ru_maxrss``); the estimate is what ``--dry-run`` prints for
the same command. The final scale gets enough steps to fill the L-BFGS history where that is affordable
(``--final-steps``); the estimate always models the run as configured. Target: within +-20%.

    python benchmarks/bench_estimate.py                         # 512, 1024, 2048 (~30 min on 2 cores)
    python benchmarks/bench_estimate.py --sizes 512 1024 --final-steps 60 60
    python benchmarks/bench_estimate.py --extra --tile 1024     # a tiled run
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import tubingen_starry_night as _images


def child(argv: list[str]) -> None:
    """Run the command in this process and print its exit code, peak RSS and wall time as JSON."""
    from impasto import cli

    t0 = time.perf_counter()
    code = cli.main(argv)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"code": code, "peak_rss": rss, "wall_s": time.perf_counter() - t0}))


def estimate_for(argv: list[str]) -> tuple[int, float, str]:
    """(peak bytes, seconds, plan text) that the estimate gives for a command line."""
    from impasto import estimate
    from impasto.cli import stylize
    from impasto.io.images import open_image

    args = stylize.build_parser().parse_args(argv)
    opts = stylize.options_from_args(args)
    content = open_image(args.content)
    styles = [open_image(s) for s in args.styles]
    p = estimate.plan(opts, content.size, [s.size for s in styles])
    return p.peak_bytes, p.seconds, p.describe()


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2:])
        return
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[512, 1024, 2048])
    p.add_argument("--final-steps", type=int, nargs="+", default=[60, 60, 25], help="steps at the last scale")
    p.add_argument("--coarse-steps", type=int, default=10, help="steps at each coarser scale")
    p.add_argument("--json", help="write the results here")
    p.add_argument("--extra", nargs=argparse.REMAINDER, default=[], help="more impasto options")
    args = p.parse_args()
    content, style = _images()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, size in enumerate(args.sizes):
            final = args.final_steps[min(i, len(args.final_steps) - 1)]
            argv = [str(content), str(style), "-o", str(Path(tmp) / f"out{size}.png"), "--size", str(size), "-q",
                    "--scale-steps", f"{args.coarse_steps},{final}", *args.extra]  # fmt: skip
            if "--tile" not in args.extra:
                argv += ["--tile", "0"]  # whole image (what the estimate of an untiled run is about)
            est, est_s, plan = estimate_for(argv)
            print(plan, flush=True)
            proc = subprocess.run([sys.executable, __file__, "--child", *argv], capture_output=True, text=True)
            if proc.returncode != 0 or not proc.stdout.strip():
                sys.exit(f"run at {size} failed: {proc.stderr.strip().splitlines()[-1:]}")
            got = json.loads(proc.stdout.strip().splitlines()[-1])
            ratio = est / got["peak_rss"]
            row = {"size": size, "final_steps": final, "estimate_mb": round(est / 2**20), "measured_mb":
                   round(got["peak_rss"] / 2**20), "ratio": round(ratio, 3), "estimated_s": round(est_s),
                   "wall_s": round(got["wall_s"])}  # fmt: skip
            rows.append(row)
            print(json.dumps(row), "OK" if abs(ratio - 1) <= 0.2 else "OUT OF +-20%", flush=True)
    worst = max(abs(r["ratio"] - 1) for r in rows)
    print(f"largest memory estimate error: {worst:.1%}", "PASS" if worst <= 0.2 else "FAIL")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
