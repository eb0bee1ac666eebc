"""Trained per-style networks (Johnson et al. 2016): the network, model files and their safety, training
(loss, data, checkpoints, exact resume, SIGTERM), ONNX export, and stylizing with --model in the CLI and API.

A tiny network (width 8) is trained for a few steps on 32-48 px crops inside the test session: no binary
model is committed.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

import impasto
from impasto import api
from impasto.cli import main
from impasto.core import costs
from impasto.core.color import rgb_to_yiq
from impasto.core.tiles import tiled_apply
from impasto.errors import InputError
from impasto.estimate import plan
from impasto.io.images import load_image, read_metadata
from impasto.io.models import ARCHITECTURE, FORMAT_VERSION, load_model, model_bytes, save_model
from impasto.methods import model as model_method
from impasto.methods.transformer import Stylizer, TransformerNet, flops_per_pixel, network
from impasto.options import make_options
from impasto.training import UNTIL_STOPPED, PhotoFolder, Trainer, find_photos, make_train_options

from .conftest import TINY


def _hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# -- the network ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("hw", [(17, 23), (33, 50), (64, 64), (16, 91)])
def test_output_has_the_input_size_and_fast_forms_compute_the_published_layers(hw):
    torch.manual_seed(0)
    net = TransformerNet(8).eval()
    for p in net.parameters():
        p.data.normal_(0, 0.2)
    x = torch.rand(2, 3, *hw)
    with torch.no_grad():
        net.fast = False  # nearest x2 + conv, 9x9 conv: as written
        plain = net(x)
        net.fast = True  # sub-pixel upsampling, space-to-depth 9x9 conv
        fast = net(x)
    assert plain.shape == x.shape and fast.shape == x.shape
    assert torch.allclose(plain, fast, atol=1e-4 * float(plain.abs().max()))
    # the inference path (channels-last statistics in two passes, ReLU in place) against nn.InstanceNorm2d's
    model = SimpleNamespace(width=8, state_dict=net.state_dict(), metadata={}, path="net")
    stylizer = Stylizer(model, torch.device("cpu"))  # type: ignore[arg-type]
    ref = TransformerNet(8).eval()
    ref.load_state_dict(net.state_dict())
    for name, norm in ref.named_modules():
        if name and hasattr(norm, "fixed"):  # our InstanceNorm -> torch's, same weights
            torch_norm = torch.nn.InstanceNorm2d(norm.weight.numel(), affine=True, eps=norm.eps)
            torch_norm.load_state_dict({"weight": norm.weight, "bias": norm.bias})
            parent, _, attr = name.rpartition(".")
            setattr(ref.get_submodule(parent) if parent else ref, attr, torch_norm)
    ref.fast = False
    with torch.no_grad():
        expected = ref(x).clamp(0, 1)
    assert torch.allclose(stylizer(x), expected, atol=1e-4)


def test_architecture_is_johnsons_and_flops_count_its_convolutions():
    net = TransformerNet(32)
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [c.kernel_size for c in convs][:3] == [(9, 9), (3, 3), (3, 3)] and convs[-1].kernel_size == (9, 9)
    assert [c.stride for c in convs][:3] == [(1, 1), (2, 2), (2, 2)] and len(net.res) == 5
    assert all(c.padding_mode == "reflect" for c in convs)
    assert sum(p.numel() for p in net.parameters()) == 1_679_235  # pytorch/examples' TransformerNet
    # FLOPs counted from the layers' actual outputs (plain forward) at a 64x64 input.
    macs = []
    hooks = [c.register_forward_hook(lambda m, i, o: macs.append(o[0].numel() * m.in_channels * m.kernel_size[0] ** 2))
             for c in convs]  # fmt: skip
    net.fast = False
    with torch.no_grad():
        net(torch.rand(1, 3, 64, 64))
    for h in hooks:
        h.remove()
    assert flops_per_pixel(32) == pytest.approx(2 * sum(macs) / 64**2, rel=1e-9)


def test_tiles_share_the_whole_pictures_instance_norm_statistics(trained, content_path):
    stylizer = Stylizer(load_model(trained), torch.device("cpu"))
    x = load_image(content_path, 160)
    whole = stylizer(x)
    tiled = stylizer.tiled(x, 96, 24, 2)
    # Each tile normalized by its own statistics instead: what sharing them avoids.
    own = tiled_apply(x, stylizer, 96, 24, 2).clamp(0, 1)
    shared_err, own_err = float((tiled - whole).abs().mean()), float((own - whole).abs().mean())
    assert tiled.shape == whole.shape and shared_err < 0.9 * own_err


# -- model files ------------------------------------------------------------------------------------------
def test_model_file_round_trips_with_its_metadata(trained, style_path, photos):
    m = load_model(trained)
    meta = m.metadata
    assert m.kind == "model" and meta["architecture"] == ARCHITECTURE and meta["width"] == 8
    assert meta["step"] == 4 and meta["images_seen"] == 8 and meta["impasto"] == impasto.__version__
    assert meta["style"] == {"name": "starry_night.jpg", "sha256": _hash(style_path),
                             "size": list(Image.open(style_path).size)}  # fmt: skip
    training = meta["training"]
    assert training["steps"] == 4 and training["seed"] == 3 and training["width"] == 8 and training["lr"] == 1e-3
    assert training["content_layers"] == ["relu2_2"] and training["style_layers"][-1] == "relu4_1"
    assert set(training) == set(make_train_options().to_dict())  # every option recorded
    assert meta["data"]["images"] == 2 and meta["data"]["folder"] == str(photos)
    assert set(meta["losses"]) == {"loss", "content", "style", "tv"} and meta["losses"]["style"] > 0
    net = network(m)
    again = tmp = trained.with_name("again.pt")
    save_model(tmp, net.state_dict(), meta)
    m2 = load_model(again)
    assert m2.metadata == meta and all(torch.equal(m2.state_dict[k], v) for k, v in m.state_dict.items())


class _Payload:
    """Unpickling this runs ``touch MARKER`` (what a malicious model file would do)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _bad_files(folder: Path, trained: Path) -> dict[str, tuple[Path, str]]:
    """name -> (file, what the one-line error must say)."""
    marker = folder / "PWNED"
    good = trained.read_bytes()
    files = {
        "truncated": (good[: len(good) // 2], "corrupt"),
        "empty": (b"", "empty"),
        "image": ((Path(__file__).parents[1] / "examples" / "chelsea.png").read_bytes(), "not an impasto model"),
        "foreign": (None, "not an impasto model"),
        "newer": (None, "newer impasto"),
        "shape": (None, "expected"),
        "nan": (None, "NaN"),
        "pickle": (pickle.dumps({"format": "impasto-model", "x": _Payload(marker)}), "refused"),
        "torch-pickle": (None, "refused"),
    }
    out = {}
    for name, (data, why) in files.items():
        path = folder / f"{name}.pt"
        if name == "foreign":
            torch.save(TransformerNet(8).state_dict(), path)  # a plain PyTorch state dict
        elif name == "newer":
            raw = torch.load(trained, weights_only=True)
            raw["format_version"] = FORMAT_VERSION + 1
            torch.save(raw, path)
        elif name == "shape":
            m = load_model(trained)
            sd = dict(m.state_dict, **{"conv1.weight": torch.zeros(8, 3, 3, 3)})
            path.write_bytes(model_bytes(sd, m.metadata))
        elif name == "nan":
            m = load_model(trained)
            path.write_bytes(
                model_bytes(dict(m.state_dict, **{"in1.bias": torch.full((8,), float("nan"))}), m.metadata)
            )
        elif name == "torch-pickle":
            torch.save({"format": "impasto-model", "x": _Payload(marker)}, path)
        else:
            path.write_bytes(data)
        out[name] = (path, why)
    return out


def test_corrupt_foreign_and_malicious_files_are_refused_in_one_line(tmp_path, trained, content_path):
    marker = tmp_path / "PWNED"
    for name, (path, why) in _bad_files(tmp_path, trained).items():
        with pytest.raises(InputError) as err:
            network(load_model(path))
        message = str(err.value)
        assert why in message and "\n" not in message and str(path) in message, (name, message)
    assert not marker.exists()  # the payloads never ran
    # The command line: exit 2, one line, nothing written.
    out = tmp_path / "out.png"
    for name in ("pickle", "truncated", "newer", "shape"):
        r = subprocess.run([sys.executable, "-m", "impasto", str(content_path), "--model", str(tmp_path / f"{name}.pt"),
                            "-o", str(out)], capture_output=True, text=True, timeout=300)  # fmt: skip
        assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, (name, r.stderr)
    assert not out.exists() and not marker.exists()


# -- training ---------------------------------------------------------------------------------------------
def test_a_few_steps_at_64px_lower_the_training_loss(tmp_path, photos, style_path):
    opts = make_train_options(**{**TINY, "train_size": 64, "steps": 8, "lr": 2e-3})
    t = Trainer(style_path, tmp_path / "m.pt", opts, photos, warn=lambda m: None)
    fixed = t.data.batch(0, 2).contiguous(memory_format=torch.channels_last)

    def loss() -> float:
        with torch.no_grad():
            parts = t.loss(t.net(fixed), t.loss.content_targets(fixed))
        return float(opts.content_weight * parts["content"] + opts.style_weight * parts["style"])

    before = loss()
    t.run()
    after = loss()
    assert after < 0.6 * before, (before, after)
    rows = t.history
    assert [r["step"] for r in rows] == list(range(1, 9)) and rows[-1]["style"] < rows[0]["style"]


def test_a_time_budget_alone_trains_for_the_whole_budget(tmp_path, photos, style_path, capsys):
    argv = ["train", str(style_path), "--data", str(photos), "-o", str(tmp_path / "m.pt"), "--minutes", "0.06",
            "--from-scratch", "--width", "8", "--train-size", "32", "--style-size", "48", "--batch-size", "1",
            "--sample-every", "0", "--checkpoint-every", "0"]  # fmt: skip
    assert main(argv) == 0
    meta = load_model(tmp_path / "m.pt").metadata
    assert meta["seconds"] >= 3.6 and meta["training"]["steps"] == UNTIL_STOPPED  # the budget, no step count
    assert meta["step"] > 1  # (3.6 s: long enough for a second step on a loaded machine)
    assert "/4 [" in capsys.readouterr().err  # a bar over the budget's 4 seconds


def test_data_is_recursive_skips_unreadable_files_and_is_a_function_of_the_seed(photos, tmp_path):
    warnings = []
    files = find_photos(photos)
    assert [f.name for f in files] == ["a.png", "broken.jpg", "b.jpg"]
    data = PhotoFolder(files, 32, seed=1, warn=warnings.append)
    assert len(data) == 2 and "broken.jpg" in warnings[0]  # the header check caught it
    a, b = data.batch(5, 3), PhotoFolder(files, 32, seed=1, warn=lambda m: None).batch(5, 3)
    assert a.shape == (3, 3, 32, 32) and torch.equal(a, b)  # batch 5 of a tiny folder: epochs wrap
    assert not torch.equal(a, PhotoFolder(files, 32, seed=2, warn=lambda m: None).batch(5, 3))
    assert 0 <= float(a.min()) and float(a.max()) <= 1 and float(a.std()) > 0.05  # real photo crops
    with pytest.raises(InputError, match="no images"):
        find_photos(tmp_path)


def test_resumed_training_equals_uninterrupted_training_bit_for_bit(tmp_path, photos, style_path):
    quiet = {"warn": lambda m: None}
    straight = api.train(style_path, tmp_path / "straight.pt", data=photos, steps=4, seed=7, **quiet, **TINY)
    first = api.train(style_path, tmp_path / "first.pt", data=photos, steps=2, seed=7, **quiet,
                      **{**TINY, "checkpoint_every": 1})  # fmt: skip
    ckpt = tmp_path / "first.ckpt.pt"
    assert load_model(ckpt, kind="checkpoint").step == 2 and first.steps == 2
    resumed = api.train(style_path, tmp_path / "resumed.pt", resume=ckpt, steps=4, **quiet)
    a, b = load_model(straight.model), load_model(resumed.model)
    assert b.step == 4 and b.metadata["training"]["seed"] == 7
    assert all(torch.equal(a.state_dict[k], b.state_dict[k]) for k in a.state_dict)
    assert [r["loss"] for r in straight.history] == [r["loss"] for r in resumed.history]
    # A resume with other options, or another style image, is refused in one line.
    with pytest.raises(InputError, match="drop lr"):
        api.train(style_path, tmp_path / "x.pt", resume=ckpt, lr=0.1, **quiet)
    with pytest.raises(InputError, match="not the style image"):
        api.train(Path(__file__).parents[1] / "examples" / "chelsea.png", tmp_path / "x.pt", resume=ckpt, **quiet)
    with pytest.raises(InputError, match="not a training checkpoint"):
        api.train(style_path, tmp_path / "x.pt", resume=straight.model, **quiet)


@pytest.mark.slow
def test_sigterm_writes_a_checkpoint_that_resumes(tmp_path, photos, style_path):
    out = tmp_path / "m.pt"
    args = [sys.executable, "-m", "impasto", "train", str(style_path), "--data", str(photos), "-o", str(out),
            "--from-scratch", "--width", "8", "--train-size", "32", "--style-size", "48", "--batch-size", "2",
            "--steps", "100000", "--sample-every", "1", "--checkpoint-every", "0", "-q"]  # fmt: skip
    proc = subprocess.Popen(args, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 240
    while not (tmp_path / "m-samples" / "step000002.png").exists() and time.time() < deadline:
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=240)
    assert proc.returncode == 143, err
    ckpt = tmp_path / "m.ckpt.pt"
    step = load_model(ckpt, kind="checkpoint").step
    assert step >= 2 and f"terminated at step {step}" in err and "--resume" in err and not out.exists()
    assert main(["train", str(style_path), "--resume", str(ckpt), "--steps", str(step + 1), "-q"]) == 0
    assert load_model(out).step == step + 1


# -- export -----------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_onnx_export_matches_pytorch_with_dynamic_sizes(tmp_path, trained):
    ort = pytest.importorskip("onnxruntime")
    onnx_file = tmp_path / "tiny.onnx"
    assert main(["export", str(trained), "-o", str(onnx_file), "-q"]) == 0
    session = ort.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"])
    net = network(load_model(trained)).eval()
    for hw in [(37, 53), (64, 64), (16, 120)]:
        x = torch.rand(2, 3, *hw)
        with torch.no_grad():
            ref = net(x).clamp(0, 1).numpy()
        out = session.run(None, {"image": x.numpy()})[0]
        assert out.shape == ref.shape and np.abs(out - ref).max() < 1e-3
    proto = __import__("onnx").load(str(onnx_file))
    meta = {p.key: p.value for p in proto.metadata_props}
    assert json.loads(meta["impasto_model"])["step"] == 4
    for value in (*proto.graph.input, *proto.graph.output):  # sizes that read as names, the same in and out
        dims = [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]
        assert dims == ["batch", 3, "height", "width"], (value.name, dims)


# -- stylizing --------------------------------------------------------------------------------------------
def _expected(trained: Path, content_path: Path, size: int) -> np.ndarray:
    """The network's output computed here, as written (no fast forms, NCHW), as 8-bit pixels."""
    net = network(load_model(trained)).eval()
    net.fast = False
    with torch.no_grad():
        out = net(load_image(content_path, size)).clamp(0, 1)
    return (out[0].permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)


def test_cli_and_api_stylize_with_a_trained_model(tmp_path, trained, content_path):
    out = tmp_path / "out.png"
    assert main([str(content_path), "--model", str(trained), "-o", str(out), "--size", "48", "-q"]) == 0
    got = np.asarray(Image.open(out).convert("RGB")).astype(int)
    want = _expected(trained, content_path, 48).astype(int)
    assert got.shape == want.shape and np.abs(got - want).max() <= 1
    meta = read_metadata(out)
    assert meta["options"]["method"] == "model" and meta["model"]["step"] == 4 and meta["styles"] == []
    image = impasto.stylize(content_path, model=str(trained), size=48)
    assert np.abs(np.asarray(image).astype(int) - want).max() <= 1
    # strength blends the output with the content, per pixel and channel
    half = np.asarray(impasto.stylize(content_path, model=str(trained), size=48, strength=0.5)).astype(float)
    content = load_image(content_path, 48)[0].permute(1, 2, 0).numpy() * 255
    assert np.abs(half - (0.5 * want + 0.5 * content)).max() <= 1.5
    # preserve_color: the content's chroma (YIQ I and Q) comes back
    kept = load_image(impasto.stylize(content_path, model=str(trained), size=48, preserve_color="luminance"))
    iq = rgb_to_yiq(kept)[:, 1:] - rgb_to_yiq(load_image(content_path, 48))[:, 1:]
    assert float(iq.abs().mean()) < 0.01


def test_model_batches_masks_and_bad_command_lines(tmp_path, trained, content_path, style_path, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    Image.open(content_path).convert("RGB").resize((60, 40)).save(folder / "p1.png")
    Image.open(content_path).convert("RGB").resize((30, 50)).save(folder / "p2.jpg")
    outdir = tmp_path / "out"
    assert main([str(folder), "--model", str(trained), "-o", str(outdir), "--size", "40", "-q"]) == 0
    assert sorted(p.name for p in outdir.iterdir()) == ["p1-tiny.png", "p2-tiny.png"]
    # A mask: white is stylized, black keeps the content.
    mask = tmp_path / "mask.png"
    m = np.zeros((40, 60), np.uint8)
    m[:, :30] = 255
    Image.fromarray(m).save(mask)
    out = tmp_path / "masked.png"
    assert main([str(folder / "p1.png"), "--model", str(trained), "--mask", str(mask), "-o", str(out), "-q",
                 "--size", "60"]) == 0  # fmt: skip
    got = np.asarray(Image.open(out)).astype(int)
    content = np.asarray(Image.open(folder / "p1.png")).astype(int)
    assert np.abs(got[:, 40:] - content[:, 40:]).max() <= 1 and np.abs(got[:, :20] - content[:, :20]).mean() > 5
    capsys.readouterr()
    for argv, why in [([str(content_path)], "at least one style image is needed"),
                      ([str(content_path), str(style_path), "--model", str(trained)], "takes no style image"),
                      ([str(content_path), "--model", str(tmp_path / "missing.pt")], "model file not found"),
                      ([str(content_path), "--model", str(trained), "--method", "fast"], "cannot be combined"),
                      (["train", str(style_path), "--width", "2"], "--width"),
                      (["train", str(style_path), "--steps", "3", "--epochs", "1"], "not both"),
                      (["export", str(tmp_path / "missing.pt")], "not found")]:  # fmt: skip
        code = main([*argv, "-o", str(tmp_path / ("x.pt" if argv[0] == "train" else "x.png"))]) if argv[0] != "export" \
            else main(argv)  # fmt: skip
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2 and len(err) == 1 and why in err[0], (argv, err)


def test_estimate_plans_the_model_method_and_tiles_when_memory_is_short(trained):
    opts = make_options(model=str(trained), size=2048)
    p = plan(opts, (2048, 1536), [], device="cpu", available=16 << 30)
    assert p.method == "model" and p.tiles == [None] and not p.iterative
    assert p.peak_bytes == model_method.peak_bytes(2048 * 1536, 2048 * 1536, 8)
    rate = costs.flops_rate("cpu", "fp32")  # this machine's, measured
    assert p.seconds == pytest.approx(2048 * 1536 * flops_per_pixel(8) / rate * p.factor)
    small = plan(opts, (2048, 1536), [], device="cpu", available=int(p.peak_bytes * 0.9))
    assert small.tiles[0] is not None and small.fits
