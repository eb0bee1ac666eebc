import pytest
import torch

from impasto import estimate, make_options
from impasto.core.schedule import balanced_steps, scale_sizes, schedule, split_steps
from impasto.core.sizes import resize_tensor
from impasto.errors import InputError, NonFiniteLossError, StylizeInterrupted
from impasto.methods import tiled
from impasto.methods.base import Stylization
from impasto.methods.coarse_to_fine import CoarseToFine
from impasto.methods.gatys import Gatys


def _run(engine, content, styles, callback=None):
    """The coarse-to-fine driver with the plan the runner would make."""
    h, w = content.shape[-2:]
    p = estimate.plan(engine.options, (w, h), [(s.shape[-1], s.shape[-2]) for s in styles], device="cpu")
    return CoarseToFine(engine).run(Stylization(content, list(styles), plan=p), callback=callback)


@pytest.mark.parametrize(
    "size, start, factor, expected",
    [
        (512, 256, 2.0, [256, 512]),
        (512, 128, 2.0, [128, 256, 512]),
        (4096, 512, 2.0, [512, 1024, 2048, 4096]),
        (600, 256, 2.0, [300, 600]),  # the coarsest is the size / 2**k nearest to the start size
        (800, 256, 2.0, [200, 400, 800]),
        (510, 256, 2.0, [255, 510]),
        (512, 256, 2**0.5, [256, 362, 512]),
        (512, None, 2.0, [512]),
        (512, 512, 2.0, [512]),
        (512, 1024, 2.0, [512]),
        (64, 16, 2.0, [32, 64]),  # nothing below MIN_SCALE
    ],
)
def test_scale_sizes(size, start, factor, expected):
    assert scale_sizes(size, start, factor) == expected


def test_steps_are_shared_out_coarse_first():
    assert split_steps(300, 2) == [150, 150]
    assert split_steps(301, 3) == [101, 100, 100]
    assert sum(split_steps(7, 4)) == 7


@pytest.mark.parametrize("steps", [4, 7, 90, 300, 1001])
def test_balanced_steps_give_each_scale_about_the_same_time(steps):
    sizes = [512, 1024, 2048, 4096]
    out = balanced_steps(steps, sizes)
    assert sum(out) == steps and all(k >= 1 for k in out)
    if steps >= 300:  # pixels x steps (the time) within a few steps' rounding of each other
        work = [k * s * s for k, s in zip(out, sizes, strict=True)]
        assert max(work) / min(work) < 1.5
    assert balanced_steps(300, [512]) == [300]
    assert balanced_steps(2, [128, 256, 512]) == [1, 1, 0]


def test_schedule_from_options():
    assert schedule(512, 128, 2.0, 90) == [(128, 67), (256, 18), (512, 5)]
    assert make_options(size=512, start_size=128, steps=90).scales() == [(128, 67), (256, 18), (512, 5)]
    assert make_options(size=512, start_size=256, scale_steps=(200, 50)).scales() == [(256, 200), (512, 50)]
    assert make_options(size=512, scale_steps=(7,)).scales() == [(512, 7)]
    with pytest.raises(ValueError, match="2 step counts for 3 scales"):
        schedule(512, 128, 2.0, 90, (200, 50))


@pytest.mark.parametrize(
    "bad, message",
    [
        (dict(size=512, start_size=128, scale_steps=(200, 50)), "2 value.* for 3 scale.*128, 256, 512 px"),
        (dict(size=512, start_size=256, scale_steps=(9, 200, 50)), "3 value.* for 2 scale"),
        (dict(size=512, scale_steps=(100, 200)), "2 value.* for 1 scale"),
        (dict(size=512, start_size=1024), "--start-size \\(1024\\) must not be larger than --size \\(512\\)"),
    ],
)
def test_scale_steps_must_match_the_scales_and_the_start_must_not_exceed_the_size(bad, message):
    with pytest.raises(InputError, match=message):
        make_options(**bad)


@pytest.mark.parametrize("bad", [dict(start_size=8), dict(scale_factor=1.0), dict(scale_steps=(10, -1)),
                                 dict(tile=32), dict(tile_passes=0)])  # fmt: skip
def test_bad_scale_options_are_input_errors(bad):
    with pytest.raises(InputError):
        make_options(**bad)


@pytest.fixture
def small_run(content64, style64):
    opts = make_options(size=64, start_size=32, scale_steps=(3, 2), precision="fp32")
    transfer = Gatys(opts)
    content = resize_tensor(content64, (48, 64))
    return transfer, content, style64


def test_multiscale_run_reports_global_steps_and_rescales_style_targets(small_run, monkeypatch):
    transfer, content, style = small_run
    style_sizes, seen = [], []
    original = transfer.style_image_for

    def spy(style_image, content_hw):
        out = original(style_image, content_hw)
        style_sizes.append((tuple(content_hw), max(out.shape[-2:])))
        return out

    monkeypatch.setattr(transfer, "style_image_for", spy)
    out = _run(transfer, content, [style], lambda i: seen.append((i.step, i.total, tuple(i.image.shape[-2:]))))
    assert out.shape == content.shape
    assert [s for s, _, _ in seen] == [1, 2, 3, 4, 5] and {t for _, t, _ in seen} == {5}
    assert [hw for _, _, hw in seen] == [(24, 32)] * 3 + [(48, 64)] * 2
    # style targets recomputed per scale, the style image scaled with the picture (style_scale 1)
    assert style_sizes == [((24, 32), 32), ((48, 64), 64)]
    assert [r["step"] for r in transfer.history] == [1, 2, 3, 4, 5]
    assert all(a["seconds"] <= b["seconds"] for a, b in zip(transfer.history, transfer.history[1:]))


def test_single_scale_is_the_plain_run(content64, style64):
    opts = make_options(size=64, steps=3, precision="fp32")
    a = _run(Gatys(opts), content64, [style64])
    b = Gatys(opts).stylize(Stylization(content64, [style64]))
    assert torch.equal(a, b)


def test_interrupt_at_a_coarse_scale_keeps_a_full_size_image(small_run):
    transfer, content, style = small_run

    def stop(info):
        raise KeyboardInterrupt

    with pytest.raises(StylizeInterrupted) as caught:
        _run(transfer, content, [style], stop)
    assert caught.value.image.shape == content.shape


def test_forced_tiles_run_the_last_scale_in_tiles(content64, style64, monkeypatch):
    from impasto.methods import coarse_to_fine

    calls = []
    original = tiled.optimize_tiled

    def spy(transfer, image, *args, **kwargs):
        calls.append(tuple(image.shape[-2:]))
        return original(transfer, image, *args, **kwargs)

    monkeypatch.setattr(coarse_to_fine, "optimize_tiled", spy)
    opts = make_options(size=128, start_size=64, scale_steps=(2, 2), tile=64, tile_overlap=16, precision="fp32")
    content = resize_tensor(content64, (96, 128))
    out = _run(Gatys(opts), content, [style64])
    assert calls == [(96, 128)]  # the 64 px scale fits in one tile
    assert out.shape == content.shape


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
        CoarseToFine(engine).run(Stylization(content, [style64], plan=plan))
    scale_start = 0 if fail_at <= 3 else 3
    best = min(seen[scale_start:], key=lambda item: item[0])[1]
    assert caught.value.image.shape == content.shape
    assert torch.equal(caught.value.image, resize_tensor(best.cpu(), (48, 64)))
