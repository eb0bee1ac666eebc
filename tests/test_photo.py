"""Photorealistic transfer: the matting Laplacian, the regularizer, label maps and regions, Li et al.'s smoothing,
the feature transforms, both photo methods end to end, their plans, and straight edges kept."""

import os
import subprocess
import sys

import numpy as np
import pytest
import scipy.sparse as sp
import scipy.sparse.linalg as sla
import torch
from PIL import Image, ImageDraw, ImageFilter

import impasto
from impasto.cli import main
from impasto.core import matting
from impasto.core.losses import gram_matrix
from impasto.core.regions import layer_masks, match_regions, region_style_losses
from impasto.errors import InputError
from impasto.estimate import plan
from impasto.io.images import load_image, read_metadata
from impasto.io.labels import check_label_pair, load_label_map
from impasto.methods.gatys import Gatys
from impasto.methods.photo_fast import adain_weighted, transform_features, wct
from impasto.methods.terms import PhotoTerm
from impasto.options import make_options

from .conftest import ROOT

PLENTY = 1 << 50


def naive_laplacian(img: np.ndarray, eps: float = matting.EPS) -> np.ndarray:
    """Levin et al.'s formula written out window by window (the reference for the vectorized build)."""
    h, w, _ = img.shape
    lap = np.zeros((h * w, h * w))
    for cy in range(1, h - 1):
        for cx in range(1, w - 1):
            idx = [(cy + dy) * w + cx + dx for dy in (-1, 0, 1) for dx in (-1, 0, 1)]
            win = img[cy - 1 : cy + 2, cx - 1 : cx + 2].reshape(9, 3)
            d = win - win.mean(0)
            inv = np.linalg.inv(d.T @ d / 9 + eps / 9 * np.eye(3))
            lap[np.ix_(idx, idx)] += np.eye(9) - (1 + d @ inv @ d.T) / 9
    return lap


@pytest.fixture(scope="module")
def content96(content_path):
    return load_image(content_path, 96)  # 96 x 64


# -- the matting Laplacian ----------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_laplacian_matches_the_formula_is_symmetric_psd_and_rows_sum_to_zero(seed):
    rng = np.random.default_rng(seed)
    img = rng.random((6, 7, 3))
    lap = matting.matting_laplacian(img).toarray()
    assert np.abs(lap - naive_laplacian(img)).max() < 1e-8
    assert np.abs(lap - lap.T).max() < 1e-12
    assert np.abs(lap.sum(1)).max() < 1e-10
    eig = np.linalg.eigvalsh(lap)
    assert eig.min() > -1e-9 * eig.max() and eig.max() > 1
    assert matting.matting_laplacian(img).nnz <= 25 * 6 * 7


def test_laplacian_of_a_photo_vanishes_on_affine_functions_of_its_colours(content96):
    small = content96[..., :24, :32]
    lap = matting.matting_laplacian(small)
    img = small[0].permute(1, 2, 0).double().numpy().reshape(-1, 3)
    noise = np.random.default_rng(0).random(img.shape[0])
    random_energy = noise @ lap @ noise
    for v in (np.ones(img.shape[0]), img[:, 1], 0.3 * img[:, 0] - 0.2 * img[:, 2] + 0.5):
        assert v @ lap @ v < 1e-5 * random_energy
    assert (img[:, 1] + 0.2 * noise) @ lap @ (img[:, 1] + 0.2 * noise) > 0.01 * random_energy
    # the regularizer's float32 CSR tensor and its value agree with the float64 matrix
    t = matting.laplacian_tensor(small)
    value = float(matting.photorealism_loss(small, t))
    expected = sum(img[:, c] @ lap @ img[:, c] for c in range(3)) / img.shape[0]
    assert value == pytest.approx(expected, rel=1e-3, abs=1e-9)


def test_regularizer_gradient_equals_finite_differences():
    torch.manual_seed(0)
    image = torch.rand(1, 3, 7, 9)
    lap = matting.laplacian_tensor(torch.rand(1, 3, 7, 9))
    x = image.clone().requires_grad_(True)
    matting.photorealism_loss(x, lap).backward()
    fd = torch.zeros_like(image)
    h = 0.05  # the loss is quadratic: central differences are exact up to rounding
    for idx in np.ndindex(*image.shape):
        up, down = image.clone(), image.clone()
        up[idx] += h
        down[idx] -= h
        fd[idx] = (matting.photorealism_loss(up, lap) - matting.photorealism_loss(down, lap)) / (2 * h)
    assert torch.allclose(x.grad, fd, rtol=1e-3, atol=1e-5)
    assert float(x.grad.abs().max()) > 1e-2


def test_hand_written_pass_and_autograd_agree_with_the_photo_term(content96, style64):
    content = content96[..., :32, :48]
    opts = make_options("photo", size=48, steps=2, precision="fp32", photo_weight=3e3)
    engine = Gatys(opts)
    terms = engine.build_terms(content, [style64])
    assert any(isinstance(t, PhotoTerm) for t in terms)
    image = (content + 0.1 * torch.rand_like(content)).clamp(0, 1)
    value_h, parts_h, grad_h = engine.loss_and_grad(image, terms)
    engine.handwritten = False
    value_a, parts_a, grad_a = engine.loss_and_grad(image, terms)
    assert parts_h["photo"] == pytest.approx(parts_a["photo"], rel=1e-5) and parts_h["photo"] > 0
    assert value_h == pytest.approx(value_a, rel=1e-4)
    assert float((grad_h - grad_a).norm() / grad_a.norm()) < 1e-3


# -- label maps and regions -----------------------------------------------------------------------------------
def paper_map(path, size=(60, 40), blur=True, extra=None):
    """Black sky above, white buildings, green water below; anti-aliased edges."""
    im = Image.new("RGB", size, "black")
    draw = ImageDraw.Draw(im)
    draw.rectangle([0, size[1] // 3, size[0], size[1]], fill="white")
    draw.rectangle([0, 3 * size[1] // 4, size[0], size[1]], fill=(0, 255, 0))
    if extra:
        draw.rectangle([0, 0, size[0] // 4, size[1] // 4], fill=extra)
    if blur:
        im = im.filter(ImageFilter.GaussianBlur(1.5))
    im.save(path)
    return im


def test_colour_label_maps_snap_anti_aliased_edges(tmp_path):
    paper_map(tmp_path / "m.png")
    lm = load_label_map(tmp_path / "m.png")
    assert lm.kind == "colour" and sorted(lm.names) == ["black", "green", "white"]
    labels = np.asarray([lm.names[i] for i in lm.labels.reshape(-1)]).reshape(40, 60)
    assert (labels[:10] == "black").all() and (labels[16:27] == "white").all() and (labels[33:] == "green").all()
    onehot = lm.one_hot()
    assert torch.equal(onehot.sum(0), torch.ones(1, 40, 60))  # every pixel in exactly one region


def test_integer_label_maps(tmp_path):
    a = np.zeros((20, 30), np.uint8)
    a[10:] = 3
    a[:, 20:] = 7
    Image.fromarray(a).save(tmp_path / "l.png")
    Image.fromarray(a.astype(np.uint16) * 1000).save(tmp_path / "l16.png")
    lm = load_label_map(tmp_path / "l.png")
    assert lm.kind == "integer" and lm.names == ["label 0", "label 3", "label 7"]
    assert (lm.labels == np.searchsorted([0, 3, 7], a)).all()
    assert load_label_map(tmp_path / "l16.png").names == ["label 0", "label 3000", "label 7000"]


def test_label_map_errors(tmp_path):
    paper_map(tmp_path / "orange.png", extra=(255, 128, 0))
    with pytest.raises(InputError, match=r"colour #ff8000 .* not one of the paper's label colours"):
        load_label_map(tmp_path / "orange.png")
    paper_map(tmp_path / "m.png")
    a = np.zeros((40, 60), np.uint8)
    Image.fromarray(a).save(tmp_path / "int.png")
    content, style = load_label_map(tmp_path / "m.png"), load_label_map(tmp_path / "m.png")
    with pytest.raises(InputError, match="is 60x40 but the content image is 61x40"):
        check_label_pair(content, style, (61, 40), (60, 40))
    with pytest.raises(InputError, match="is 60x40 but the style image is 60x41"):
        check_label_pair(content, style, (60, 40), (60, 41))
    with pytest.raises(InputError, match="different kinds"):
        check_label_pair(content, load_label_map(tmp_path / "int.png"), (60, 40), (60, 40))
    with pytest.raises(InputError, match="label map: image not found"):
        load_label_map(tmp_path / "missing.png")
    with pytest.raises(InputError, match="give both --content-seg and --style-seg"):
        make_options("photo", content_seg="a.png")
    with pytest.raises(InputError, match="need --method photo or photo-fast"):
        make_options(content_seg="a.png", style_seg="b.png")
    with pytest.raises(InputError, match="does not run in tiles"):
        make_options("photo", tile=256)
    with pytest.raises(InputError, match="--photo-weight needs --method photo"):
        make_options(photo_weight=1.0)


def test_regions_matched_by_label():
    content = torch.zeros(3, 1, 4, 6)
    for k in range(3):
        content[k, :, :, 2 * k : 2 * k + 2] = 1
    style = torch.zeros(3, 1, 5, 5)
    style[0, ..., :2, :] = 1
    style[1, ..., 2:, :] = 1
    style[2, ..., :, :] = 0.5
    c, s, labels = match_regions(content, ["sky", "water", "tree"], style, ["water", "sky", "road"])
    assert labels == ["sky", "water", "tree"]
    assert torch.equal(s[0], style[1]) and torch.equal(s[1], style[0])  # matched by label, not position
    assert torch.equal(s[2], torch.ones(1, 5, 5))  # content-only label: the whole style image
    assert torch.equal(c, content)  # "road" (style only) is ignored


def test_masks_carried_down_the_network_keep_each_regions_share():
    masks = torch.zeros(3, 1, 64, 96)
    masks[0, ..., :20, :] = 1
    masks[1, ..., 20:, :37] = 1
    masks[2] = 1 - masks[0] - masks[1]
    share = masks.mean((1, 2, 3))
    for hw in ((64, 96), (32, 48), (16, 24), (8, 12), (4, 6)):
        assert torch.allclose(layer_masks(masks, hw).mean((1, 2, 3)), share, atol=1e-6)
    odd = torch.zeros(2, 1, 75, 50)  # VGG's ceil-mode pooling: 75 -> 38 -> 19 -> 10
    odd[0, ..., :31, :] = 1
    odd[1] = 1 - odd[0]
    for hw in ((38, 25), (19, 13), (10, 7)):
        assert torch.allclose(layer_masks(odd, hw).mean((1, 2, 3)), odd.mean((1, 2, 3)), atol=0.03)


def test_each_regions_target_is_the_gram_matrix_of_the_styles_own_region():
    torch.manual_seed(0)
    style_feats = {"relu1_1": torch.randn(1, 8, 8, 12), "relu2_1": torch.randn(1, 16, 4, 6)}
    content_feats = {"relu1_1": torch.randn(1, 8, 6, 6), "relu2_1": torch.randn(1, 16, 3, 3)}
    style_masks = torch.zeros(2, 1, 8, 12)
    style_masks[0, ..., :, :4] = 1
    style_masks[1] = 1 - style_masks[0]
    content_masks = torch.zeros(2, 1, 6, 6)
    content_masks[0, ..., :2, :] = 1
    content_masks[1] = 1 - content_masks[0]
    losses = region_style_losses([style_feats] * 2, content_feats, content_masks, ["relu1_1", "relu2_1"],
                                 style_masks=style_masks, weighted=True)  # fmt: skip
    for name, cols in (("relu1_1", (slice(0, 4), slice(4, 12))), ("relu2_1", (slice(0, 2), slice(2, 6)))):
        f = style_feats[name][0]
        for k in range(2):
            region = f[:, :, cols[k]].reshape(f.shape[0], -1)  # the positions of style region k, by hand
            expected = region @ region.t() / region.shape[1]
            assert torch.allclose(losses[name].losses[k].target[0], expected, atol=1e-5)
        assert losses[name].weights == pytest.approx([1 / 3, 2 / 3])
    # one region covering everything is the plain style loss
    whole = region_style_losses([style_feats], content_feats, torch.ones(1, 1, 6, 6), ["relu1_1"],
                                style_masks=torch.ones(1, 1, 8, 12), weighted=True)["relu1_1"]  # fmt: skip
    target = gram_matrix(style_feats["relu1_1"])
    plain = torch.nn.functional.mse_loss(gram_matrix(content_feats["relu1_1"]), target)
    assert float(whole(content_feats["relu1_1"])) == pytest.approx(float(plain), rel=1e-5)


def test_photo_preset_starts_from_the_content_recoloured_region_by_region(content96, style64):
    from impasto.core.color import color_stats

    content = content96
    h, w = content.shape[-2:]
    regions = torch.zeros(2, 1, h, w)
    regions[0, ..., : h // 2, :] = 1  # sky above, ground below
    regions[1] = 1 - regions[0]
    sh, sw = style64.shape[-2:]
    style_regions = torch.zeros(2, 1, sh, sw)
    style_regions[0, ..., :, : sw // 2] = 1  # the sky takes the style's left half, the ground its right half
    style_regions[1] = 1 - style_regions[0]
    engine = Gatys(make_options("photo", size=96, steps=2, precision="fp32"))
    assert engine.options.init == "colors"
    start = engine.initial_image(content, [style64], (regions, style_regions))
    for k in range(2):
        got = color_stats(start, regions[k : k + 1])[0]
        want = color_stats(style64, style_regions[k : k + 1])[0]
        assert (got - want).abs().max() < 0.03, (k, got, want)
    # inside each region an affine-like function of the content's colours: the regularizer is low from the start,
    # far below that of the same colours laid out as the style's texture
    lap = matting.laplacian_tensor(content)
    texture = torch.nn.functional.interpolate(style64, size=(h, w), mode="bilinear")
    assert float(matting.photorealism_loss(start, lap)) < 0.2 * float(matting.photorealism_loss(texture, lap))
    # with init="content" the run starts from the content itself
    plain = Gatys(make_options("photo", size=96, steps=2, precision="fp32", init="content"))
    assert torch.equal(plain.initial_image(content, [style64], (regions, style_regions)), content)


# -- Li et al.'s smoothing and the feature transforms ---------------------------------------------------------
def test_exact_smoothing_does_not_depend_on_the_thread_count(content96):
    content, y = content96[0, :, :40, :56], torch.rand(3, 40, 56, generator=torch.Generator().manual_seed(0))
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one, n1 = matting.smooth(content, y, "exact")
        torch.set_num_threads(2)
        two, n2 = matting.smooth(content, y, "exact")
    finally:
        torch.set_num_threads(threads)
    assert n1 == n2 > 0 and torch.equal(one, two)  # fixed bands, partial sums added in order


def test_exact_smoothing_solves_li_et_als_system(content96):
    content = content96[0, :, :24, :36]
    y = torch.rand(3, 24, 36)
    out, iterations = matting.smooth(content, y, "exact", alpha=0.99, tol=1e-6)
    # (I - alpha S) R = (1 - alpha) Y with S = D^-1/2 W D^-1/2 and W = D - L, solved directly here
    lap = matting.matting_laplacian(content)
    d = sp.diags(np.asarray(-lap.sum(1)).ravel() * 0 + matting.matting_stencil(content).counts.reshape(-1))
    s = sp.diags(1 / np.sqrt(d.diagonal())) @ (d - lap) @ sp.diags(1 / np.sqrt(d.diagonal()))
    system = (sp.identity(s.shape[0]) - 0.99 * s).tocsc()
    expected = np.stack([sla.spsolve(system, 0.01 * y[c].double().numpy().reshape(-1)) for c in range(3)])
    expected = torch.from_numpy(expected.reshape(3, 24, 36)).clamp(0, 1)
    assert 0 < iterations < 2000
    assert float((out - expected).abs().max()) < 2e-3
    guided, _ = matting.smooth(content, y, "guided")
    assert float((guided - expected).abs().mean()) < float((y - expected).abs().mean())


def test_guided_filter_matches_its_definition():
    torch.manual_seed(1)
    guide, src, r, eps = torch.rand(3, 9, 11), torch.rand(2, 9, 11), 2, 1e-2
    out = matting.guided_filter(guide, src, r, eps)
    a = torch.zeros(2, 3, 9, 11, dtype=torch.float64)
    b = torch.zeros(2, 9, 11, dtype=torch.float64)
    for y in range(9):
        for x in range(11):
            win = (slice(max(0, y - r), y + r + 1), slice(max(0, x - r), x + r + 1))
            g = guide[:, win[0], win[1]].reshape(3, -1).double()
            mu = g.mean(1, keepdim=True)
            cov = (g - mu) @ (g - mu).t() / g.shape[1] + eps * torch.eye(3, dtype=torch.float64)
            for c in range(2):
                p = src[c, win[0], win[1]].reshape(-1).double()
                a[c, :, y, x] = torch.linalg.solve(cov, ((g - mu) * (p - p.mean())).mean(1))
                b[c, y, x] = p.mean() - a[c, :, y, x] @ mu[:, 0]
    a_bar, b_bar = matting.box_mean(a, r), matting.box_mean(b, r)
    expected = (a_bar * guide.double()[None]).sum(1) + b_bar
    assert torch.allclose(out.double(), expected, atol=1e-4)


def test_wct_gives_the_styles_covariance_and_adain_its_moments():
    torch.manual_seed(0)
    content, style = torch.randn(6, 400).double(), (torch.randn(6, 6) @ torch.randn(6, 300)).double() + 2
    out = wct(content, style)
    cov = torch.cov(out, correction=0)
    assert torch.allclose(cov, torch.cov(style, correction=0), rtol=1e-3, atol=1e-3)
    assert torch.allclose(out.mean(1), style.mean(1), atol=1e-8)
    out = adain_weighted(content, style)
    assert torch.allclose(out.std(1, correction=0), style.std(1, correction=0), rtol=1e-6)
    # per region: region k of the content takes style region k's statistics
    feats, sfeats = torch.randn(1, 6, 10, 10), torch.randn(1, 6, 10, 10)
    sfeats[..., :5, :] += 5
    masks = torch.zeros(2, 1, 10, 10)
    masks[0, ..., :, :4] = 1
    masks[1] = 1 - masks[0]
    smasks = torch.zeros(2, 1, 10, 10)
    smasks[0, ..., :5, :] = 1
    smasks[1] = 1 - smasks[0]
    out = transform_features(feats, sfeats, "adain", masks, smasks)[0]
    assert torch.allclose(out[:, :, :4].mean((1, 2)), sfeats[0, :, :5].mean((1, 2)), atol=1e-4)
    assert torch.allclose(out[:, :, 4:].mean((1, 2)), sfeats[0, :, 5:].mean((1, 2)), atol=1e-4)


# -- the methods end to end -----------------------------------------------------------------------------------
def label_pair(tmp_path, content_path, style_path):
    """Colour label maps for the bundled cat and Starry Night: top third black, the rest white."""
    for name, path in (("c", content_path), ("s", style_path)):
        size = Image.open(path).size
        im = Image.new("RGB", size, "black")
        ImageDraw.Draw(im).rectangle([0, size[1] // 3, size[0], size[1]], fill="white")
        im.save(tmp_path / f"{name}.png")
    return tmp_path / "c.png", tmp_path / "s.png"


def photo_energy(image: torch.Tensor, content: torch.Tensor) -> float:
    return float(matting.photorealism_loss(image, matting.laplacian_tensor(content)))


@pytest.mark.parametrize("method", ["photo", "photo-fast"])
def test_cli_end_to_end_with_label_maps(tmp_path, content_path, style_path, method, capsys):
    cseg, sseg = label_pair(tmp_path, content_path, style_path)
    out = tmp_path / f"{method}.png"
    extra = ["--preset", "photo", "--steps", "10"] if method == "photo" else ["--method", "photo-fast", "--smooth",
                                                                             "exact"]  # fmt: skip
    argv = [str(content_path), str(style_path), "-o", str(out), "-s", "64", "-q", "--content-seg", str(cseg),
            "--style-seg", str(sseg), *extra]  # fmt: skip
    assert main(argv) == 0
    meta = read_metadata(out)["options"]
    assert meta["method"] == method and meta["content_seg"] == str(cseg)
    result = load_image(out)
    content = load_image(content_path, 64)
    assert result.shape == content.shape and float((result - content).abs().mean()) > 0.005
    # photorealistic: far closer to an affine function of the content's colours than the stylized texture is
    texture = torch.nn.functional.interpolate(load_image(style_path, 64), size=content.shape[-2:], mode="bilinear")
    assert photo_energy(result, content) < 0.5 * photo_energy(texture, content)
    capsys.readouterr()
    bad = tmp_path / "bad.png"
    assert main([*argv[:2], str(style_path), "-o", str(bad), "--content-seg", str(cseg), "--style-seg", str(sseg),
                 *extra]) == 2  # fmt: skip
    err = capsys.readouterr().err
    assert "takes one style image" in err and len(err.strip().splitlines()) == 1 and not bad.exists()


def test_photo_fast_encodes_each_style_once(content96, style64, monkeypatch):
    from impasto.methods import adain as adain_module
    from impasto.methods.adain import AdaIN
    from impasto.methods.photo_fast import PhotoFast

    method = PhotoFast(make_options(method="photo-fast", smooth="none"))
    engine = method.engine
    style = style64 + 1e-3 * torch.rand_like(style64)  # pixels no other test caches
    calls = []
    encode = engine.encode
    engine.encode = lambda image: calls.append(tuple(image.shape)) or encode(image)
    try:
        first = method.decode_stylized(content96, style)
        second = method.decode_stylized(content96, style)
        other = method.decode_stylized(content96, style.flip(-1))
    finally:
        del engine.encode
    assert calls.count(tuple(content96.shape)) == 3  # the content every time
    assert len(calls) == 3 + 2  # the style once, then the flipped style once
    assert torch.equal(first, second)
    assert not torch.equal(first, other)
    # the cache is bounded: by count, and by bytes beyond the latest style
    styles = [style64 + k * 1e-3 for k in range(2, 8)]
    kept = [engine.style_features(s) for s in styles]
    held = list(engine._features.values())
    assert len(held) == adain_module.FEATURE_CACHE  # the latest 4, oldest first
    assert all(a is b for a, b in zip(held, kept[-adain_module.FEATURE_CACHE :]))
    one = kept[0].numel() * kept[0].element_size()
    monkeypatch.setattr(adain_module, "FEATURE_CACHE_BYTES", 2 * one)  # room for exactly two
    kept = [engine.style_features(s) for s in styles[:3]]
    held = list(engine._features.values())
    assert len(held) == 2 and held[0] is kept[1] and held[1] is kept[2]
    monkeypatch.setattr(adain_module, "FEATURE_CACHE_BYTES", 1)  # the latest is kept whatever its size
    latest = engine.style_features(styles[3])
    assert len(engine._features) == 1 and next(iter(engine._features.values())) is latest
    fresh = PhotoFast(make_options(method="photo-fast", smooth="none"))
    fresh.engine = AdaIN("cpu", method.options.precision)  # no cache
    assert torch.allclose(fresh.decode_stylized(content96, style), first, atol=1e-5)


def test_api_end_to_end_without_label_maps(content_path, style_path):
    image = impasto.stylize(content_path, style_path, preset="photo", size=64, steps=6, seed=1)
    assert max(image.size) == 64 and image.info["impasto"]["options"]["photo_weight"] > 0
    fast = impasto.stylize(content_path, style_path, method="photo-fast", size=64)
    tensor = torch.from_numpy(np.asarray(fast, dtype=np.float32) / 255).permute(2, 0, 1)[None]
    raw = impasto.stylize(content_path, style_path, method="photo-fast", size=64, smooth="none")
    raw_t = torch.from_numpy(np.asarray(raw, dtype=np.float32) / 255).permute(2, 0, 1)[None]
    content = load_image(content_path, 64)
    assert photo_energy(tensor, content) < 0.5 * photo_energy(raw_t, content)  # the smoothing did its job


def test_plans_hold_the_laplacian_and_refuse_tiles(capsys, content_path, style_path):
    size = (1024, 768)
    base = plan(make_options("photo", size=1024, photo_weight=0.0, method="gatys"), size, [size], "cpu", PLENTY)
    photo = plan(make_options("photo", size=1024), size, [size], "cpu", PLENTY)
    h, w = photo.scales[-1].hw
    extra = photo.peak_bytes - base.peak_bytes
    assert extra == pytest.approx(h * w * matting.laplacian_csr_bytes_per_pixel(), rel=0.01)
    assert matting.laplacian_csr_bytes_per_pixel() >= 25 * 8  # 25 non-zeros per pixel, value and index
    assert photo.seconds / photo.factor > base.seconds / base.factor  # the same rate, before what runs observed
    coarse = plan(make_options("photo", size=1024, start_size=512), size, [size], "cpu", PLENTY)
    assert len(coarse.scales) == 2  # one Laplacian per scale, each planned at its size
    tight = plan(make_options("photo", size=4096), size, [size], "cpu", 2 << 30)
    assert all(s.tile is None for s in tight.scales) and not tight.fits  # never tiled: refused instead
    fast = plan(make_options(method="photo-fast", size=1024, smooth="exact"), size, [size], "cpu", PLENTY)
    guided = plan(make_options(method="photo-fast", size=1024), size, [size], "cpu", PLENTY)
    assert fast.peak_bytes >= guided.peak_bytes and fast.seconds > guided.seconds and not fast.iterative
    for argv in (["--preset", "photo"], ["--method", "photo-fast"]):
        assert main([str(content_path), str(style_path), "--dry-run", "-s", "256", *argv]) == 0
        out = capsys.readouterr().out
        assert f"plan: {argv[1]}" in out and "estimated peak memory" in out


def straight_edges(size=(64, 48)) -> torch.Tensor:
    """A street of flat-coloured buildings under a sky: straight edges only."""
    im = Image.new("RGB", size, (150, 190, 235))
    draw = ImageDraw.Draw(im)
    colours = [(200, 80, 60), (230, 200, 120), (90, 110, 160), (220, 220, 210)]
    for i, x in enumerate(range(0, size[0], 16)):
        top = 10 + 6 * (i % 3)
        draw.rectangle([x, top, x + 15, size[1]], fill=colours[i % 4])
        for wy in range(top + 5, size[1] - 5, 8):
            draw.rectangle([x + 3, wy, x + 6, wy + 3], fill=(40, 40, 50))
            draw.rectangle([x + 9, wy, x + 12, wy + 3], fill=(40, 40, 50))
    return torch.from_numpy(np.asarray(im, dtype=np.float32) / 255).permute(2, 0, 1)[None].contiguous()


def edge_correlation(image: torch.Tensor, content: torch.Tensor) -> float:
    """Correlation of the gradient magnitudes (luminance) of two images."""

    def magnitude(t: torch.Tensor) -> torch.Tensor:
        y = (t[0] * torch.tensor([0.299, 0.587, 0.114]).view(3, 1, 1)).sum(0)
        gx, gy = y[1:-1, 2:] - y[1:-1, :-2], y[2:, 1:-1] - y[:-2, 1:-1]
        return (gx**2 + gy**2).sqrt().reshape(-1)

    return float(torch.corrcoef(torch.stack([magnitude(image), magnitude(content)]))[0, 1])


#: Margin between the photo and the artistic method's edge correlations, and the steps of the test's runs
#: (``benchmarks/bench_photo.py --only edges`` measures the margin over seeds, step counts and styles).
EDGE_MARGIN = 0.1
EDGE_STEPS = 25


@pytest.mark.slow
def test_photo_keeps_straight_edges_that_gatys_bends(style_path):
    content = straight_edges()
    style = load_image(style_path, 64)
    results = {}
    for name, preset in (("gatys", "default"), ("photo", "photo")):
        opts = make_options(preset, size=64, steps=EDGE_STEPS, precision="fp32", style_weight=5.0)
        results[name] = impasto.api.Runner(opts)(impasto.api.Stylization(content, [style]))
    corr = {k: edge_correlation(v, content) for k, v in results.items()}
    assert corr["photo"] > corr["gatys"] + EDGE_MARGIN, corr
    assert float((results["photo"] - content).abs().mean()) > 0.02  # and it did restyle


def test_the_matting_kernels_leave_torch_s_thread_count_alone():
    # Numba's OpenMP layer sets the OpenMP runtime it shares with torch to all cores when its threads start; a
    # process that runs torch on one thread (OMP_NUM_THREADS=1, a cluster actor) must stay on one afterwards.
    # A fresh process: Numba starts its threads once per process.
    code = (
        "import torch; torch.set_num_threads(1)\n"
        "from impasto.core import matting\n"
        "x = torch.rand(3, 24, 32)\n"
        "matting.matting_stencil(x); matting.smooth(x, torch.rand(3, 24, 32), 'exact')\n"
        "print(torch.get_num_threads())\n"
    )
    env = {**os.environ, "NUMBA_NUM_THREADS": "2", "PYTHONPATH": str(ROOT / "src")}
    env.pop("NUMBA_THREADING_LAYER", None)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split()[-1] == "1", out.stdout + out.stderr
