"""Summary of the last ``mutmut run`` (``make mutation``): per module, mutants killed, survived, judged equivalent.

Mutants judged equivalent (they cannot change any result: a mutated default that every caller overrides, a
message reworded) are listed in ``benchmarks/mutation_equivalent.txt``, one per line with the reason after ``#``.
The score is killed / (all - equivalent); timeouts count as killed (the mutant hung the tests).

    python benchmarks/mutation_report.py            # the table
    python benchmarks/mutation_report.py --show     # and the diff of every surviving, non-equivalent mutant
"""

from __future__ import annotations

import argparse
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


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--show", action="store_true", help="print the diff of each surviving non-equivalent mutant")
    args = p.parse_args()
    status = results()
    if not status:
        print("no mutation results: run `make mutation` first")
        return 1
    eq = equivalent()
    stale = sorted(set(eq) - set(status))
    by_module: dict[str, Counter] = defaultdict(Counter)
    survivors = []
    for name, state in sorted(status.items()):
        c = by_module[module_of(name)]
        c["all"] += 1
        if name in eq and state != "killed":
            c["equivalent"] += 1
        elif state in ("killed", "timeout"):
            c["killed"] += 1
        else:
            c[state.replace(" ", "_")] += 1
            survivors.append((name, state))
    total: Counter = Counter()
    print(f"{'module':34s}{'mutants':>8s}{'killed':>8s}{'equiv.':>8s}{'survived':>9s}{'no tests':>9s}{'score':>8s}")
    for module, c in sorted(by_module.items()):
        total.update(c)
        score = c["killed"] / max(c["all"] - c["equivalent"], 1)
        print(f"{module:34s}{c['all']:8d}{c['killed']:8d}{c['equivalent']:8d}{c['survived']:9d}{c['no_tests']:9d}"
              f"{score:8.1%}")  # fmt: skip
    score = total["killed"] / max(total["all"] - total["equivalent"], 1)
    print(f"{'all':34s}{total['all']:8d}{total['killed']:8d}{total['equivalent']:8d}{total['survived']:9d}"
          f"{total['no_tests']:9d}{score:8.1%}")  # fmt: skip
    other = Counter(state for _, state in survivors if state not in ("survived", "no tests"))
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
