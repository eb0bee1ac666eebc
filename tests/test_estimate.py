import json

import pytest

import impasto.api
from impasto import cli, estimate
from impasto.core import speed
from impasto.errors import InputError
from impasto.estimate import plan
from impasto.methods import gatys
from impasto.options import make_options
from impasto.plan import GB, MB, check, fmt_range

TUBINGEN = (1024, 768)
STARRY = (1024, 640)
PLENTY = 1 << 50


def _peak_and_time(size: int, **kw) -> tuple[int, float, int]:
    p = plan(make_options(size=size, tile=0, device="cpu", **kw), TUBINGEN, [STARRY], available=PLENTY)
    h, w = p.scales[-1].hw
    return p.peak_bytes, p.seconds, h * w


@pytest.mark.parametrize("kw", [{}, {"precision": "fp32"}, {"optimizer": "adam"}, {"method": "fast"}])
def test_estimate_grows_linearly_with_pixel_count(kw):
    points = [_peak_and_time(s, **kw) for s in (512, 1024, 1536, 2048, 4096)]
    slopes = [(b[0] - a[0]) / (b[2] - a[2]) for a, b in zip(points, points[1:])]
    assert max(slopes) / min(slopes) < 1.01
    if kw.get("method") != "fast":
        rates = [t / px for _, t, px in points]
        assert max(rates) / min(rates) < 1.01
    assert points[-1][0] > points[0][0] > 0


def test_mixed_precision_is_planned_with_fp32_activations_and_a_faster_backward():
    from impasto.core.device import cpu_supports_bf16

    if not cpu_supports_bf16():
        pytest.skip("this CPU has no native bf16")
    mixed, fp32 = (
        plan(make_options("tutorial", size=512, device="cpu", **kw), TUBINGEN, [STARRY], available=PLENTY)
        for kw in ({}, {"precision": "fp32"})
    )
    assert mixed.precision == "mixed" and fp32.precision == "fp32"
    assert 0 < mixed.peak_bytes - fp32.peak_bytes < 10 * MB  # fp32 activations, plus bf16 weights
    assert mixed.seconds < fp32.seconds


def test_the_hand_written_pass_is_planned_with_less_memory_than_autograd():
    o = make_options(size=1024, device="cpu")
    assert gatys.uses_handwritten_pass(o, "cpu") and not gatys.uses_handwritten_pass(o, "cuda:0")
    assert not gatys.uses_handwritten_pass(make_options(padding="reflect"), "cpu")
    assert _peak_and_time(1024, padding="reflect")[0] > _peak_and_time(1024)[0] + 500 * MB  # autograd's graph


def test_more_history_and_fp32_need_more_memory():
    base = _peak_and_time(1024, precision="bf16")[0]  # explicit: "auto" is fp32 on CPUs without native bf16
    assert _peak_and_time(1024, precision="fp32")[0] > base
    assert _peak_and_time(1024, precision="bf16", lbfgs_history=100)[0] > base
    assert _peak_and_time(1024, precision="bf16", steps=5)[0] < base  # a short run never fills the L-BFGS history


def test_tiles_are_chosen_only_when_the_whole_image_does_not_fit():
    opts = make_options(size=2048, start_size=512)
    roomy = plan(opts, TUBINGEN, [STARRY], device="cpu", available=64 * GB)
    assert roomy.tiles == [None, None, None] and roomy.fits
    tight = plan(opts, TUBINGEN, [STARRY], device="cpu", available=3 * GB)
    assert tight.tiles[0] is None and tight.tiles[-1] is not None and tight.fits
    assert tight.peak_bytes < roomy.peak_bytes
    forced = plan(make_options(size=2048, tile=512), TUBINGEN, [STARRY], device="cpu", available=64 * GB)
    assert forced.tiles == [512] and forced.scales[0].tiles > 1


def test_plan_describes_scales_tiles_memory_and_time():
    opts = make_options(size=4096, start_size=512, scale_steps=(100, 50, 20, 10))
    text = plan(opts, TUBINGEN, [STARRY], device="cpu", available=12 * GB).describe()
    assert "512x384" in text and "4096x3072" in text and "tiles of <=" in text
    assert "estimated peak memory" in text and "estimated time" in text


def test_impossible_plan_is_refused_with_a_suggestion():
    p = plan(make_options(size=16384, tile=0), TUBINGEN, [STARRY], device="cpu", available=8 * GB)
    with pytest.raises(InputError, match=r"not enough memory .*--tile"):
        check(p)
    p = plan(make_options(size=16384), TUBINGEN, [STARRY], device="cpu", available=600 * MB)
    with pytest.raises(InputError, match="smaller --size"):
        check(p)


@pytest.fixture
def no_heavy_work(monkeypatch):
    """Fail the test if anything loads an image at the output size or builds a network."""

    def boom(*args, **kwargs):
        raise AssertionError("heavy work started")

    monkeypatch.setattr(impasto.api, "load_image", boom)
    monkeypatch.setattr(impasto.api, "Runner", boom)


def test_cli_refuses_an_impossible_size_before_allocating(content_path, style_path, tmp_path, capsys, no_heavy_work,
                                                          monkeypatch):  # fmt: skip
    monkeypatch.setattr(estimate, "available_memory", lambda device="cpu": 4 * GB)
    out = tmp_path / "out.png"
    code = cli.main([str(content_path), str(style_path), "-o", str(out), "--size", "16384", "--tile", "0"])
    err = capsys.readouterr().err
    assert code == 2 and not out.exists()
    assert err.count("\n") == 1 and "not enough memory" in err and "--tile" in err


def test_api_refuses_an_impossible_size_before_loading(content_path, style_path, monkeypatch):
    monkeypatch.setattr(estimate, "available_memory", lambda device="cpu": 4 * GB)
    monkeypatch.setattr(impasto.api, "load_image", lambda *a, **k: (_ for _ in ()).throw(AssertionError("loaded")))
    with pytest.raises(InputError, match="not enough memory"):
        impasto.api.stylize(content_path, style_path, size=16384, tile=0)


def test_dry_run_prints_the_plan_and_does_nothing(content_path, style_path, tmp_path, capsys, no_heavy_work):
    out = tmp_path / "out.png"
    code = cli.main([str(content_path), str(style_path), "-o", str(out), "--size", "4096", "--start-size", "512",
                     "--scale-steps", "50,20,10,5", "--tile", "1024", "--dry-run"])  # fmt: skip
    printed = capsys.readouterr().out
    assert code == 0 and not out.exists()
    assert "plan: gatys" in printed and "tiles of <= 1024 px" in printed and "estimated peak memory" in printed
    assert len(printed.strip().splitlines()) == 1 + 4 + 2  # header, one line per scale, start-up, totals
    assert "before the first step: start-up ~" in printed and "loading the networks ~" in printed


def test_a_long_single_scale_plan_suggests_coarse_to_fine(content_path, style_path, tmp_path, capsys,
                                                          no_heavy_work):  # fmt: skip
    out = tmp_path / "out.png"
    assert cli.main([str(content_path), str(style_path), "-o", str(out), "--size", "4096", "--dry-run"]) == 0
    hint = capsys.readouterr().out.strip().splitlines()[-1]
    assert hint.startswith("hint: coarse to fine from 512 px (--start-size 512: ") and not out.exists()
    opts = make_options(size=4096)
    single = estimate.plan(opts, (4096, 3072), available=20 * GB)
    alt = estimate.plan(make_options(size=4096, start_size=512), (4096, 3072), available=20 * GB)
    assert alt.seconds < single.seconds / 2 and "instead of" in hint
    assert estimate.coarse_to_fine_hint(opts, single, (4096, 3072)).endswith("at a higher loss at full size")
    # no hint where coarse to fine is already asked for, at 512 px, or for the fast method
    for o in (make_options(size=4096, start_size=256), make_options(size=512), make_options(size=4096, method="fast")):
        assert estimate.coarse_to_fine_hint(o, estimate.plan(o, (4096, 3072)), (4096, 3072)) is None


def test_available_memory_is_positive():
    assert estimate.available_memory("cpu") > 100 * MB


def test_a_long_run_announces_its_estimate_before_heavy_work(content_path, style_path, tmp_path, capsys,
                                                              no_heavy_work):  # fmt: skip
    out = tmp_path / "out.png"
    with pytest.raises(AssertionError, match="heavy work started"):
        cli.main([str(content_path), str(style_path), "-o", str(out), "--size", "4096", "--tile", "1024"])
    err = capsys.readouterr().err
    assert "impasto: estimated" in err and "Ctrl-C keeps the best image so far" in err and not out.exists()


def test_time_comes_from_this_machines_measured_speed(monkeypatch):
    opts = make_options(size=512, tile=0, device="cpu", precision="fp32")
    monkeypatch.setattr(speed, "measured_rate", lambda device, precision: 1e10)
    slow = plan(opts, TUBINGEN, [STARRY], available=PLENTY)
    monkeypatch.setattr(speed, "measured_rate", lambda device, precision: 4e10)
    fast = plan(opts, TUBINGEN, [STARRY], available=PLENTY)
    assert slow.seconds == pytest.approx(4 * fast.seconds)
    assert speed.measure("cpu", "fp32", repeats=1) > 1e8  # a real measurement: some FLOP/s


def test_runs_observed_here_correct_later_estimates_and_narrow_their_range(monkeypatch, tmp_path):
    monkeypatch.setenv("IMPASTO_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(speed, "_memory", None)
    monkeypatch.setattr(speed, "_loaded_here", set())
    monkeypatch.setattr(speed, "measured_rate", lambda device, precision: 1e9)
    opts = make_options(method="fast", size=256, device="cpu")
    before = plan(opts, TUBINGEN, [STARRY], available=PLENTY)
    assert before.load_seconds == estimate.DEFAULT_LOAD_SECONDS and before.total_seconds > before.seconds
    lo, hi = before.seconds_range
    assert hi / lo > 3  # nothing observed yet: a wide range
    predicted = before.seconds / before.factor
    assert predicted > speed.MIN_OBSERVED_SECONDS
    speed.observe("fast", "cpu", before.precision, 0.5, 50.0)  # too short a run to say anything: left out
    assert speed.correction("fast", "cpu", before.precision) is None
    speed.observe("fast", "cpu", before.precision, predicted, 20 * predicted)  # the run took 20 times longer
    speed.observe_load("fast", "cpu", 7.0)
    after = plan(opts, TUBINGEN, [STARRY], available=PLENTY)
    assert after.seconds == pytest.approx(20 * predicted) and after.load_seconds == 7.0
    assert after.seconds_range[0] >= 0.7 * after.total_seconds and after.seconds_range[1] <= 1.5 * after.total_seconds
    kept = json.loads((tmp_path / "speed.json").read_text())  # the next process starts from it
    assert any("factor:fast" in entry for entry in kept.values() if isinstance(entry, dict))
    assert estimate.plan(make_options(method="gatys", size=256, device="cpu"), TUBINGEN, [STARRY],
                         available=PLENTY).factor == estimate.FIRST_RUN_FACTOR["gatys"]  # per method  # fmt: skip


def test_the_time_is_a_range_in_the_right_units():
    assert fmt_range(0.01, 0.2) == "about 1 s"
    assert fmt_range(5, 15) == "5\u201315 s"
    assert fmt_range(70, 200) == "70 s\u20133 min"
    assert fmt_range(120, 400) == "2\u20137 min"
    assert fmt_range(4000, 12000) == "67 min\u20133.3 h"
    fast = plan(make_options(method="fast", size=256, device="cpu"), TUBINGEN, [STARRY], available=PLENTY)
    # loading the networks counts (measured here once a run has loaded them, else a default): never "~0 s"
    assert fast.total_seconds >= fast.load_seconds + fast.seconds and fast.load_seconds > 0
    assert not fast.time_text.startswith("0")
