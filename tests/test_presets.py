"""The two seed documents' presets, pinned against the documents themselves (``../shared/seeds/``) and against their
loss formulas written out here, independently of impasto's loss code."""

from __future__ import annotations

import re

import pytest
import torch
import torch.nn.functional as F

from impasto import make_options
from impasto.core.vgg import build_vgg
from impasto.errors import InputError
from impasto.methods.base import Stylization
from impasto.methods.gatys import Gatys
from impasto.presets import preset_values

from .conftest import ROOT, SHARED

SEEDS = SHARED / "seeds"


def _seed(marker: str) -> str:
    """The text of the seed document containing ``marker``; skips where the seeds are absent."""
    if not SEEDS.is_dir():
        pytest.skip(f"seed documents not found at {SEEDS}")
    for path in sorted(SEEDS.glob("*.txt")):
        text = path.read_text(encoding="utf-8")
        if marker in text:
            return text
    pytest.fail(f"no seed document contains {marker!r}")


def _list(text: str, name: str) -> tuple[str, ...]:
    match = re.search(rf"{name}\s*=\s*\[([^\]]*)\]", text)
    assert match, name
    return tuple(re.findall(r"'([^']+)'", match.group(1)))


def test_tutorial_preset_is_the_tutorials_code():
    text = _seed("content_layers_default")
    o = make_options("tutorial")
    assert o.content_layers == _list(text, "content_layers_default") == ("conv_4",)
    assert o.style_layers == _list(text, "style_layers_default")
    weights = re.search(r"num_steps=(\d+),\s*style_weight=(\d+), content_weight=(\d+)", text)
    assert weights, "run_style_transfer's signature"
    assert o.steps == int(weights.group(1)) == 300
    assert o.style_weight == float(weights.group(2)) == 1e6 and o.content_weight == float(weights.group(3)) == 1
    assert "return G.div(a * b * c * d)" in text and o.gram_norm == "elements"  # every element of the features
    assert "self.loss = F.mse_loss(input, self.target)" in text and not o.normalize_losses  # plain MSE
    assert "optim.LBFGS([input_img.requires_grad_()])" in text  # torch's defaults: history 100, lr 1
    assert o.optimizer == "lbfgs" and o.lbfgs_history == 100
    assert "input_img = content_img.clone()" in text and o.init == "content"
    assert o.style_layer_weights is None and o.tv_weight == 0 and o.style_layer_norm == "none"
    # the one setting of ours: the loss in fp32 as the tutorial, gradients in bf16 (docs/design.md, "Precision")
    assert o.precision == "mixed"
    assert set(preset_values("tutorial")) == {
        "content_layers", "style_layers", "style_layer_weights", "content_weight", "style_weight", "tv_weight",
        "gram_norm", "normalize_losses", "style_layer_norm", "optimizer", "lbfgs_history", "steps", "init",
        "precision",
    }  # fmt: skip


def _feats(net, x: torch.Tensor, names: list[str]) -> dict[str, torch.Tensor]:
    with torch.no_grad():
        return net(x, names)


def test_tutorial_content_and_style_losses_are_the_tutorials_formulas(content64, style64):
    """Content: mse_loss(F_X, F_C) at conv_4 (= conv2_2), weight 1; style: mse_loss(G_X, G_S) with
    G = F F^T / (a b c d) at conv_1..conv_5, summed, weight 1e6 -- the tutorial's classes, written out."""
    st = Gatys(make_options("tutorial", precision="fp32"))
    style = torch.nn.functional.interpolate(style64, size=content64.shape[-2:], mode="bilinear")
    terms = st.build_terms(content64, [style])
    x = torch.rand_like(content64, generator=torch.Generator().manual_seed(2))
    _, parts = st.evaluate(x, terms)
    names = ["conv1_1", "conv1_2", "conv2_1", "conv2_2", "conv3_1"]
    net = build_vgg(names)
    fx, fc, fs = _feats(net, x, names), _feats(net, content64, names), _feats(net, style, names)

    def gram(f):
        a, b, c, d = f.shape
        m = f.reshape(a * b, c * d)
        return m @ m.t() / (a * b * c * d)

    assert parts["content"] == pytest.approx(1.0 * float(F.mse_loss(fx["conv2_2"], fc["conv2_2"])), rel=1e-4)
    style_loss = sum(float(F.mse_loss(gram(fx[n]), gram(fs[n]))) for n in names) * 1e6
    assert parts["style"] == pytest.approx(style_loss, rel=1e-4)


def test_article_preset_follows_the_article():
    text = _seed("阿尔法=1")
    o = make_options("article")
    assert "Adam" in text and o.optimizer == "adam"
    betas = {float(b) for b in re.findall(r"阿尔法=1，贝塔=(1e\d+)", text)}
    assert betas == {1e3, 1e6, 1e10} and o.content_weight == 1.0 and o.style_weight in betas
    assert "均方误差" in text  # "mean squared error": both losses are MSEs
    # What the article's text leaves to its code (the notebook it links): conv4_2 content, conv1_1..conv5_1 style
    # weighted 1, .75, .2, .2, .2, raw Gram matrices, each layer's loss divided by C*H*W, Adam lr 0.003, no
    # normalization of the losses by their targets.
    assert o.content_layers == ("conv4_2",)
    assert o.style_layers == ("conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1")
    assert o.style_layer_weights == (1.0, 0.75, 0.2, 0.2, 0.2)
    assert (o.gram_norm, o.style_layer_norm, o.normalize_losses, o.lr) == ("none", "elements", False, 0.003)
    assert "纪元=1000" in text and o.steps == 1000 and o.init == "content" and o.tv_weight == 0
    assert set(preset_values("article")) == {
        "content_layers", "style_layers", "style_layer_weights", "content_weight", "style_weight", "tv_weight",
        "gram_norm", "normalize_losses", "style_layer_norm", "optimizer", "lr", "steps", "init",
    }  # fmt: skip


def test_the_default_preset_is_the_options_defaults_and_presets_are_fresh_copies():
    assert preset_values("default") == {} and make_options("default") == make_options()
    preset_values("tutorial")["steps"] = 1
    assert preset_values("tutorial")["steps"] == 300
    with pytest.raises(InputError, match="unknown preset 'nope' \\(choose from default, tutorial, article, photo\\)"):
        preset_values("nope")


def test_article_losses_are_the_articles_formulas(content64, style64):
    """content = mean((F - P)^2) at conv4_2; style = sum_l w_l mean((G_l - A_l)^2) / (C_l H_l W_l) with raw
    G = F F^T; total = alpha content + beta style -- written out, style and content at the same size."""
    beta = 1e3
    st = Gatys(make_options("article", style_weight=beta, precision="fp32"))
    style = torch.nn.functional.interpolate(style64, size=content64.shape[-2:], mode="bilinear")
    terms = st.build_terms(content64, [style])
    x = torch.rand_like(content64, generator=torch.Generator().manual_seed(3))
    total, parts = st.evaluate(x, terms)
    names = ["conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1"]
    net = build_vgg([*names, "conv4_2"])
    fx, fc, fs = (_feats(net, t, [*names, "conv4_2"]) for t in (x, content64, style))
    content = float(((fx["conv4_2"] - fc["conv4_2"]) ** 2).mean())
    style_loss = 0.0
    for n, w in zip(names, (1.0, 0.75, 0.2, 0.2, 0.2), strict=True):
        _, d, h, wd = fx[n].shape
        g, a = (f.reshape(d, h * wd) @ f.reshape(d, h * wd).t() for f in (fx[n], fs[n]))
        style_loss += w * float(((g - a) ** 2).mean()) / (d * h * wd)
    assert parts["content"] == pytest.approx(content, rel=1e-4)
    assert parts["style"] == pytest.approx(beta * style_loss, rel=1e-4)
    assert float(total) == pytest.approx(content + beta * style_loss, rel=1e-4)


def test_the_article_runs_adam_at_its_learning_rate(content64, style64, monkeypatch):
    seen = {}
    real = torch.optim.Adam

    def spy(params, lr):
        seen["lr"] = lr
        return real(params, lr=lr)

    monkeypatch.setattr(torch.optim, "Adam", spy)
    Gatys(make_options("article", steps=2, precision="fp32")).stylize(Stylization(content64, [style64]))
    assert seen == {"lr": 0.003}


def test_photo_preset_is_the_papers_recipe_with_the_weights_the_guide_derives():
    """Luan et al.'s shape (content relu4_2 weight 1, style relu1_1..relu5_1, the regularizer, L-BFGS, 300 steps),
    started from the content recoloured to the style, and the weights the sweep chose, read from the sentences of
    the photorealistic guide (docs/guides/photorealistic.md)."""
    guide = (ROOT / "docs" / "guides" / "photorealistic.md").read_text(encoding="utf-8")
    chosen = re.search(r"\*\*Style (\S+),\s+photo\s+(\S+)\*\*\s+\(the preset\)", guide)
    assert chosen, "the guide's sentence on the photo preset's weights"
    layers = re.search(r"weighting the shallow layers most\s+\(([\d.,\s]+) for relu1_1", guide)
    assert layers, "the guide's sentence on the photo preset's style layer weights"
    o = make_options("photo")
    assert (o.method, o.content_layers, o.content_weight) == ("photo", ("relu4_2",), 1.0)
    assert o.style_layers == ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
    assert (o.style_weight, o.photo_weight) == (float(chosen.group(1)), float(chosen.group(2))) == (3.0, 1e5)
    assert o.style_layer_weights == tuple(float(w) for w in layers.group(1).split(",")) == (10, 3, 1, 0.3, 0.1)
    assert (o.init, o.optimizer, o.steps, o.start_size) == ("colors", "lbfgs", 300, 256)
    assert set(preset_values("photo")) == {
        "method", "content_layers", "style_layers", "style_layer_weights", "content_weight", "style_weight",
        "photo_weight", "init", "optimizer", "steps", "start_size",
    }  # fmt: skip
    # the coarse-to-fine start applies only to pictures larger than it; given explicitly it is checked
    assert make_options("photo", size=128).start_size is None
    assert make_options("photo", size=512).scales() == [(256, 239), (512, 61)]
    assert make_options("photo", size=512, start_size=512).scales() == [(512, 300)]
    with pytest.raises(InputError, match="must not be larger"):
        make_options("photo", size=128, start_size=256)
