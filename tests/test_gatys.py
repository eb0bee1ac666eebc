
import pytest
import torch
from PIL import Image

from impasto import api, make_options
from impasto.core.sizes import fit_size, resize_tensor
from impasto.errors import InputError, NonFiniteLossError, StylizeInterrupted
from impasto.io.images import load_image
from impasto.methods import gatys as gatys_method
from impasto.methods import terms
from impasto.methods.base import Stylization
from impasto.methods.gatys import Gatys
from impasto.methods.terms import TemporalTerm
from impasto.options import PRESETS


def _run(content, style, **opts):
    st = Gatys(make_options(**opts))
    out = st.stylize(Stylization(content, [style]))
    return st, out


def test_short_run_lowers_style_loss(content64, style64):
    st, out = _run(content64, style64, steps=15, precision="fp32")
    first, last = st.history[0], st.history[-1]
    assert last["style"] < 0.5 * first["style"]
    assert out.shape == content64.shape and 0 <= out.min() and out.max() <= 1
    assert len(st.history) == 15 and [h["step"] for h in st.history] == list(range(1, 16))


def test_adam_run_lowers_total_loss(content64, style64):
    st, _ = _run(content64, style64, optimizer="adam", lr=0.05, steps=10, precision="fp32")
    assert st.history[-1]["loss"] < st.history[0]["loss"]


def test_same_seed_same_pixels(content64, style64):
    _, a = _run(content64, style64, steps=4, init="noise", seed=3)
    _, b = _run(content64, style64, steps=4, init="noise", seed=3)
    _, c = _run(content64, style64, steps=4, init="noise", seed=4)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_init_options(content64, style64, tmp_path):
    st = Gatys(make_options(init="content"))
    torch.testing.assert_close(st.initial_image(content64, [style64]), content64)
    st = Gatys(make_options(init="style"))
    assert st.initial_image(content64, [style64]).shape == content64.shape
    st = Gatys(make_options(init="noise", seed=1))
    noise = st.initial_image(content64, [style64])
    assert noise.std() > 0.2


def test_style_scale_resizes_style_relative_to_content(style64):
    st = Gatys(make_options(style_scale=0.5))
    assert max(st.style_image_for(style64, (40, 64)).shape[-2:]) == 32


def test_blend_weights_must_match_style_count(content64, style64):
    st = Gatys(make_options(style_blend=(1, 2, 3)))
    with pytest.raises(Exception, match="3 weights for 1 style"):
        st.build_terms(content64, [style64])


def _recording(st: Gatys, monkeypatch, fail_at: int | None = None, fail_with=float("nan")):
    """Record every evaluated image and loss; make evaluation ``fail_at`` return ``fail_with``."""
    real = st.loss_and_grad
    seen: list[tuple[float, torch.Tensor]] = []

    def recorded(image, terms):
        total, parts, grad = real(image, terms)
        if fail_at is not None and len(seen) + 1 == fail_at:
            return total * fail_with, parts, grad
        seen.append((total, image.detach().clone()))
        return total, parts, grad

    monkeypatch.setattr(st, "loss_and_grad", recorded)
    return seen


def _best(seen):
    return min(seen, key=lambda item: item[0])[1]


def test_non_finite_loss_stops_with_the_best_image_before(content64, style64, monkeypatch):
    st = Gatys(make_options(steps=10, precision="fp32"))
    seen = _recording(st, monkeypatch, fail_at=4)
    with pytest.raises(NonFiniteLossError, match="loss became nan at step 4; stopped, best image so far kept") as info:
        st.stylize(Stylization(content64, [style64]))
    assert len(seen) == 3
    assert torch.equal(info.value.image, _best(seen))  # not the start image, not the image whose loss was NaN
    assert not torch.equal(info.value.image, content64)


def test_a_run_returns_the_best_image_it_evaluated_not_the_last(monkeypatch, style64):
    """A short L-BFGS run on a flat colour overshoots (the loss goes 1112 -> 1112 -> 7182 in bf16): the result is
    the image with the lowest loss, not the last one."""
    red = torch.zeros(1, 3, 43, 64)
    red[:, 0] = 1.0
    st = Gatys(make_options(steps=3, precision="bf16"))
    seen = _recording(st, monkeypatch)
    out = st.stylize(Stylization(red, [style64]))
    losses = [v for v, _ in seen]
    assert losses[-1] > 2 * min(losses)  # this run does end worse than it was
    assert torch.equal(out, _best(seen)) and not torch.equal(out, seen[-1][1])
    assert float(out[:, 0].mean()) > float(out[:, 1].mean())  # still red, not the overshoot's green


def test_adam_returns_the_best_evaluated_image_not_the_step_after_it(content64, style64, monkeypatch):
    st = Gatys(make_options(optimizer="adam", lr=0.05, steps=6, precision="fp32"))
    seen = _recording(st, monkeypatch)
    out = st.stylize(Stylization(content64, [style64]))
    assert len(seen) == 6 and torch.equal(out, _best(seen))


def test_ctrl_c_keeps_the_best_image_so_far(content64, style64, monkeypatch):
    st = Gatys(make_options(steps=50, precision="fp32"))
    seen = _recording(st, monkeypatch)

    def stop_at_five(info):
        if info.step == 5:
            raise KeyboardInterrupt

    with pytest.raises(StylizeInterrupted) as info:
        st.stylize(Stylization(content64, [style64]), callback=stop_at_five)
    assert len(seen) == 5 and torch.equal(info.value.image, _best(seen))


def test_every_preset_validates():
    for name in PRESETS:
        make_options(name)


@pytest.mark.parametrize(
    "opts, message",
    [
        ({"size": 0}, "--size"), ({"size": 10**6}, "--size"), ({"steps": -1}, "--steps"),
        ({"style_weight": -1.0}, "--style-weight"), ({"lr": 0.0}, "--lr"),
        ({"style_scale": float("nan")}, "--style-scale"),
        ({"optimizer": "sgd"}, "--optimizer"), ({"content_layers": ("conv9_9",)}, "unknown VGG-19 layer"),
        ({"style_layer_weights": (1.0,)}, "style layers"), ({"precision": "int8"}, "--precision"),
    ],
)  # fmt: skip
def test_bad_options(opts, message):
    with pytest.raises(InputError, match=message):
        make_options(**opts)


def test_unknown_preset():
    with pytest.raises(InputError, match="unknown preset"):
        make_options("nope")


def test_reduced_precision_keeps_the_image_and_first_conv_fp32(content64):
    st = Gatys(make_options(precision="bf16"))
    assert st.net.convs["conv1_1"].weight.dtype == torch.float32
    assert st.net.convs["conv2_1"].weight.dtype == torch.bfloat16
    feats = st.features(content64, ["relu1_1", "relu2_1"])
    assert feats["relu1_1"].dtype == torch.bfloat16 and feats["relu2_1"].dtype == torch.bfloat16
    x = content64.clone().requires_grad_(True)  # the image and its gradient stay fp32
    st.net(x, ["relu2_1"])["relu2_1"].float().sum().backward()
    assert x.grad.dtype == torch.float32 and x.grad.abs().sum() > 0


@pytest.mark.parametrize("padding", ["zeros", "reflect"])
def test_mixed_precision_keeps_the_loss_fp32_and_rounds_only_gradients(content64, style64, padding):
    from impasto.core.device import cpu_supports_bf16

    if not cpu_supports_bf16():
        pytest.skip("this CPU has no native bf16")
    exact = Gatys(make_options("tutorial", precision="fp32", padding=padding))
    mixed = Gatys(make_options("tutorial", padding=padding))
    assert mixed.dtype is None and mixed.grad_dtype == torch.bfloat16
    values, grads = [], []
    for st in (exact, mixed):
        losses = st.build_terms(content64, [style64])
        x = content64.clone().requires_grad_(True)
        total, _ = st.evaluate(x, losses)
        total.backward()
        values.append(float(total.detach()))
        grads.append(x.grad)
    assert values[0] == values[1]  # the forward pass is the same fp32 arithmetic
    assert not torch.equal(grads[0], grads[1])  # ... the backward pass is not
    rel = (grads[0] - grads[1]).norm() / grads[0].norm()
    assert rel < 0.02 and grads[1].dtype == torch.float32


def test_gatys_runs_a_one_scale_plan_as_its_stylize_and_refuses_others(content64, style64):
    """Gatys as a Method on its own (without the coarse-to-fine driver): a plan's one scale and its steps."""
    opts = make_options(steps=3, init="noise", seed=2, precision="fp32", size=64)
    plan = api.plan(content64, style64, opts)
    st = Gatys(opts)
    out = st.run(Stylization(content64, [style64], plan=plan))
    assert len(st.history) == 3
    assert torch.equal(out, Gatys(opts).stylize(Stylization(content64, [style64]), steps=3))
    two = api.plan(content64, style64, make_options(size=64, start_size=32, steps=4))
    with pytest.raises(ValueError, match="single untiled scale"):
        st.run(Stylization(content64, [style64], plan=two))


def test_zero_steps_return_the_start_clamped_and_one_step_evaluates_once(content_path, style_path):
    content, style = load_image(content_path, 32), load_image(style_path, 32)
    engine = Gatys(make_options(size=32, precision="fp32"))
    loss_terms = engine.build_terms(content, [style])
    start = content * 3 - 1  # values from -1 to 2
    calls = []
    out = engine.optimize(start, loss_terms, steps=0, callback=calls.append)
    assert calls == [] and torch.equal(out, start.clamp(0, 1))
    engine.optimize(start, loss_terms, steps=1, callback=calls.append)
    assert [c.step for c in calls] == [1]


def test_the_start_image_comes_from_the_style_or_from_a_file(content_path, style_path, tmp_path):
    content, style = load_image(content_path, 32), load_image(style_path, 48)
    hw = tuple(content.shape[-2:])
    by_style = Gatys(make_options(init="style")).initial_image(content, [style, content])
    assert torch.equal(by_style, resize_tensor(style, hw))
    picture = tmp_path / "start.png"
    rgb = (torch.rand(3, 20, 30, generator=torch.Generator().manual_seed(4)) * 255).round().byte()
    Image.fromarray(rgb.permute(1, 2, 0).numpy()).save(picture)
    by_file = Gatys(make_options(init=str(picture))).initial_image(content, [style])
    assert torch.equal(by_file, resize_tensor(load_image(picture), hw))


def test_gatys_run_passes_every_input_of_its_one_scale_to_stylize(content_path, style_path):
    """Masks, a start image with the steps already done, the temporal target, the plan's step count (not the
    options') and the callback all reach the run: the same pixels and steps as the explicit call."""

    content, style = load_image(content_path, 32), load_image(style_path, 32)
    styles = [style, style.flip(1)]
    h, w = content.shape[-2:]
    left = torch.zeros(1, 1, h, w)
    left[..., : w // 2] = 1
    masks = torch.cat([left, 1 - left])
    g = torch.Generator().manual_seed(5)
    start = torch.rand(1, 3, h, w, generator=g)
    temporal = (torch.rand(1, 3, h, w, generator=g), torch.ones(1, 1, h, w))
    opts = make_options(size=32, steps=4, precision="fp32", temporal_weight=50.0)
    plan = api.plan(content, styles, opts)
    assert plan.scales[0].steps == 4
    seen, expected = [], []
    out = Gatys(make_options(size=32, steps=9, precision="fp32", temporal_weight=50.0)).run(
        Stylization(content, styles, masks, start=start, start_step=1, temporal=temporal, plan=plan),
        callback=seen.append,
    )
    given = Stylization(content, styles, masks, start=start, start_step=1, temporal=temporal)
    ref = Gatys(opts).stylize(given, steps=4, callback=expected.append)
    assert torch.equal(out, ref) and [i.step for i in seen] == [i.step for i in expected] == [2, 3, 4]
    unmasked = Gatys(opts).stylize(Stylization(content, styles, start=start, start_step=1, temporal=temporal), steps=4)
    untemporal = Gatys(opts).stylize(Stylization(content, styles, masks, start=start, start_step=1), steps=4)
    assert not torch.equal(out, unmasked) and not torch.equal(out, untemporal)  # each input changes the result


def test_stylize_starts_from_the_style_image_when_asked(content_path, style_path):
    content, style = load_image(content_path, 32), load_image(style_path, 48)
    out = Gatys(make_options(size=32, init="style")).stylize(Stylization(content, [style]), steps=0)
    assert torch.equal(out, resize_tensor(style, tuple(content.shape[-2:])))


def test_gatys_run_passes_label_regions(content_path, style_path):
    content, style = load_image(content_path, 32), load_image(style_path, 32)
    top = torch.zeros(1, 1, *content.shape[-2:])
    top[..., : content.shape[-2] // 2, :] = 1
    stop = torch.zeros(1, 1, *style.shape[-2:])
    stop[..., :, : style.shape[-1] // 2] = 1
    regions, style_regions = torch.cat([top, 1 - top]), torch.cat([stop, 1 - stop])
    opts = make_options(size=32, steps=2, precision="fp32")
    plan = api.plan(content, [style], opts)
    out = Gatys(opts).run(Stylization(content, [style], regions=(regions, style_regions), plan=plan))
    ref = Gatys(opts).stylize(Stylization(content, [style], regions=(regions, style_regions)), steps=2)
    plain = Gatys(opts).stylize(Stylization(content, [style]), steps=2)
    assert torch.equal(out, ref) and not torch.equal(out, plain)


def test_gatys_run_refuses_a_plan_of_several_scales_in_one_exact_line(content_path, style_path):
    content, style = load_image(content_path, 64), load_image(style_path, 64)
    two = api.plan(content, [style], make_options(size=64, start_size=32, steps=4))
    assert len(two.scales) == 2 and not two.scales[0].tile
    with pytest.raises(ValueError) as err:
        Gatys(make_options(size=64)).run(Stylization(content, [style], plan=two))
    assert str(err.value) == "Gatys.run takes a single untiled scale; CoarseToFine runs the others"


def test_the_temporal_term_without_a_previous_frame_is_zero():
    term = TemporalTerm(5.0)
    assert term.weight == 0 and float(term(torch.rand(1, 3, 4, 4), {}, {})) == 0.0


def test_a_new_term_without_a_hand_written_gradient_is_planned_under_autograd(monkeypatch):
    """The open list of terms: a term that says nothing about the hand-written pass is not assumed to be in it."""

    class Brightness(terms.Term):
        name = "brightness"

        @classmethod
        def wanted(cls, options):  # noqa: ANN001, ANN206
            return True

    opts = make_options(size=64)
    assert gatys_method.uses_handwritten_pass(opts, "cpu")
    monkeypatch.setattr(terms, "TERMS", [*terms.TERMS, Brightness])
    assert not gatys_method.uses_handwritten_pass(opts, "cpu")


def test_style_size_is_computed_in_one_place(style_path):
    o = make_options(size=300, style_scale=0.5)
    assert (
        o.style_size() == 150 and o.style_size(64) == 32 and make_options(size=20, style_scale=0.1).style_size() == 16
    )
    st = Gatys(o)
    style = load_image(style_path, 400)
    assert max(st.style_image_for(style, (200, 300)).shape[-2:]) == 150
    assert fit_size(1024, 640, o.style_size()) == (150, 94)
