"""The fast method's convolution forms side by side in one process: the AdaIN encoder and decoder with
oneDNN's direct kernels only, with Winograd's F(4x4, 3x3) (``impasto.core.winograd``), and with the decoder's
upsampling stages at the low resolution too (``impasto.core.subpixel``, what ``AdaIN`` runs in fp32 on a CPU).
Each network is timed alternately with the others (the same background load), warm; the outputs are compared.
Then Johnson et al.'s transformer with its upsampling stages in the 2x2 sub-pixel form against the form it had
before (one 3x3 convolution with 4x the outputs and a pixel shuffle), at inference (one 288x512 frame) and per
training step (forward and backward, a batch of 4 at 256 px).

    python benchmarks/bench_layers.py [--sizes 288x512 512x512 1024x1024] [--repeats 3] [--threads N]
                                      [--widths 32 16]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from impasto.core.subpixel import UpsampleConv2d
from impasto.core.winograd import WinogradConv2d
from impasto.methods.adain import AdaIN, Decoder
from impasto.methods.transformer import TransformerNet, UpsampleConv

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_fast import interleaved  # noqa: E402 - the same alternating timer

# The old form's tap selection (it was a buffer of the module, made once): phase a of the output, low-res
# offset u (0..2 <-> rows i-1..i+1), original tap d (0..2 <-> -1..1).
_SEL = torch.zeros(2, 3, 3)
for _a in range(2):
    for _d in range(3):
        _SEL[_a, (_a + _d - 1) // 2 + 1, _d] = 1.0


def shuffle_form(self: UpsampleConv, x: torch.Tensor) -> torch.Tensor:
    """The transformer's upsampling stage before 2026-12-03: a 3x3 convolution at the low resolution with four
    phases' kernels (the 3x3 kernel's taps moved to where each phase reads them), then a pixel shuffle."""
    w = self.conv.weight
    k = torch.einsum("aud,bve,ocde->oabcuv", _SEL, _SEL, w).reshape(4 * w.shape[0], w.shape[1], 3, 3)
    y = F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), k, self.conv.bias.repeat_interleave(4))
    return F.pixel_shuffle(y, 2)


def transformer_forms(widths: list[int], repeats: int) -> None:
    """Inference and training-step time of the transformer with each upsampling form."""
    current = UpsampleConv.fast
    forms = {"pixel shuffle": shuffle_form, "2x2 sub-pixel": current}
    frame, batch = torch.rand(1, 3, 288, 512), torch.rand(4, 3, 256, 256)
    try:
        for width in widths:
            net = TransformerNet(width)
            fns, outs = {}, {}
            for name, form in forms.items():

                def infer(form=form, net=net) -> None:  # noqa: ANN001
                    UpsampleConv.fast = form
                    with torch.inference_mode():
                        net(frame)

                def train(form=form, net=net) -> None:  # noqa: ANN001
                    UpsampleConv.fast = form
                    net.zero_grad()
                    net(batch).square().mean().backward()

                fns[f"{name} inference"], fns[f"{name} training"] = infer, train
                UpsampleConv.fast = form
                with torch.inference_mode():
                    outs[name] = net(frame)
            times = {k: statistics.median(v) * 1e3 for k, v in interleaved(fns, repeats, lambda: None).items()}
            diff = (outs["2x2 sub-pixel"] - outs["pixel shuffle"]).abs().max().item()
            print(f"transformer width {width} (output max diff {diff:.1e}):")
            for what in ("inference", "training"):
                old, new = times[f"pixel shuffle {what}"], times[f"2x2 sub-pixel {what}"]
                print(f"  {what:9s} pixel shuffle {old:6.0f} ms, 2x2 sub-pixel {new:6.0f} ms ({old / new:.2f}x)")
    finally:
        UpsampleConv.fast = current


def direct(model: nn.Sequential) -> nn.Sequential:
    """``model`` with every Winograd convolution back to its ``nn.Conv2d``."""
    return nn.Sequential(*[m.conv if isinstance(m, WinogradConv2d) else m for m in model])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", nargs="+", default=["288x512", "512x512", "1024x1024"], help="HxW of the image")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int)
    p.add_argument("--widths", type=int, nargs="*", default=[32, 16], help="transformer widths (none: skip)")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    engine = AdaIN(precision="fp32")
    if engine.device.type != "cpu" or engine.dtype != torch.float32:
        sys.exit("bench_layers: the Winograd and sub-pixel forms are used in fp32 on a CPU only")
    cl = torch.channels_last
    winograd_decoder = copy.deepcopy(engine.decoder)  # Winograd, and the upsampling stages as written
    plain = Decoder.pretrained()
    for i, m in enumerate(winograd_decoder):
        if isinstance(m, UpsampleConv2d):
            winograd_decoder[i], winograd_decoder[i + 1], winograd_decoder[i + 2] = plain[i], plain[i + 1], m.conv
    networks = {
        "direct": (direct(engine.encoder), Decoder.pretrained().to(memory_format=cl)),
        "winograd": (engine.encoder, winograd_decoder),
        "winograd+subpixel": (engine.encoder, engine.decoder),
    }
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; median of {args.repeats}, ms")
    for size in args.sizes:
        h, w = (int(v) for v in size.split("x"))
        x = torch.rand(1, 3, h, w).contiguous(memory_format=cl)
        with torch.inference_mode():
            feats = networks["direct"][0](x)
            outs = {name: dec(feats) for name, (_, dec) in networks.items()}
            fns = {}
            for name, (enc, dec) in networks.items():
                fns[f"{name} encoder"] = lambda enc=enc, x=x: enc(x)
                fns[f"{name} decoder"] = lambda dec=dec, feats=feats: dec(feats)
            times = {k: statistics.median(v) * 1e3 for k, v in interleaved(fns, args.repeats, lambda: None).items()}
        ref = times["direct encoder"] + times["direct decoder"]
        print(f"{h}x{w}:")
        for name in networks:
            enc, dec = times[f"{name} encoder"], times[f"{name} decoder"]
            diff = (outs[name] - outs["direct"]).abs().max().item()
            print(f"  {name:18s} encoder {enc:7.0f}  decoder {dec:7.0f} ({times['direct decoder'] / dec:.2f}x)  "
                  f"pass {enc + dec:7.0f} ({ref / (enc + dec):.2f}x)  decoder output max diff {diff:.1e}")  # fmt: skip

    transformer_forms(args.widths, args.repeats)


if __name__ == "__main__":
    main()
