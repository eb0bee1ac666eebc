import pytest
import torch

from impasto.core.losses import gram_matrix
from impasto.core.sizes import resize_tensor
from impasto.core.tiles import axis_spans, blend_window, check_tile, shifts, tile_grid, tiled_apply
from impasto.errors import InputError, NonFiniteLossError, StylizeInterrupted
from impasto.io.images import load_image
from impasto.methods import tiled
from impasto.methods.adain import AdaIN, stylize_tiled
from impasto.methods.gatys import Gatys
from impasto.methods.tiled import optimize_tiled
from impasto.options import make_options

CASES = [(1000, 256, 32), (513, 128, 16), (4096, 2048, 256), (3072, 2048, 256), (300, 64, 0), (257, 256, 64)]


@pytest.mark.parametrize("length, tile, overlap", CASES)
@pytest.mark.parametrize("shift", [0.0, 0.5, 1 / 3])
def test_spans_cover_the_axis_exactly_with_the_requested_overlap(length, tile, overlap, shift):
    spans = axis_spans(length, tile, overlap, shift)
    assert spans[0][0] == 0 and spans[-1][1] == length
    assert all(0 < b - a <= tile for a, b in spans)
    for (_, stop), (start, _) in zip(spans, spans[1:]):
        assert stop - start == overlap  # neighbours share exactly `overlap` pixels
    if shift == 0:
        sizes = [b - a for a, b in spans]
        assert max(sizes) - min(sizes) <= 1  # nearly equal tiles


def test_a_short_axis_is_one_tile():
    assert axis_spans(200, 256, 32) == [(0, 200)]
    assert axis_spans(200, 256, 32, 0.5) == [(0, 200)]


def test_shifted_pass_moves_every_seam_inside_a_tile():
    plain = axis_spans(1000, 256, 32)
    moved = axis_spans(1000, 256, 32, 0.5)
    seams = [(a + b) / 2 for (_, b), (a, _) in zip(plain, plain[1:])]  # centres of the blended overlaps
    for seam in seams:
        # each seam of the first pass lies at least a quarter tile away from any overlap of the second
        assert all(abs(seam - (a + b) / 2) > 64 for (_, b), (a, _) in zip(moved, moved[1:]))


@pytest.mark.parametrize("shift", [0.0, 0.5])
def test_grid_covers_every_pixel_and_windows_sum_to_one(shift):
    h, w, tile, overlap = 300, 460, 128, 24
    grid = tile_grid(h, w, tile, overlap, shift)
    cover = torch.zeros(h, w)
    wsum = torch.zeros(h, w)
    for t in grid:
        rows, cols = t.slices
        cover[rows, cols] += 1
        wsum[rows, cols] += blend_window(t, overlap)[0, 0]
    assert cover.min() >= 1 and cover.max() <= 4
    assert torch.allclose(wsum, torch.ones(h, w), atol=1e-6)


def test_tiled_identity_returns_the_image():
    image = torch.rand(1, 3, 150, 230)
    out = tiled_apply(image, lambda crop: crop, tile=64, overlap=16, passes=2)
    assert torch.allclose(out, image, atol=1e-6)


def test_bad_tiles_are_input_errors():
    with pytest.raises(InputError, match="at least"):
        check_tile(32, 4)
    with pytest.raises(InputError, match="overlap"):
        check_tile(128, 100)
    assert shifts(2) == [0.0, 0.5]


@pytest.fixture(scope="module")
def fast_engine():

    return AdaIN("cpu", "fp32")


def _border_and_inner_steps(out: torch.Tensor, tile: int, overlap: int, passes: int) -> tuple[float, float]:
    """Largest neighbour difference across any tile border (of any pass) and inside tiles."""
    h, w = out.shape[-2:]
    dx = (out[..., :, 1:] - out[..., :, :-1]).abs().amax(dim=(0, 1, 2))  # per column boundary
    dy = (out[..., 1:, :] - out[..., :-1, :]).abs().amax(dim=(0, 1, 3))
    cols, rows = set(), set()
    for s in shifts(passes):
        for t in tile_grid(h, w, tile, overlap, s):
            cols.update(c for c in (t.left - 1, t.left + t.width - 1) if 0 <= c < w - 1)
            rows.update(r for r in (t.top - 1, t.top + t.height - 1) if 0 <= r < h - 1)
    border = max(float(dx[sorted(cols)].max()), float(dy[sorted(rows)].max()))
    inner_c = [c for c in range(w - 1) if c not in cols]
    inner_r = [r for r in range(h - 1) if r not in rows]
    inner = max(float(dx[inner_c].max()), float(dy[inner_r].max()))
    return border, inner


def test_tiled_fast_method_on_a_constant_image_shows_no_seam(fast_engine, style64):
    content = torch.ones(1, 3, 200, 264) * torch.tensor([0.6, 0.4, 0.3]).view(1, 3, 1, 1)
    tile, overlap = 96, 16
    out = stylize_tiled(fast_engine, content, [style64], tile, overlap, passes=2)
    assert out.shape == content.shape
    border, inner = _border_and_inner_steps(out, tile, overlap, 2)
    assert border <= inner + 1e-4, (border, inner)
    # and the tiles agree with each other: the whole picture is (nearly) one colour, as untiled
    whole = fast_engine.stylize(content, [style64])
    assert (out.mean(dim=(2, 3)) - whole.mean(dim=(2, 3))).abs().max() < 0.02


def test_disagreeing_tiles_blend_without_a_step_at_any_tile_border():
    """Each tile's output is offset by its own constant: blending must hide the tile borders."""
    gen = torch.Generator().manual_seed(0)
    image = torch.full((1, 3, 180, 250), 0.5)
    out = tiled_apply(image, lambda crop: crop + 0.2 * torch.rand(1, generator=gen), tile=80, overlap=20, passes=2)
    border, inner = _border_and_inner_steps(out, 80, 20, 2)
    assert inner > 0 and border <= inner, (border, inner)
    assert border < 0.2 / 20  # no step anywhere near the tiles' offsets


def test_tiled_fast_method_uses_the_whole_pictures_statistics(fast_engine, content_path, style64):
    import torch.nn.functional as F

    from impasto.io.images import load_image

    content = load_image(content_path, 256)
    whole = fast_engine.stylize(content, [style64])
    out = stylize_tiled(fast_engine, content, [style64], tile=128, overlap=16, passes=2)
    naive = tiled_apply(content, lambda crop: fast_engine.stylize(crop, [style64]), 128, 16, 2)  # per-tile stats

    def low(t):  # colours and shading, not the texture's phase
        return F.avg_pool2d(t, 8)

    err, naive_err = float((low(out) - low(whole)).abs().mean()), float((low(naive) - low(whole)).abs().mean())
    assert err < 0.04 and err < 0.7 * naive_err, (err, naive_err)


def test_tiled_optimization_reports_each_step_once_and_lowers_the_loss(content64, style64):
    from impasto.methods.gatys import Gatys

    opts = make_options(size=128, steps=8, precision="fp32")
    transfer = Gatys(opts)
    content = resize_tensor(content64, (96, 128))
    seen = []
    out = optimize_tiled(transfer, content, content, [style64], 8, tile=64, overlap=16, passes=2,
                         callback=lambda i: seen.append((i.step, i.total)))  # fmt: skip
    assert [s for s, _ in seen] == list(range(1, 9)) and {t for _, t in seen} == {8}
    assert out.shape == content.shape and 0 <= out.min() and out.max() <= 1
    assert transfer.history and max(r["step"] for r in transfer.history) == 8
    terms = transfer.build_terms(content, [style64])  # the whole picture's loss
    before, _ = transfer.evaluate(content.clone(), terms)
    after, _ = transfer.evaluate(out, terms)
    assert float(after) < 0.8 * float(before)


def test_tiled_optimization_starts_each_tile_from_a_seamless_blend(monkeypatch):
    """Tiles that each brighten their start image must leave no step at any tile border: a tile's start
    image fades from its neighbours' results to the pass's input across their windows."""

    class Fake:
        options = make_options(size=256)
        history: list = []

        def optimize(self, init, losses, steps, callback=None):
            return (init + 0.1).clamp(0, 1)

    monkeypatch.setattr(tiled, "style_grams", lambda *a, **k: None)
    monkeypatch.setattr(tiled, "content_scale", lambda *a, **k: None)
    monkeypatch.setattr(tiled, "tile_terms", lambda *a, **k: None)
    image = torch.full((1, 3, 150, 250), 0.3)
    out = optimize_tiled(Fake(), image, image, [], steps=2, tile=96, overlap=24, passes=2)
    border, inner = _border_and_inner_steps(out, 96, 24, 2)
    assert border <= inner + 1e-6 and border < 0.1 / 24, (border, inner)


# -- properties over arbitrary sizes (hypothesis) ---------------------------------------------------------

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from impasto.core.tiles import Tile, core_box, core_positions, default_overlap  # noqa: E402

_geometry = st.integers(64, 400).flatmap(
    lambda tile: st.tuples(
        st.just(tile), st.integers(0, tile // 3), st.integers(1, 1500), st.sampled_from([0.0, 0.5, 1 / 3])
    )
)


@settings(max_examples=60, deadline=None)
@given(_geometry)
def test_spans_tile_any_axis(geometry):
    tile, overlap, length, shift = geometry
    spans = axis_spans(length, tile, overlap, shift)
    assert spans[0][0] == 0 and spans[-1][1] == length
    assert all(0 < b - a <= tile for a, b in spans) and all(a1 < a2 for (a1, _), (a2, _) in zip(spans, spans[1:]))
    for (_, stop), (start, _) in zip(spans, spans[1:]):
        assert stop - start == overlap


@settings(max_examples=40, deadline=None)
@given(_geometry, st.integers(1, 700))
def test_windows_sum_to_one_and_cores_partition_any_picture(geometry, height):
    tile, overlap, width, shift = geometry
    grid = tile_grid(height, width, tile, overlap, shift)
    wsum = torch.zeros(height, width, dtype=torch.float64)
    cores = torch.zeros(height, width, dtype=torch.int32)
    for t in grid:
        rows, cols = t.slices
        wsum[rows, cols] += blend_window(t, overlap)[0, 0].double()
        top, bottom, left, right = core_box(t, overlap)
        assert t.top <= top <= bottom <= t.top + t.height and t.left <= left <= right <= t.left + t.width
        cores[top:bottom, left:right] += 1
    assert torch.allclose(wsum, torch.ones_like(wsum), atol=1e-6)
    if shift == 0:  # one grid: its cores cover every pixel exactly once
        assert int(cores.min()) == 1 and int(cores.max()) == 1


@settings(max_examples=40, deadline=None)
@given(st.integers(64, 300), st.integers(1, 900), st.sampled_from([1, 2, 4, 8, 16]))
def test_core_positions_of_a_grid_count_each_feature_position_once(tile, length, stride):
    """Feature positions whose centres fall in a tile's core: each centre in exactly one core, none twice; at
    stride 1 every pixel exactly once."""
    overlap = tile // 8
    grid = tile_grid(8, length, tile, overlap)  # one row of tiles
    centres = []
    for t in grid:
        n = -(-t.width // stride)  # the feature map's width (ceil-mode pooling)
        _, cols = core_positions(t, overlap, stride, (1, n))
        _, _, left, right = core_box(t, overlap)
        here = [t.left + j * stride + stride // 2 for j in cols]
        assert all(left <= c < right for c in here)
        centres += here
    assert len(centres) == len(set(centres))
    if stride == 1:
        assert sorted(centres) == list(range(length))
    else:  # about one position per stride across the axis
        assert abs(len(centres) - length / stride) <= len(grid)


def test_default_tile_overlap_is_an_eighth_of_the_tile_and_at_least_16_pixels():
    assert [default_overlap(t) for t in (64, 128, 144, 512, 2048)] == [16, 16, 18, 64, 256]


def test_a_grid_shift_is_taken_modulo_one_tile_step():
    assert axis_spans(1000, 256, 32, 1.5) == axis_spans(1000, 256, 32, 0.5) != axis_spans(1000, 256, 32)
    assert axis_spans(1000, 256, 32, 1.0) == axis_spans(1000, 256, 32, 2.0) == axis_spans(1000, 256, 32)


def test_each_tiled_pass_uses_its_own_shifted_grid():
    """Two passes: the plain grid and the half-shifted one (which has one more tile per axis), each tile once."""

    seen: list[tuple[int, int]] = []

    def fn(crop: torch.Tensor) -> torch.Tensor:
        seen.append(tuple(crop.shape[-2:]))
        return crop

    image = torch.rand(1, 3, 200, 300, generator=torch.Generator().manual_seed(0))
    out = tiled_apply(image, fn, tile=128, overlap=16, passes=2)
    expected = [(t.height, t.width) for s in (0.0, 0.5) for t in tile_grid(200, 300, 128, 16, s)]
    assert seen == expected and len(tile_grid(200, 300, 128, 16, 0.5)) > len(tile_grid(200, 300, 128, 16))
    assert torch.allclose(out, image, atol=1e-6)  # an identity stylization blends back to the image


def test_core_positions_take_feature_centres_inside_the_core_counting_padding():
    """Worked by hand: an 8-pixel stride puts feature j's centre at top + 8j + 4 - pad. A tile at the top-left
    with neighbours below and right (overlap 16) has its core in rows [0, 56) and columns [0, 56); with 3 pixels
    of padding the centres are 8j + 1, so rows 0..6 (8*7 + 1 = 57 is out); an edge tile keeps all rows."""

    inner = Tile(0, 0, 64, 64, (False, True, False, True))
    rows, cols = core_positions(inner, 16, 8, (9, 9), (3, 3))
    assert rows == cols == list(range(7))
    tall = Tile(0, 0, 96, 64, (False, False, False, False))  # alone: everything is core; 12 rows, 8 columns
    rows, cols = core_positions(tall, 16, 8, (12, 8))
    assert rows == list(range(12)) and cols == list(range(8))


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
