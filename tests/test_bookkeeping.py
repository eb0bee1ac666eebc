"""Bookkeeping that a wrong index or divisor would break without a visible error: which region gets which style,
how masked and tiled Gram matrices are normalized, which image a failed or interrupted run keeps (in single,
tiled, multi-scale and batch runs), and what the network sees under colour preservation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from impasto import batch, estimate, make_options
from impasto.cli import main
from impasto.core import color
from impasto.core.losses import gram_matrix
from impasto.core.regions import RegionStyleLoss
from impasto.core.sizes import fit_size, resize_tensor
from impasto.core.tiles import tile_grid
from impasto.errors import NonFiniteLossError, StylizeInterrupted
from impasto.io.images import load_image, tensor_to_pil
from impasto.methods import tiled
from impasto.methods.base import Inputs
from impasto.methods.coarse_to_fine import CoarseToFine
from impasto.methods.gatys import Gatys
from impasto.runner import Runner


def _gram(f: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Gram matrix per position, written out: sum_p m_p f_p f_p^T / sum_p m_p, in float64."""
    f = f.double()[0].reshape(f.shape[1], -1)
    m = torch.ones(f.shape[1], dtype=torch.float64) if mask is None else mask.double().reshape(-1)
    return (f * m) @ f.T / m.sum()


# -- regions -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("norm", ["positions", "elements", "none"])
def test_a_full_mask_gives_the_unmasked_gram_matrix(norm):
    f = torch.rand(1, 6, 7, 9, generator=torch.Generator().manual_seed(0))
    ones = torch.ones(1, 1, 7, 9)
    assert torch.allclose(gram_matrix(f, norm, ones), gram_matrix(f, norm), rtol=1e-6)
    half = torch.zeros(1, 1, 7, 9)
    half[..., :4] = 1
    expected = {"positions": 1.0, "elements": 1.0 / 6, "none": 28.0}[norm] * _gram(f, half)
    assert torch.allclose(gram_matrix(f, norm, half).double(), expected[None], rtol=1e-5)


@pytest.fixture(scope="module")
def two_styles(content_path, style_path):
    """A reddish and a bluish style image, far apart in their Gram matrices."""
    base = load_image(style_path, 64)
    red = (base * torch.tensor([1.0, 0.3, 0.2]).view(1, 3, 1, 1)).clamp(0, 1)
    blue = (base.flip(-1) * torch.tensor([0.2, 0.4, 1.0]).view(1, 3, 1, 1)).clamp(0, 1)
    return red, blue


def test_region_k_gets_the_gram_matrix_of_style_k(content64, two_styles):
    st = Gatys(make_options(size=64, precision="fp32", style_layers=("relu1_1", "relu2_1")))
    h, w = content64.shape[-2:]
    masks = torch.zeros(2, 1, h, w)
    masks[0, ..., : w // 2] = 1
    masks[1, ..., w // 2 :] = 1
    terms = {t.name: t for t in st.build_terms(content64, list(two_styles), masks)}
    for layer, loss in terms["style"].losses.items():
        assert isinstance(loss, RegionStyleLoss)
        for k, style in enumerate(two_styles):
            f = st.features(st.style_image_for(style, (h, w)), [layer])[layer]
            assert torch.allclose(loss.losses[k].target.double(), _gram(f)[None], rtol=1e-4), (layer, k)
        # each region's mask is that region carried down to the layer's size, sharing nothing with the other
        assert torch.allclose(loss.masks.sum(0), torch.ones_like(loss.masks[0]))
        assert float(loss.masks[0, ..., : loss.masks.shape[-1] // 2 - 1].min()) == 1.0


def test_after_a_run_each_region_is_nearer_its_own_style(content64, two_styles):
    h, w = content64.shape[-2:]
    masks = torch.zeros(2, 1, h, w)
    masks[0, ..., : w // 2] = 1
    masks[1, ..., w // 2 :] = 1
    opts = make_options(size=64, steps=40, precision="fp32", style_weight=50.0)
    out = Runner(opts)(content64, list(two_styles), masks)
    left, right = out[..., : w // 2], out[..., w // 2 :]
    red, blue = (s.mean(dim=(2, 3)) for s in two_styles)
    for region, own, other in ((left, red, blue), (right, blue, red)):
        colour = region.mean(dim=(2, 3))
        assert float((colour - own).abs().sum()) < float((colour - other).abs().sum())


# -- tiles ----------------------------------------------------------------------------------------------
def test_tiled_style_grams_count_every_position_once(style_path):
    """A style image larger than the tile: Gram matrices summed over the tiles' cores cover each feature position
    exactly once and equal the whole image's where the receptive field is small."""
    st = Gatys(make_options(size=160, precision="fp32", style_layers=("relu1_1", "relu2_1")))
    style = load_image(style_path, 160)  # 160 x 100: two tiles of 96 px across, overlapping
    layers = ["relu1_1", "relu2_1"]
    raw, counts = tiled.tiled_grams(st, style, layers, tile=96, overlap=16)
    whole = st.features(style, layers)
    for n in layers:
        f = whole[n]
        assert counts[n] == f.shape[-2] * f.shape[-1]  # no overlap counted twice, nothing left out
    f = whole["relu1_1"][0].double().reshape(64, -1)
    rel = float((raw["relu1_1"].double() - f @ f.T).norm() / (f @ f.T).norm())
    assert rel < 0.01, rel  # only positions at tile borders see padding instead of neighbours
    grams = tiled.style_grams(st, [style], (100, 160), tile=96)
    for n in layers:
        ref = gram_matrix(whole[n], "positions")
        assert torch.allclose(grams.grams[n][0], ref, rtol=0.05, atol=1e-3 * float(ref.abs().max()))
        assert grams.positions[n] == [counts[n]]


class _Fake:
    """An engine whose optimize returns init + 0.1, and fails at one tile with a known image."""

    def __init__(self, fail_at: int | None = None, error: type = NonFiniteLossError) -> None:
        self.options = make_options(size=256)
        self.history: list = []
        self.calls, self.fail_at, self.error = 0, fail_at, error

    def optimize(self, init, terms, steps, callback=None):
        self.calls += 1
        if self.calls == self.fail_at:
            best = torch.full_like(init, 0.9)
            raise self.error("stopped", best) if self.error is NonFiniteLossError else self.error(best)
        return (init + 0.1).clamp(0, 1)


@pytest.mark.parametrize("error", [NonFiniteLossError, StylizeInterrupted])
def test_a_tile_that_fails_keeps_the_finished_tiles_the_tiles_best_and_the_rest(monkeypatch, error):
    monkeypatch.setattr(tiled, "style_grams", lambda *a, **k: None)
    monkeypatch.setattr(tiled, "content_scale", lambda *a, **k: None)
    monkeypatch.setattr(tiled, "tile_terms", lambda *a, **k: None)
    image = torch.full((1, 3, 150, 250), 0.3)
    grid = tile_grid(150, 250, 96, 24)
    fake = _Fake(fail_at=3, error=error)
    with pytest.raises(error) as caught:
        tiled.optimize_tiled(fake, image, image, [], steps=1, tile=96, overlap=24, passes=1)
    kept = caught.value.image
    failed = grid[2]
    inside = torch.zeros(150, 250, dtype=torch.bool)
    inside[failed.slices] = True
    assert torch.equal(kept[..., inside], torch.full_like(kept[..., inside], 0.9))  # the failed tile's best
    untouched = torch.ones(150, 250, dtype=torch.bool)
    for t in grid[:3]:
        untouched[t.slices] = False
    assert torch.allclose(kept[..., untouched], torch.full_like(kept[..., untouched], 0.3))  # not reached yet
    covered = [torch.zeros(150, 250, dtype=torch.bool) for _ in grid]
    for t, c in zip(grid, covered, strict=True):
        c[t.slices] = True
    count = sum(c.int() for c in covered)
    for k in (0, 1):  # where a finished tile alone covers the picture: its result, init + 0.1, exactly
        solo = covered[k] & (count == 1)
        assert solo.any() and torch.allclose(kept[..., solo], torch.full_like(kept[..., solo], 0.4), atol=1e-6)
    shared = covered[0] & covered[1] & ~covered[2]  # their overlap: between the start image and two steps up
    values = kept[0, 0][shared]
    assert float(values.min()) >= 0.3 and float(values.max()) <= 0.5 + 1e-6


# -- multi-scale --------------------------------------------------------------------------------------------
def _record(engine: Gatys, monkeypatch, fail_at: int | None = None):
    real = engine.loss_and_grad
    seen: list[tuple[float, torch.Tensor]] = []

    def recorded(image, terms):
        total, parts, grad = real(image, terms)
        if fail_at is not None and len(seen) + 1 == fail_at:
            return float("nan"), parts, grad
        seen.append((total, image.detach().clone()))
        return total, parts, grad

    monkeypatch.setattr(engine, "loss_and_grad", recorded)
    return seen


@pytest.mark.parametrize("fail_at", [3, 6])  # at the coarse scale (3 steps there) and at the fine one
def test_a_multiscale_failure_keeps_the_best_image_of_its_scale_at_full_size(content64, style64, monkeypatch,
                                                                             fail_at):  # fmt: skip
    opts = make_options(size=64, start_size=32, scale_steps=(3, 3), precision="fp32")
    engine = Gatys(opts)
    content = resize_tensor(content64, (48, 64))
    seen = _record(engine, monkeypatch, fail_at)
    plan = estimate.plan(opts, (64, 48), [(style64.shape[-1], style64.shape[-2])], device="cpu")
    with pytest.raises(NonFiniteLossError) as caught:
        CoarseToFine(engine).run(Inputs(content, [style64]), plan, None)
    scale_start = 0 if fail_at <= 3 else 3
    best = min(seen[scale_start:], key=lambda item: item[0])[1]
    assert caught.value.image.shape == content.shape
    assert torch.equal(caught.value.image, resize_tensor(best.cpu(), (48, 64)))


# -- batch and the files the CLI keeps ------------------------------------------------------------------------
def test_batch_writes_the_good_results_and_names_the_failed_one(tmp_path, content_path, style_path, monkeypatch):
    photos = tmp_path / "photos"
    photos.mkdir()
    Image.open(content_path).save(photos / "a.png")
    Image.open(content_path).transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(photos / "b.png")
    opts = make_options(size=40, steps=3, precision="fp32")
    real = Gatys.loss_and_grad
    calls = {"n": 0}

    def nan_on_the_second_image(self, image, terms):
        calls["n"] += 1
        total, parts, grad = real(self, image, terms)
        return (float("nan") if calls["n"] > 3 else total), parts, grad

    monkeypatch.setattr(Gatys, "loss_and_grad", nan_on_the_second_image)
    out = tmp_path / "out"
    out.mkdir()
    result = batch.run_batch(batch.find_contents(str(photos)), [style_path], out, opts, warn=lambda m: None)
    assert [p.name for p in result.written] == ["a-starry_night.png"]
    assert [p.name for p, _ in result.failed] == ["b.png"] and "loss became nan" in result.failed[0][1]
    assert sorted(p.name for p in out.iterdir()) == ["a-starry_night.png"]
    monkeypatch.setattr(Gatys, "loss_and_grad", real)
    expected = Runner(opts)(load_image(photos / "a.png", 40), [load_image(style_path, 40)])
    assert np.array_equal(np.asarray(Image.open(out / "a-starry_night.png")), np.asarray(tensor_to_pil(expected)))


def test_the_cli_writes_the_best_image_before_a_nan(tmp_path, content_path, style_path, monkeypatch, capsys):
    seen: list[tuple[float, torch.Tensor]] = []
    real = Gatys.loss_and_grad

    def nan_at_four(self, image, terms):
        total, parts, grad = real(self, image, terms)
        if len(seen) == 3:
            return float("inf"), parts, grad
        seen.append((total, image.detach().clone()))
        return total, parts, grad

    monkeypatch.setattr(Gatys, "loss_and_grad", nan_at_four)
    out = tmp_path / "n.png"
    assert main([str(content_path), str(style_path), "-o", str(out), "--size", "40", "--steps", "9", "-q"]) == 1
    kept = np.asarray(Image.open(tmp_path / "n.last-good.png"))
    best = min(seen, key=lambda item: item[0])[1]
    assert np.array_equal(kept, np.asarray(tensor_to_pil(best))) and not out.exists()
    assert "loss became inf at step 4" in capsys.readouterr().err


# -- colour preservation ------------------------------------------------------------------------------------
def test_under_luminance_preservation_the_network_sees_gray_images(content64, style64, monkeypatch):
    opts = make_options(size=64, steps=8, precision="fp32", preserve_color="luminance", style_weight=100.0)
    runner = Runner(opts)
    seen = {}
    real = runner.method.run

    def spy(inputs, plan, callback=None):
        seen["inputs"] = inputs
        return real(inputs, plan, callback)

    monkeypatch.setattr(runner.method, "run", spy)
    out = runner(content64, [style64])
    inputs = seen["inputs"]
    for image in (inputs.content, *inputs.styles):
        assert torch.equal(image[:, 0], image[:, 1]) and torch.equal(image[:, 1], image[:, 2])  # gray
    y_content = color.luminance(content64)
    assert torch.allclose(inputs.content[:, :1], y_content.clamp(0, 1), atol=1e-6)
    y_style = inputs.styles[0][:, :1]
    assert float(y_style.mean()) == pytest.approx(float(y_content.mean()), abs=0.01)  # matched to the content's
    assert float(y_style.std()) == pytest.approx(float(y_content.std()), rel=0.05)
    # the result has the content's chroma (I, Q) wherever its luminance did not have to be clamped
    iq_out, iq_content = color.rgb_to_yiq(out)[:, 1:], color.rgb_to_yiq(content64)[:, 1:]
    inside = (out > 0.01).all(1, keepdim=True) & (out < 0.99).all(1, keepdim=True)
    diff = (iq_out - iq_content).abs()[inside.expand_as(iq_out)]
    assert float(diff.max()) < 2e-3 and float(inside.float().mean()) > 0.5
    # and a luminance of its own: the run did change it
    assert float((color.luminance(out) - y_content).abs().mean()) > 0.005


def test_style_size_is_computed_in_one_place(style_path):
    o = make_options(size=300, style_scale=0.5)
    assert (
        o.style_size() == 150 and o.style_size(64) == 32 and make_options(size=20, style_scale=0.1).style_size() == 16
    )
    st = Gatys(o)
    style = load_image(style_path, 400)
    assert max(st.style_image_for(style, (200, 300)).shape[-2:]) == 150
    assert fit_size(1024, 640, o.style_size()) == (150, 94)
