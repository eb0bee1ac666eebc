"""The hand-written forward/backward pass (impasto.methods.fused_backward) against autograd through Gatys.evaluate."""

from __future__ import annotations

import pytest
import torch

from impasto import make_options
from impasto.core.device import cpu_supports_bf16
from impasto.methods import fused_backward
from impasto.methods.base import Stylization
from impasto.methods.gatys import Gatys


def _both(st: Gatys, content: torch.Tensor, style: torch.Tensor):
    """(value, parts, grad) by autograd and by the fused pass, at a perturbed copy of the content."""
    losses = st.build_terms(content, [style])
    gen = torch.Generator().manual_seed(1)
    x = (content + 0.1 * torch.randn(content.shape, generator=gen)).clamp(0, 1)
    assert fused_backward.supported(st.net, losses)
    st.handwritten = False
    reference = st.loss_and_grad(x, losses)
    st.handwritten = True
    return reference, st.loss_and_grad(x, losses)


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


@pytest.mark.parametrize(
    "preset, overrides",
    [
        ("tutorial", {"precision": "fp32"}),  # losses at conv outputs; ReLU + max-pool swapped
        ("default", {"precision": "fp32"}),  # losses at ReLU outputs, content relu4_2
        ("default", {"precision": "fp32", "pooling": "avg", "tv_weight": 1e-2}),
        ("article", {"precision": "fp32", "style_weight": 1e3}),  # raw Gram, per-element layer norm
        ("default", {"precision": "fp32", "content_layers": ("pool2",), "style_layers": ("relu1_2", "pool1")}),
    ],
)
def test_fused_pass_equals_autograd_in_fp32(content64, style64, preset, overrides):
    (v0, p0, g0), (v1, p1, g1) = _both(Gatys(make_options(preset, **overrides)), content64, style64)
    assert v1 == pytest.approx(v0, rel=1e-5)
    for part in ("content", "style", "tv"):
        assert p1[part] == pytest.approx(p0[part], rel=1e-5, abs=1e-12)
    assert g1.dtype == torch.float32 and g1.shape == content64.shape and g1.is_contiguous()
    assert g0.abs().sum() > 0 and _rel(g1, g0) < 1e-5


@pytest.mark.parametrize("precision", ["mixed", "bf16"])
def test_fused_pass_in_low_precision_stays_close_to_fp32(content64, style64, precision):
    if not cpu_supports_bf16():
        pytest.skip("this CPU has no native bf16")
    exact = Gatys(make_options("tutorial", precision="fp32"))
    low = Gatys(make_options("tutorial", precision=precision))
    (v32, _, g32), _ = _both(exact, content64, style64)
    (va, _, ga), (vf, _, gf) = _both(low, content64, style64)
    assert vf == pytest.approx(va, rel=1e-5)  # same forward arithmetic as the autograd path
    if precision == "mixed":
        assert vf == pytest.approx(v32, rel=1e-5)  # ... which is fp32: only the gradient is rounded
    assert _rel(gf, ga) < 0.01 and _rel(gf, g32) < (0.01 if precision == "mixed" else 0.05)
    assert not torch.equal(gf, g32)


def test_fused_pass_is_not_used_where_it_does_not_apply(content64, style64):
    st = Gatys(make_options(padding="reflect"))
    assert not fused_backward.supported(st.net, st.build_terms(content64, [style64]))
    st = Gatys(make_options())
    assert fused_backward.supported(st.net, st.build_terms(content64, [style64]))
    assert not fused_backward.supported(st.net, st.build_terms(content64, [style64], torch.ones(1, 1, 64, 64)))


def test_fused_run_lowers_the_loss_like_autograd(content64, style64):
    results = []
    for use_fused in (False, True):
        st = Gatys(make_options("tutorial", precision="fp32", steps=15))
        st.handwritten = use_fused
        st.stylize(Stylization(content64, [style64]))
        results.append([row["loss"] for row in st.history])
    assert results[1][-1] < 0.5 * results[1][0]
    assert results[1][-1] == pytest.approx(results[0][-1], rel=0.02)
