"""Time to quality at 512 px: coarse-to-fine against single-scale L-BFGS, same images, same run.

1. Single scale: ``steps`` (300) L-BFGS evaluations at the final size; its final total loss is the target.
2. Multi-scale (the default preset's ``start_size`` / ``scale_factor`` unless given): the loss of every
   evaluation at the final scale is the same loss (same targets, weights and normalization at 512 px), so
   its time to reach the target is read off the run, counting the coarse scales' time from the start.

The claim checked: multi-scale reaches the single-scale final loss in at most a third of the single-scale
wall time. CPU seconds of this process are reported too (the machine may be shared).

3. What a coarse scale can hand on at best: the single-scale result itself, resized to each coarser scale of
   the multi-scale schedule and back (antialiased bicubic, as between scales), has its loss measured at the
   final size. Even this, the low frequencies of the finished picture, starts far above the target: the loss
   depends on the top octave that a coarse scale cannot give.

    python benchmarks/bench_multiscale.py                         # tubingen + starry_night, 512 px
    python benchmarks/bench_multiscale.py --start-size 128 --scale-steps 150,150,150 --json out.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from common import tubingen_starry_night as _images


def run(opts, content, styles):
    """Every evaluation (global step, loss, wall and CPU seconds since the start, image height), and the
    result."""
    from impasto import estimate
    from impasto.methods.base import Stylization
    from impasto.methods.coarse_to_fine import CoarseToFine
    from impasto.methods.gatys import Gatys

    rows: list[dict] = []
    t0, c0 = time.perf_counter(), time.process_time()
    transfer = Gatys(opts)
    h, w = content.shape[-2:]
    plan = estimate.plan(opts, (w, h), [(s.shape[-1], s.shape[-2]) for s in styles])

    def record(info) -> None:
        rows.append({"step": info.step, "loss": info.loss, "wall": time.perf_counter() - t0,
                     "cpu": time.process_time() - c0, "h": int(info.image.shape[-2])})  # fmt: skip

    result = CoarseToFine(transfer).run(Stylization(content, list(styles), plan=plan), callback=record)
    return rows, result


def resampled_losses(opts, content, styles, image, sizes: list[int]) -> dict[int, float]:
    """Loss at the final size of ``image`` after resizing it to each of ``sizes`` (longest side) and back."""
    from impasto.core.sizes import fit_size, resize_tensor
    from impasto.methods.gatys import Gatys

    transfer = Gatys(opts)
    losses = transfer.build_terms(content, styles)
    full = tuple(image.shape[-2:])
    out = {}
    for size in [max(full), *sizes]:
        w, h = fit_size(full[1], full[0], size)
        out[size] = transfer.loss_and_grad(resize_tensor(resize_tensor(image, (h, w)), full), losses)[0]
    return out


def main() -> None:
    from impasto import make_options
    from impasto.io.images import load_image

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--steps", type=int, default=300, help="single-scale L-BFGS evaluations")
    p.add_argument("--start-size", type=int, help="default: the default preset's")
    p.add_argument("--scale-factor", type=float)
    p.add_argument("--scale-steps", help="e.g. 150,100 (default: the preset's schedule)")
    p.add_argument("--multi-steps", type=int, help="total steps of the multi-scale run (default: the preset's)")
    p.add_argument("--json", help="write the numbers and both loss curves here")
    p.add_argument("--save", help="write both results here as PREFIX-single.png and PREFIX-multi.png")
    args = p.parse_args()

    content_path, style_path = _images()
    content = load_image(content_path, args.size)
    style = load_image(style_path, args.size)
    # start size = size: one scale (whatever the preset's multi-scale settings)
    single = make_options(size=args.size, steps=args.steps, start_size=args.size, scale_steps=(args.steps,))
    steps = tuple(int(s) for s in args.scale_steps.split(",")) if args.scale_steps else None
    multi = make_options(size=args.size, start_size=args.start_size, scale_factor=args.scale_factor,
                         scale_steps=steps, steps=args.multi_steps)  # fmt: skip
    if multi.start_size is None:
        multi.start_size = args.size // 4
    print(f"images: {content_path.name} + {style_path.name}, {content.shape[-1]}x{content.shape[-2]}")
    print(f"multi-scale schedule: {multi.scales()}")

    rows_s, result_s = run(single, content, [style])
    target, single_wall, single_cpu = rows_s[-1]["loss"], rows_s[-1]["wall"], rows_s[-1]["cpu"]
    print(
        f"single scale: {args.steps} steps, final loss {target:.4g}, {single_wall:.0f} s wall, {single_cpu:.0f} s CPU"
    )

    coarse = [size for size, _ in multi.scales()[:-1]]
    resampled = resampled_losses(single, content, [style], result_s, coarse)
    for size, loss in resampled.items():
        via = "as it is" if size == args.size else f"resized to {size} px and back"
        print(f"  the single-scale result {via}: loss {loss:.4g} at {args.size} px")

    rows_m, result_m = run(multi, content, [style])
    final_h = content.shape[-2]
    hit = next((r for r in rows_m if r["h"] == final_h and r["loss"] <= target), None)
    last = [r for r in rows_m if r["h"] == final_h][-1]
    print(f"multi-scale: final loss {last['loss']:.4g} after {last['wall']:.0f} s wall, {last['cpu']:.0f} s CPU")
    # result per second: the single-scale run's loss when it had run as long as the whole multi-scale run
    same_time = [r for r in rows_s if r["wall"] <= last["wall"]]
    if same_time and last["wall"] < single_wall:
        r = same_time[-1]
        print(f"at equal time ({last['wall']:.0f} s) single scale was at step {r['step']}, loss {r['loss']:.4g} "
              f"(multi-scale {last['loss']:.4g}: {'better' if last['loss'] < r['loss'] else 'worse'})")  # fmt: skip
    if args.save:
        from impasto.io.images import save_image, tensor_to_pil

        for name, image in (("single", result_s), ("multi", result_m)):
            save_image(tensor_to_pil(image), Path(f"{args.save}-{name}.png"), {"bench": name})
    result = {"size": args.size, "single_steps": args.steps, "target_loss": target, "single_wall_s": single_wall,
              "single_cpu_s": single_cpu, "schedule": multi.scales(),
              "resampled_loss": resampled, "multi_final_loss": last["loss"], "multi_wall_s": last["wall"],
              "multi_cpu_s": last["cpu"]}  # fmt: skip
    if hit is None:
        print("multi-scale never reached the single-scale final loss")
        result.update(reached=False)
    else:
        ratio_wall, ratio_cpu = hit["wall"] / single_wall, hit["cpu"] / single_cpu
        print(f"reached it at step {hit['step']} after {hit['wall']:.0f} s wall ({ratio_wall:.2f} of single-scale), "
              f"{hit['cpu']:.0f} s CPU ({ratio_cpu:.2f})")  # fmt: skip
        print("PASS" if ratio_wall <= 1 / 3 else "FAIL", "(target: at most 1/3 of the single-scale wall time)")
        result.update(reached=True, hit_step=hit["step"], hit_wall_s=hit["wall"], hit_cpu_s=hit["cpu"],
                      ratio_wall=ratio_wall, ratio_cpu=ratio_cpu)  # fmt: skip
    if args.json:
        result.update(single_curve=rows_s, multi_curve=rows_m)
        Path(args.json).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
