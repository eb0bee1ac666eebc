"""Benchmark of the fast method (AdaIN): seconds per 512x512 image, warm, style statistics cached.

Compares impasto's fast path (bf16 where the CPU has it) with a plain fp32 reference measured in the same
run: the normalized VGG-19 encoder, AdaIN and the decoder in eager fp32 under ``torch.no_grad()``, as the
authors' ``test.py`` (pytorch-AdaIN) does. The reference is timed twice: with the style encoded once
(same work as impasto: the ratio that counts) and encoding the style for every image (the authors' script).
Then batch mode end to end (read, resize, stylize, write PNG) in images per second, and peak RSS.

    python benchmarks/bench_fast.py [--size 512] [--repeats 5] [--batch 8] [--device cpu] [--threads N]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from impasto.batch import run_batch
from impasto.core.vgg import build_vgg
from impasto.io.images import load_image, tensor_to_pil
from impasto.methods.adain import AdaIN, Decoder
from impasto.options import make_options

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("IMPASTO_SHARED_IMAGES", ROOT.parent / "shared" / "images"))


def reference_adain(content_f: torch.Tensor, style_f: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """AdaIN exactly as pytorch-AdaIN's ``function.py`` computes it (unbiased variance plus eps)."""
    n, c = content_f.shape[:2]
    s_var = style_f.view(n, c, -1).var(dim=2) + eps
    s_std, s_mean = s_var.sqrt().view(n, c, 1, 1), style_f.view(n, c, -1).mean(dim=2).view(n, c, 1, 1)
    c_var = content_f.view(n, c, -1).var(dim=2) + eps
    c_std, c_mean = c_var.sqrt().view(n, c, 1, 1), content_f.view(n, c, -1).mean(dim=2).view(n, c, 1, 1)
    return (content_f - c_mean) / c_std * s_std + s_mean


def interleaved(fns: dict, repeats: int, sync) -> dict[str, list[float]]:  # noqa: ANN001
    """Seconds of each function over ``repeats`` rounds, the functions alternating within each round so
    that all see the same background load; one warm-up call each first (oneDNN primitives, allocator)."""
    for fn in fns.values():
        fn()
    sync()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            sync()
            times[name].append(time.perf_counter() - start)
    return times


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def content_image(size: int) -> torch.Tensor:
    """A real photo as a size x size tensor: the shared astronaut (512x512), else the bundled cat, cropped."""
    path = SHARED / "free" / "astronaut.png"
    image = load_image(path if path.is_file() else ROOT / "examples" / "chelsea.png", None)
    side = min(image.shape[-2:])
    image = image[..., :side, :side]
    return torch.nn.functional.interpolate(image, size=(size, size), mode="bicubic", antialias=True).clamp(0, 1)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--batch", type=int, default=8, help="content images in the batch-mode run")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, help="torch threads (default: torch's choice, one per core)")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    load0 = os.getloadavg()[0]

    content = content_image(args.size)
    style = load_image(ROOT / "examples" / "starry_night.jpg", args.size)

    # impasto fast path: warm engine, style statistics cached after the first call.
    engine = AdaIN(device, "auto")
    engine.style_stats(style)
    exact = AdaIN(device, "fp32")
    diff = float((engine.stylize(content, [style]) - exact.stylize(content, [style])).abs().mean())
    rss_ours = peak_rss_mb()

    # Plain fp32 reference: VGG-19 (with its 1x1 input conv) + AdaIN + decoder, eager, torch.no_grad().
    vgg = build_vgg(["relu4_1"], padding="reflect", device=device)
    decoder = Decoder.pretrained().to(device)
    c, s = content.to(device), style.to(device)
    with torch.no_grad():
        style_f = vgg(s, ["relu4_1"])["relu4_1"]

        def reference_cached() -> torch.Tensor:
            return decoder(reference_adain(vgg(c, ["relu4_1"])["relu4_1"], style_f)).clamp(0, 1)

        def reference_script() -> torch.Tensor:
            return decoder(reference_adain(vgg(c, ["relu4_1"])["relu4_1"], vgg(s, ["relu4_1"])["relu4_1"])).clamp(0, 1)

        t = interleaved({
            "ours": lambda: engine.stylize(content, [style]),
            "ours32": lambda: exact.stylize(content, [style]),
            "ref": reference_cached,
            "script": reference_script,
        }, args.repeats, sync)  # fmt: skip
    ours, ours32, ref, ref_script = t["ours"], t["ours32"], t["ref"], t["script"]

    # Batch mode end to end: read, resize, stylize, write PNG with metadata.
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "in"
        folder.mkdir()
        for i in range(args.batch):
            tensor_to_pil(torch.roll(content, shifts=17 * i, dims=-1)).save(folder / f"c{i:02d}.png")
        opts = make_options(method="fast", size=args.size, device=args.device)
        contents = sorted(folder.iterdir())
        run_batch(contents[:1], [ROOT / "examples" / "starry_night.jpg"], Path(tmp), opts)  # warm
        result = run_batch(contents, [ROOT / "examples" / "starry_night.jpg"], Path(tmp), opts)

    med = statistics.median
    print(f"impasto fast-path benchmark: {args.size}x{args.size} content, style {tuple(style.shape[-2:])}, "
          f"device {device}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"engine dtype {str(engine.dtype).replace('torch.', '')}")  # fmt: skip
    print(f"{'':56s}{'median s':>10s}{'min s':>9s}")
    rows = [
        ("impasto fast (warm, style stats cached)", ours),
        ("impasto fast, precision fp32", ours32),
        ("reference fp32 eager, style encoded once", ref),
        ("reference fp32 eager, authors' script (style each time)", ref_script),
    ]
    for name, times in rows:
        print(f"{name:56s}{med(times):10.3f}{min(times):9.3f}")
    print(f"speed-up vs reference, style encoded once: {med(ref) / med(ours):.2f}x (target >= 2.5x), engine "
          f"{str(engine.dtype).replace('torch.', '')}")  # fmt: skip
    print(f"  of which the same arithmetic (fp32 vs fp32): {med(ref) / med(ours32):.2f}x; precision: "
          f"{med(ours32) / med(ours):.2f}x")  # fmt: skip
    print(f"speed-up vs the authors' script:           {med(ref_script) / med(ours):.2f}x")
    print(f"per-image target <= 1.0 s: {'met' if med(ours) <= 1.0 else 'NOT met'} ({med(ours):.3f} s)")
    print(f"mean |bf16 - fp32| per pixel: {diff:.4f}")
    print(f"batch mode: {len(result.written)} images in {result.seconds:.2f} s = "
          f"{result.images_per_second:.2f} images/s (read + stylize + write PNG)")  # fmt: skip
    print(f"peak RSS: {rss_ours:.0f} MB after the impasto runs, {peak_rss_mb():.0f} MB overall")
    load1 = os.getloadavg()[0]
    print(
        f"load average (1 min) at start/end: {load0:.2f}/{load1:.2f}"
        + ("  -- other processes were busy: figures are pessimistic" if max(load0, load1) > 1.5 else "")
    )
    sys.stdout.flush()


if __name__ == "__main__":
    main()
