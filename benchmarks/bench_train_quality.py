"""Quality for the training time: train a new style with ``impasto train``'s recipe (or a variant), keep the
network at several points of the run, and score each on held-out free photos at 512 px by the default preset's
objective (the Gatys loss: content relu4_2, style relu1_1..relu5_1, each normalized, style weight 5; lower is
better), next to the fast method (AdaIN) and a Gatys run on the same pre-sized images.

Training photos: ``../shared/images/content/`` and the free photos other than the held-out ones. The style
should be a painting that is not one of the 26 built-in styles (default: Turner's shipwreck, public domain).

    python benchmarks/bench_train_quality.py --minutes 5 15 --out /tmp/tq                    # the default recipe
    python benchmarks/bench_train_quality.py --minutes 15 --start scratch --out /tmp/tq-scratch
    python benchmarks/bench_train_quality.py --steps 80 --at 20 40 80 --set fine_tune_convs=true --out /tmp/v2
    python benchmarks/bench_train_quality.py --figure /tmp/tq /tmp/tq-scratch --gatys-steps 300 --out /tmp/fig
    python benchmarks/bench_train_quality.py --figure /tmp/tq /tmp/tq-scratch --gatys-images /tmp/gatys --out /tmp/fig
    python benchmarks/bench_train_quality.py --figure /tmp/v1 /tmp/v2 --at 142 --gatys-images /tmp/gatys --out /tmp/fig2

``--minutes`` trains for the largest budget and keeps the network when each smaller one has passed (one run, so
5 and 15 minutes cost 15); ``--steps`` / ``--at`` do the same by step count (for comparing recipes on a busy
machine, where minutes are not comparable). Results go to ``OUT/result.json``; ``--figure`` draws the photos,
the networks of the given result folders (a recipe other than the defaults titled with the options it changed),
AdaIN and Gatys side by side (free images only). A Gatys run counts steps, not minutes, so its pictures can be
made beforehand, on a busy machine, with
``impasto free/PHOTO.png STYLE --size 512 --steps 300 --seed 0 -o DIR/PHOTO.png`` and drawn with ``--gatys-images DIR``.
"""

from __future__ import annotations

import argparse
import copy
import io
import json
import os
import platform
import shutil
import time
from pathlib import Path

import torch

from common import SHARED as _SHARED
from impasto import api
from impasto.core.device import cpu_supports_bf16
from impasto.io.atomic import write_bytes, write_text
from impasto.io.images import load_image, save_image, tensor_to_pil
from impasto.methods.gatys import Gatys
from impasto.options import make_options
from impasto.training import Trainer, make_train_options

SHARED = Path(os.environ.get("IMPASTO_SHARED_IMAGES", _SHARED))
#: Free photos held out of training (figures may show free images only).
HELD_OUT = ("astronaut.png", "coffee.png")


def cpu_flags() -> str:
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, " + (
        "native bf16" if cpu_supports_bf16() else "no native bf16 (fp32)")


def parse_value(text: str):  # noqa: ANN201
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return tuple(t for t in text.split(",") if t) if "," in text or text.startswith("relu") else text


def training_photos(out: Path) -> Path:
    data = out / "train-photos"
    if data.exists():
        shutil.rmtree(data)
    data.mkdir(parents=True)
    for p in sorted((SHARED / "content").iterdir()) + sorted((SHARED / "free").iterdir()):
        if p.suffix.lower() in (".jpg", ".png") and p.name not in HELD_OUT:
            (data / p.name).write_bytes(p.read_bytes())
    return data


class Scorer:
    """The default preset's objective on the held-out photos, the style pre-sized once."""

    def __init__(self, style: Path, size: int) -> None:
        self.size = size
        self.engine = Gatys(make_options(size=size))
        self.style = load_image(style, size)
        self.photos = {name: load_image(SHARED / "free" / name, size) for name in HELD_OUT}
        self.terms = {name: self.engine.build_terms(c, [self.style]) for name, c in self.photos.items()}

    def __call__(self, name: str, image: torch.Tensor) -> float:
        return sum(self.parts(name, image).values())

    def parts(self, name: str, image: torch.Tensor) -> dict[str, float]:
        """The objective's weighted terms (content, style): a lower total can be more style or more photo."""
        with torch.no_grad():
            _, parts = self.engine.evaluate(image.to(self.photos[name].dtype), self.terms[name])
        return {k: round(v, 4) for k, v in parts.items() if v}


def train(args: argparse.Namespace, out: Path) -> dict:
    overrides = {k: parse_value(v) for k, v in (s.split("=", 1) for s in args.set)}
    options = make_train_options(start=args.start, steps=args.steps or 10**7, checkpoint_every=0, sample_every=0,
                                 seed=args.seed, **overrides)  # fmt: skip
    data = training_photos(out)
    trainer = Trainer(args.style, out / "model.pt", options, data, history=out / "history.csv")
    budgets = sorted(args.minutes or [])
    at = sorted(set(args.at or []) | ({args.steps} if args.steps else set()))
    kept: list[dict] = []
    # exponential moving averages of the weights, one per --ema decay (kept beside the network itself)
    emas = {d: copy.deepcopy(trainer.net.state_dict()) for d in args.ema or []}

    def keep(label: str) -> None:
        seconds = round(trainer.history[-1]["seconds"], 1)
        kept.append({"label": label, "step": trainer.step, "seconds": seconds,
                     "state": copy.deepcopy(trainer.net.state_dict())})  # fmt: skip
        for d, avg in emas.items():
            kept.append({"label": f"{label} ema{d:g}", "step": trainer.step, "seconds": seconds,
                         "state": copy.deepcopy(avg)})  # fmt: skip
        print(f"kept {label}: step {trainer.step}, {kept[-1]['seconds']:.0f} s", flush=True)

    def callback(info) -> None:  # noqa: ANN001
        with torch.no_grad():
            for d, avg in emas.items():
                for k, v in trainer.net.state_dict().items():
                    if v.is_floating_point():
                        avg[k].mul_(d).add_(v, alpha=1 - d)
        while budgets and info.elapsed >= 60 * budgets[0]:
            keep(f"{budgets.pop(0):g} min")
        while at and info.step >= at[0]:
            keep(f"{at.pop(0)} steps")

    t0 = time.perf_counter()
    trainer.run(callback, 60 * max(args.minutes) if args.minutes else None)
    while budgets:  # the run ended by its budget: the last network is the largest budget's
        keep(f"{budgets.pop(0):g} min")
    print(f"trained {trainer.step} steps in {(time.perf_counter() - t0) / 60:.1f} min", flush=True)

    scorer = Scorer(Path(args.style), args.size)
    net = trainer.net.eval()
    rows = []
    for k in kept:
        net.load_state_dict(k["state"])
        scores, images = {}, {}
        for name, photo in scorer.photos.items():
            with torch.no_grad():
                y = net(photo.to(trainer.device)).clamp(0, 1).float().cpu()
            scores[name] = round(scorer(name, y), 4)
            images[name] = y
            save_image(tensor_to_pil(y), out / f"{Path(name).stem}-{k['label'].replace(' ', '')}.png")
        torch.save(k["state"], out / f"state-{k['label'].replace(' ', '')}.pt")
        rows.append({"label": k["label"], "step": k["step"], "seconds": k["seconds"], "objective": scores})
        print(json.dumps(rows[-1]), flush=True)
    base = {}
    for name in HELD_OUT:
        t = time.perf_counter()
        img = api.stylize_tensors(SHARED / "free" / name, args.style, make_options(method="fast", size=args.size))
        base[name] = {"objective": round(scorer(name, img), 4), "seconds": round(time.perf_counter() - t, 2)}
    print("AdaIN", json.dumps(base), flush=True)
    result = {"cpu": cpu_flags(), "style": Path(args.style).name, "start": args.start, "set": args.set,
              "options": options.to_dict(), "size": args.size, "kept": rows, "fast": base,
              "step_seconds": round(trainer.history[-1]["seconds"] / max(trainer.step, 1), 2)}  # fmt: skip
    write_text(out / "result.json", json.dumps(result, indent=1))
    return result


def recipe_changes(res: dict) -> str:
    """A result's training options that differ from today's defaults for its start, as ``impasto train`` spells
    them (``--content-weight 2``); the run's length, checkpoints and samples left out."""
    defaults = make_train_options(start=res["start"]).to_dict()
    skip = {"steps", "epochs", "checkpoint_every", "sample_every", "device"}
    if res["start"] != "builtin":
        skip |= {"style_row", "fine_tune_convs", "conv_lr"}  # the built-in start's alone
    return " ".join(f"--{k.replace('_', '-')} {format(v, 'g') if isinstance(v, float) else v}"
                    for k, v in res["options"].items() if k not in skip and defaults.get(k) != v)  # fmt: skip


def figure(args: argparse.Namespace, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from impasto.methods.multistyle import MultiStyleNet
    from impasto.methods.transformer import TransformerNet

    results = [(Path(d), json.loads((Path(d) / "result.json").read_text())) for d in args.figure]
    style = Path(args.style)
    scorer = Scorer(style, args.size)
    columns: list[tuple[str, dict]] = []  # (title, {photo: image})
    parts: dict[str, dict] = {}  # title -> photo -> weighted terms
    for folder, res in results:
        changed = recipe_changes(res)
        for row in res["kept"]:
            if args.at and row["step"] not in args.at:
                continue
            state = torch.load(folder / f"state-{row['label'].replace(' ', '')}.pt", weights_only=True)
            if res["start"] == "builtin":
                net = MultiStyleNet.for_state_dict(state)
            else:
                net = TransformerNet(res["options"]["width"])
            net.load_state_dict(state)
            net.eval()
            imgs = {}
            with torch.no_grad():
                for name, photo in scorer.photos.items():
                    imgs[name] = net(photo).clamp(0, 1).float()
            title = f"{'built-in start' if res['start'] == 'builtin' else 'from scratch'}, {row['label']}"
            if changed:
                title += "\n" + changed
            columns.append((title, imgs))
            parts[title] = {n: scorer.parts(n, i) for n, i in imgs.items()}
    fast, gatys = {}, {}
    for name in HELD_OUT:
        fast[name] = api.stylize_tensors(SHARED / "free" / name, style, make_options(method="fast", size=args.size))
        if args.gatys_images:  # pictures of an earlier `impasto PHOTO STYLE --size 512 --steps N` run per photo
            gatys[name] = load_image(Path(args.gatys_images) / f"{Path(name).stem}.png", args.size)
        elif args.gatys_steps:
            gatys[name] = api.stylize_tensors(SHARED / "free" / name, style,
                                              make_options(size=args.size, steps=args.gatys_steps))  # fmt: skip
    columns.append(("fast (AdaIN)", fast))
    parts["fast (AdaIN)"] = {n: scorer.parts(n, i) for n, i in fast.items()}
    if gatys:
        columns.append((f"Gatys, {args.gatys_steps} steps", gatys))
        parts[columns[-1][0]] = {n: scorer.parts(n, i) for n, i in gatys.items()}
    scores = {title: {n: round(sum(p.values()), 4) for n, p in by_photo.items()} for title, by_photo in parts.items()}
    fig, axes = plt.subplots(len(HELD_OUT), len(columns) + 1, figsize=(3.2 * (len(columns) + 1), 3.4 * len(HELD_OUT)),
                             squeeze=False)  # fmt: skip
    for r, name in enumerate(HELD_OUT):
        axes[r][0].imshow(tensor_to_pil(scorer.photos[name]))
        axes[r][0].set_title("photo (held out)" if r == 0 else "", fontsize=9)
        for c, (title, imgs) in enumerate(columns, start=1):
            axes[r][c].imshow(tensor_to_pil(imgs[name]))
            axes[r][c].set_title(f"{title}\nobjective {scores[title][name]:.3g}", fontsize=9)
    for ax in axes.flat:
        ax.axis("off")
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, dpi=70, format="jpg", pil_kwargs={"quality": 85})
    plt.close(fig)
    out.mkdir(parents=True, exist_ok=True)
    write_bytes(out / "train-quality.jpg", buf.getvalue())
    write_text(out / "scores.json", json.dumps({"cpu": cpu_flags(), "scores": scores, "parts": parts}, indent=1))
    print(json.dumps({"scores": scores, "parts": parts}, indent=1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--style", default=str(SHARED / "style" / "shipwreck.jpg"))
    ap.add_argument("--start", default="builtin", choices=("builtin", "scratch"))
    ap.add_argument("--minutes", type=float, nargs="*", help="time budgets (one run to the largest)")
    ap.add_argument("--steps", type=int, help="train this many steps (instead of --minutes)")
    ap.add_argument("--at", type=int, nargs="*", help="with --steps: keep the network at these steps too; with "
                    "--figure: draw only the networks kept at these steps")  # fmt: skip
    ap.add_argument("--set", nargs="*", default=[], metavar="OPTION=VALUE", help="training options, e.g. lr=0.02")
    ap.add_argument("--ema", type=float, nargs="*", help="also keep moving averages of the weights with these decays")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--size", type=int, default=512, help="evaluation size")
    ap.add_argument("--figure", nargs="*", help="result folders to draw (instead of training)")
    ap.add_argument("--gatys-steps", type=int, default=300)
    ap.add_argument("--gatys-images", help="folder of Gatys pictures made beforehand (PHOTO_STEM.png) to draw instead")
    ap.add_argument("--out", default="/tmp/impasto-train-quality")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.figure:
        figure(args, out)
    elif args.minutes or args.steps:
        train(args, out)
    else:
        ap.error("give --minutes, --steps or --figure")


if __name__ == "__main__":
    main()
