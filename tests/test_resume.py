"""Resuming a run from one of its images and a step: only the remaining steps run, numbered on, at the scale the
step falls in; the first resumed evaluation is the saved image's own (the same loss as when it was saved)."""

from __future__ import annotations

import csv

import pytest
import torch

from impasto import api
from impasto.cli import main
from impasto.cli import stylize as cli_stylize
from impasto.errors import InputError
from impasto.io.images import read_metadata
from impasto.options import make_options


def _record(prepared, start=None, start_step=0):
    """Run a prepared job (optionally resumed); returns [(step, total, loss, image)] and the runner's history."""
    seen = []
    prepared.start, prepared.start_step = start, start_step
    runner = api.Runner(prepared.options)
    api.run(prepared, lambda i: seen.append((i.step, i.total, i.loss, i.image.clone())), runner)
    return seen, runner.history


@pytest.fixture(scope="module")
def single(content_path, style_path):
    opts = make_options(size=32, steps=6)
    prepared = api.prepare(content_path, style_path, opts)
    return prepared, *_record(prepared)


def test_a_resumed_run_starts_from_the_image_and_numbers_on(single):
    prepared, full, _ = single
    step3 = full[2][3]
    seen, history = _record(prepared, step3, 3)
    assert [(s, t) for s, t, _, _ in seen] == [(4, 6), (5, 6), (6, 6)]
    assert [row["step"] for row in history] == [4, 5, 6]
    assert torch.equal(seen[0][3], step3)  # it evaluates the saved image first ...
    assert seen[0][2] == pytest.approx(full[2][2], rel=1e-5)  # ... so its loss is the one saved with it
    assert not torch.equal(seen[-1][3], step3)  # and moves on from it


def test_resuming_past_the_end_returns_the_image_and_runs_nothing(single):
    prepared, full, _ = single
    seen, history = _record(prepared, full[-1][3], 6)
    assert seen == [] and history == []


def test_coarse_to_fine_resumes_at_the_scale_the_step_falls_in(content_path, style_path):
    opts = make_options(size=64, start_size=32, scale_steps=(2, 2))
    prepared = api.prepare(content_path, style_path, opts)
    full, _ = _record(prepared)
    small, large = tuple(full[0][3].shape[-2:]), tuple(full[-1][3].shape[-2:])
    assert max(small) == 32 and max(large) == 64
    # In the last scale: only its remaining steps, at full size.
    seen, history = _record(prepared, full[2][3], 3)
    assert [s for s, *_ in seen] == [4] and [row["step"] for row in history] == [4]
    assert tuple(seen[0][3].shape[-2:]) == large
    assert seen[0][2] == pytest.approx(full[2][2], rel=1e-5)
    # In the first scale: the rest of it at the coarse size, then the whole last scale.
    seen, history = _record(prepared, full[0][3], 1)
    assert [s for s, *_ in seen] == [2, 3, 4] and [row["step"] for row in history] == [2, 3, 4]
    assert [tuple(img.shape[-2:]) for *_, img in seen] == [small, large, large]
    assert seen[0][2] == pytest.approx(full[0][2], rel=1e-5)


def test_luminance_mode_resumes_from_the_finished_colour_image(content_path, style_path):
    """The preview (content colour put back) is a valid start: the runner takes its luminance again."""
    # fp32: with bf16 gradients (the default where the CPU has bf16) two starts ~1e-7 apart round to steps
    # that differ by ~1e-3 in the next loss.
    opts = make_options(size=32, steps=3, preserve_color="luminance", precision="fp32")
    prepared = api.prepare(content_path, style_path, opts)
    full, _ = _record(prepared)
    coloured = api.preview(prepared, full[1][3])
    assert coloured[:, 0].sub(coloured[:, 2]).abs().max() > 0.05  # not gray: the content's colours are back
    seen, _ = _record(prepared, coloured, 2)
    assert [s for s, *_ in seen] == [3]
    # The runner gives the network the luminance of the start image: the same first loss as from that gray image
    # (the optimized image is nearly gray; its slight chroma, lost in the preview, moves the loss by ~1%).
    gray_start = coloured.mul(torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1, keepdim=True)
    from_gray, _ = _record(prepared, gray_start.expand(1, 3, -1, -1), 2)
    assert seen[0][2] == pytest.approx(from_gray[0][2], rel=1e-4)
    assert seen[0][2] == pytest.approx(full[1][2], rel=3e-2)


def test_bad_resumes_are_one_line_input_errors(content_path, style_path, tmp_path, single):
    prepared, full, _ = single
    opts = prepared.options
    with pytest.raises(InputError, match="records no step"):
        api.prepare(content_path, style_path, opts, start=style_path)
    with pytest.raises(InputError, match="from 0 to 6"):
        api.prepare(content_path, style_path, opts, start=content_path, start_step=7)
    with pytest.raises(InputError, match="a tile or another image"):
        api.prepare(content_path, style_path, opts, start=torch.rand(1, 3, 40, 40), start_step=1)
    with pytest.raises(InputError, match="--method fast runs in one pass"):
        api.prepare(content_path, style_path, make_options(method="fast", size=48), start=content_path, start_step=1)


def _steps(path):
    with open(path) as fh:
        return [int(row["step"]) for row in csv.DictReader(fh)]


def test_cli_resumes_from_a_save_every_image(tmp_path, content_path, style_path, capsys):
    out = tmp_path / "out.png"
    base = [str(content_path), str(style_path), "--size", "32", "--steps", "6", "-q"]
    assert main([*base, "-o", str(out), "--save-every", "3"]) == 0
    snapshot = tmp_path / "out.step00003.png"
    assert read_metadata(snapshot)["step"] == 3
    again = tmp_path / "again.png"
    assert main([*base, "-o", str(again), "--resume", str(snapshot), "--history", str(tmp_path / "h.csv")]) == 0
    assert _steps(tmp_path / "h.csv") == [4, 5, 6]
    assert read_metadata(again)["resumed"] == {"from": "out.step00003.png", "step": 3}
    capsys.readouterr()
    for extra, message in [
        (["--resume", str(snapshot), "--method", "fast"], "--method fast runs in one pass"),
        (["--resume", str(style_path)], "records no step"),
        (["--resume-step", "2"], "--resume-step needs --resume"),
        (["--resume", str(snapshot), "--resume-step", "9"], "from 0 to 6"),
    ]:
        code = main([*base, "-o", str(tmp_path / "bad.png"), *extra])
        err = capsys.readouterr().err
        assert code == 2 and message in err and err.count("\n") == 1, err
    assert not (tmp_path / "bad.png").exists()


def test_an_interrupted_run_records_its_step_and_resumes(tmp_path, content_path, style_path, monkeypatch, capsys):
    real = cli_stylize.Progress.__call__

    def stop_at_3(self, info):
        real(self, info)
        if info.step == 3:
            raise KeyboardInterrupt

    monkeypatch.setattr(cli_stylize.Progress, "__call__", stop_at_3)
    base = [str(content_path), str(style_path), "--size", "32", "--steps", "6", "-q"]
    assert main([*base, "-o", str(tmp_path / "out.png")]) == 130
    kept = tmp_path / "out.interrupted.png"
    assert read_metadata(kept)["step"] == 3
    monkeypatch.setattr(cli_stylize.Progress, "__call__", real)
    history = str(tmp_path / "h.csv")
    assert main([*base, "-o", str(tmp_path / "out.png"), "--resume", str(kept), "--history", history]) == 0
    assert _steps(tmp_path / "h.csv") == [4, 5, 6]
