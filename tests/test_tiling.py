import pytest
import torch

from impasto.core.tiles import axis_spans, blend_window, check_tile, shifts, tile_grid, tiled_apply
from impasto.errors import InputError
from impasto.methods import tiled
from impasto.methods.adain import stylize_tiled
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
    from impasto.methods.adain import AdaIN

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
    from impasto.core.sizes import resize_tensor
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

from impasto.core.tiles import core_box, core_positions  # noqa: E402

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
