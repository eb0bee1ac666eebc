"""Summary of the last ``mutmut run`` (``make mutation``): per module, mutants killed, survived, judged equivalent.

Mutants judged equivalent (they cannot change any result: a mutated default that every caller overrides, a
message reworded) are listed in ``benchmarks/mutation_equivalent.txt``, one per line with the reason after ``#``.
The score is killed / (all - equivalent); timeouts count as killed (the mutant hung the tests).

    python benchmarks/mutation_report.py            # the table
    python benchmarks/mutation_report.py --show     # and the diff of every surviving, non-equivalent mutant
    python benchmarks/mutation_report.py --sample 0.2 [--seed 0]   # names of a random 20% of each module's
                                                                   # mutants not checked yet (for mutmut run)

A full run takes many hours on 2 cores (each mutant runs every test that covers it). ``make mutation
MUTATION_SAMPLE=0.2`` checks a random sample of each module's mutants instead; the table then counts only the
mutants checked, and gives the score's 95% interval (Wilson) for the whole module.
"""

from __future__ import annotations

import argparse
import math
import random
import subprocess
import sys
from collections import Counter, defaultdict

from common import HERE, ROOT

EQUIVALENT = HERE / "mutation_equivalent.txt"


def results() -> dict[str, str]:
    """mutant name -> status, from ``mutmut results --all true``."""
    out = subprocess.run([sys.executable, "-m", "mutmut", "results", "--all", "true"], cwd=ROOT, capture_output=True,
                         text=True, check=True).stdout  # fmt: skip
    status = {}
    for line in out.splitlines():
        name, sep, state = line.strip().rpartition(": ")
        if sep and name:
            status[name] = state
    return status


def equivalent() -> dict[str, str]:
    """mutant name -> why it is equivalent."""
    if not EQUIVALENT.exists():
        return {}
    found = {}
    for line in EQUIVALENT.read_text().splitlines():
        name, _, reason = line.partition("#")
        if name.strip():
            found[name.strip()] = reason.strip()
    return found


def module_of(mutant: str) -> str:
    """``impasto.core.losses.x_gram_matrix__mutmut_3`` -> ``impasto.core.losses``."""
    parts = mutant.split(".")
    for i, part in enumerate(parts):
        if part.startswith(("x_", "x\u01c1")):  # a function (x_name) or a method (xǁClassǁname)
            return ".".join(parts[:i])
    return ".".join(parts[:-1])


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% interval of a proportion k / n (Wilson score interval)."""
    if n == 0:
        return 0.0, 1.0
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def sample(status: dict[str, str], fraction: float, seed: int) -> list[str]:
    """A random ``fraction`` of each module's mutants, less those already checked."""
    rng = random.Random(seed)
    by_module: dict[str, list[str]] = defaultdict(list)
    for name in sorted(status):
        by_module[module_of(name)].append(name)
    chosen = []
    for names in by_module.values():
        chosen += rng.sample(names, max(1, round(fraction * len(names))))
    return [name for name in chosen if status[name] == "not checked"]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--show", action="store_true", help="print the diff of each surviving non-equivalent mutant")
    p.add_argument("--sample", type=float, metavar="FRACTION", help="print the names of a random sample to check")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    status = results()
    if not status:
        print("no mutation results: run `make mutation` first")
        return 1
    if args.sample is not None:
        print(" ".join(sample(status, args.sample, args.seed)))
        return 0
    eq = equivalent()
    stale = sorted(set(eq) - set(status))
    by_module: dict[str, Counter] = defaultdict(Counter)
    survivors = []
    for name, state in sorted(status.items()):
        c = by_module[module_of(name)]
        c["all"] += 1
        if state == "not checked":
            c["unchecked"] += 1
            continue
        c["checked"] += 1
        if name in eq and state != "killed":
            c["equivalent"] += 1
        elif state in ("killed", "timeout"):
            c["killed"] += 1
        else:
            c[state.replace(" ", "_")] += 1
            survivors.append((name, state))
    total: Counter = Counter()
    head = f"{'module':28s}{'mutants':>8s}{'checked':>8s}{'killed':>7s}{'equiv.':>7s}{'survived':>9s}{'no tests':>9s}"
    print(head + f"{'score':>8s}  95% interval")

    def row(name: str, c: Counter) -> float:
        n = c["checked"] - c["equivalent"]
        score = c["killed"] / max(n, 1)
        lo, hi = wilson(c["killed"], n)
        print(f"{name:28s}{c['all']:8d}{c['checked']:8d}{c['killed']:7d}{c['equivalent']:7d}{c['survived']:9d}"
              f"{c['no_tests']:9d}{score:8.1%}  {lo:.0%}-{hi:.0%}")  # fmt: skip
        return score

    for module, c in sorted(by_module.items()):
        total.update(c)
        row(module.removeprefix("impasto."), c)
    score = row("all", total)
    other = Counter(state for _, state in survivors if state not in ("survived", "no tests", "not checked"))
    if other:
        print("other outcomes:", dict(other))
    if stale:
        print(f"{len(stale)} mutant(s) in {EQUIVALENT.name} no longer exist (the code changed): {stale[:5]}")
    if args.show:
        for name, state in survivors:
            print(f"\n## {state}")
            print(subprocess.run([sys.executable, "-m", "mutmut", "show", name], cwd=ROOT, capture_output=True,
                                 text=True).stdout)  # fmt: skip
    print(f"\nkilled {score:.1%} of the non-equivalent mutants (target >= 90%)")
    return 0 if score >= 0.9 else 1


if __name__ == "__main__":
    raise SystemExit(main())
