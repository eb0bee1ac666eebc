"""Quality for the time: train a network on ../shared/images/content/ plus the free photos with starry_night
for a time budget (45 minutes by default), then, on free photos it never saw, score its outputs by the default
preset's objective (Gatys loss: content relu4_2, style relu1_1..relu5_1, each normalized, style weight 5) next to
the fast method's (AdaIN) and a 300-step Gatys run's, at 512 px; writes the numbers (JSON) and a figure
(photo | model | AdaIN | Gatys, free images only) for the documentation.

    python benchmarks/bench_quality.py --minutes 45 --out /tmp/quality      # the benchmark
    python benchmarks/bench_quality.py --minutes 2 --gatys-steps 20 --size 256 --out /tmp/quality-smoke
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import time
from pathlib import Path

import torch

from common import SHARED as _SHARED
from impasto import api
from impasto.io.atomic import write_bytes, write_text
from impasto.io.images import load_image, save_image, tensor_to_pil
from impasto.methods.gatys import Gatys
from impasto.options import make_options

#: Free photos held out of training (the figure may show free images only).
HELD_OUT = ("astronaut.png", "coffee.png")

SHARED = Path(os.environ.get("IMPASTO_SHARED_IMAGES", _SHARED))


def score(engine: Gatys, content: torch.Tensor, style: torch.Tensor, image: torch.Tensor) -> float:
    """The default preset's objective of ``image`` for this content and style."""
    terms = engine.build_terms(content, [style])
    with torch.no_grad():
        return float(engine.evaluate(image.to(content.dtype), terms)[0])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=45.0, help="training time budget")
    ap.add_argument("--size", type=int, default=512, help="evaluation size")
    ap.add_argument("--gatys-steps", type=int, default=300)
    ap.add_argument("--width", type=int, default=32)
    ap.add_argument("--out", default="/tmp/impasto-quality", help="folder for the model, images, numbers, figure")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    style = SHARED / "style" / "starry_night.jpg"
    data = out / "train-photos"
    if data.exists():
        shutil.rmtree(data)
    data.mkdir()
    for p in sorted((SHARED / "content").iterdir()) + sorted((SHARED / "free").iterdir()):
        if p.suffix.lower() in (".jpg", ".png") and p.name not in HELD_OUT:
            (data / p.name).write_bytes(p.read_bytes())
    print(f"training on {len(list(data.iterdir()))} photos for {args.minutes} min; held out: {', '.join(HELD_OUT)}")
    t0 = time.perf_counter()
    result = api.train(style, out / "starry.pt", data=data, steps=10**7, width=args.width, checkpoint_every=500,
                       sample_every=100, max_minutes=args.minutes, history=out / "history.csv")  # fmt: skip
    train_s = time.perf_counter() - t0
    print(f"trained {result.steps} steps ({result.steps * 4} images) in {train_s / 60:.1f} min")

    engine = Gatys(make_options(size=args.size))
    rows, panels = [], []
    for name in HELD_OUT:
        photo = SHARED / "free" / name
        content = load_image(photo, args.size)
        style_t = load_image(style, args.size)
        t = time.perf_counter()
        model_img = api.stylize_tensors(photo, None, make_options(model=str(result.model), size=args.size))
        model_s = time.perf_counter() - t
        t = time.perf_counter()
        fast_img = api.stylize_tensors(photo, style, make_options(method="fast", size=args.size))
        fast_s = time.perf_counter() - t
        t = time.perf_counter()
        gatys_img = api.stylize_tensors(photo, style, make_options(size=args.size, steps=args.gatys_steps))
        gatys_s = time.perf_counter() - t
        row = {"photo": name, "size": args.size}
        for method, img, secs in (("model", model_img, model_s), ("fast", fast_img, fast_s),
                                  (f"gatys{args.gatys_steps}", gatys_img, gatys_s)):  # fmt: skip
            row[method] = {"objective": round(score(engine, content, style_t, img), 4), "seconds": round(secs, 2)}
            save_image(tensor_to_pil(img), out / f"{Path(name).stem}-{method}.png")
        rows.append(row)
        panels.append((content, model_img, fast_img, gatys_img))
        print(json.dumps(row))
    summary = {"train_minutes": round(train_s / 60, 2), "steps": result.steps, "width": args.width,
               "final_losses": result.history[-1] if result.history else {}, "photos": rows}  # fmt: skip
    write_text(out / "quality.json", json.dumps(summary, indent=1))
    figure(panels, rows, out / "quality.png", args.gatys_steps)
    print(f"wrote {out / 'quality.json'} and {out / 'quality.png'}")


def figure(panels, rows, path: Path, gatys_steps: int) -> None:  # noqa: ANN001
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    titles = ["photo (held out)", "trained model", "fast (AdaIN)", f"Gatys, {gatys_steps} steps"]
    keys = [None, "model", "fast", f"gatys{gatys_steps}"]
    fig, axes = plt.subplots(len(panels), 4, figsize=(16, 4.2 * len(panels)), squeeze=False)
    for r, (images, row) in enumerate(zip(panels, rows)):
        for c, img in enumerate(images):
            ax = axes[r][c]
            ax.imshow(tensor_to_pil(img))
            label = titles[c] if keys[c] is None else f"{titles[c]}\nobjective {row[keys[c]]['objective']:.3g}, " \
                f"{row[keys[c]]['seconds']:.1f} s"  # fmt: skip
            ax.set_title(label)
            ax.axis("off")
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, dpi=80, format="png")
    plt.close(fig)
    write_bytes(path, buf.getvalue())


if __name__ == "__main__":
    main()
