"""Batch mode: a folder or a glob of content images against several styles in one command."""

import shutil

import numpy as np
import pytest
from PIL import Image

from impasto import batch, make_options
from impasto.cli import main
from impasto.errors import InputError
from impasto.io.images import load_image, read_metadata, tensor_to_pil
from impasto.methods.adain import AdaIN
from impasto.methods.base import Stylization
from impasto.methods.gatys import Gatys
from impasto.runner import Runner

FAST = ["--method", "fast", "-s", "48", "-q"]


@pytest.fixture
def photos(tmp_path, content_path):
    """A folder with three photos of different sizes, a broken image and a text file."""
    folder = tmp_path / "photos"
    folder.mkdir()
    im = Image.open(content_path).convert("RGB")
    im.save(folder / "cat.png")
    im.resize((101, 57)).save(folder / "wide.jpg")
    im.rotate(90, expand=True).save(folder / "tall.webp")
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    (folder / "notes.txt").write_text("not an image")
    return folder


def test_batch_over_a_folder_writes_every_content_style_pair(tmp_path, photos, style_path, capsys):
    style2 = tmp_path / "noise.png"
    Image.effect_noise((40, 40), 60).convert("RGB").save(style2)
    out = tmp_path / "out"
    code = main([str(photos), str(style_path), str(style2), "-o", str(out), *FAST])
    err = capsys.readouterr().err
    assert code == 2  # the broken file was skipped, the rest written
    assert "skipped" in err and "broken.png" in err and "notes.txt" not in err
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(f"{c}-{s}.png" for c in ("cat", "wide", "tall") for s in ("starry_night", "noise"))
    assert Image.open(out / "wide-noise.png").size == (48, 27)
    assert Image.open(out / "tall-starry_night.png").size[1] == 48
    meta = read_metadata(out / "cat-noise.png")
    assert meta["content"] == "cat.png" and meta["styles"] == ["noise.png"] and meta["options"]["method"] == "fast"


def test_batch_over_a_glob_with_blend_and_format(tmp_path, photos, style_path):
    out = tmp_path / "out"
    code = main([str(photos / "*.[pj]*g"), str(style_path), str(style_path), "--style-blend", "3,1", "-o", str(out),
                 "--format", "jpg", *FAST])  # fmt: skip
    assert code == 2  # broken.png matches the glob too
    assert sorted(p.name for p in out.iterdir()) == ["cat-starry_night+starry_night.jpg",
                                                    "wide-starry_night+starry_night.jpg"]  # fmt: skip
    assert Image.open(out / "cat-starry_night+starry_night.jpg").format == "JPEG"


def test_batch_skip_existing(tmp_path, photos, style_path):
    (photos / "broken.png").unlink()
    out = tmp_path / "out"
    out.mkdir()
    (out / "cat-starry_night.png").write_bytes(b"keep me")
    assert main([str(photos), str(style_path), "-o", str(out), "--skip-existing", *FAST]) == 0
    assert (out / "cat-starry_night.png").read_bytes() == b"keep me"
    assert (out / "wide-starry_night.png").exists() and (out / "tall-starry_night.png").exists()


def test_batch_refuses_bad_plans_before_any_work(tmp_path, photos, style_path, capsys):
    shutil.copy(photos / "cat.png", photos / "cat.jpg")
    out = tmp_path / "out"
    assert main([str(photos), str(style_path), "-o", str(out), *FAST]) == 2
    err = capsys.readouterr().err.strip()
    assert "would both write cat-starry_night.png" in err and len(err.splitlines()) == 1 and not out.exists()
    (photos / "cat.jpg").unlink()
    for args, message in [
        ([], "needs -o"),
        (["-o", str(tmp_path / "x.png")], "-o names a folder"),
        (["-o", str(tmp_path / "no" / "such")], "cannot create output folder"),
        (["-o", str(out), "--mask", "m.png"], "not available in batch mode"),
        (["-o", str(out), "--plot", str(tmp_path / "p.png")], "--plot is not available in batch mode"),
    ]:
        assert main([str(photos), str(style_path), *args, *FAST]) == 2
        assert message in capsys.readouterr().err
    assert main([str(tmp_path / "nothing" / "*.jpg"), str(style_path), "-o", str(out), *FAST]) == 2
    assert "no image files" in capsys.readouterr().err
    assert not out.exists()


def test_batch_output_in_the_content_folder_cannot_overwrite_inputs(tmp_path, style_path):
    folder = tmp_path / "p"
    folder.mkdir()
    Image.new("RGB", (30, 20), "red").save(folder / "a-starry_night.png")
    Image.new("RGB", (30, 20), "blue").save(folder / "a.png")
    with pytest.raises(InputError, match="overwrite an input"):
        batch.make_jobs(batch.find_contents(str(folder)), [style_path], folder, make_options())


def test_batch_builds_the_network_and_style_statistics_once(tmp_path, photos, style_path, monkeypatch):
    (photos / "broken.png").unlink()
    calls = []
    original = AdaIN.encode
    monkeypatch.setattr(AdaIN, "encode", lambda self, x: calls.append(x.shape) or original(self, x))
    built = []
    monkeypatch.setattr("impasto.methods.adain.AdaIN.shared", lambda *a: built.append(a) or AdaIN(*a))
    contents = batch.find_contents(str(photos))
    result = batch.run_batch(contents, [style_path], tmp_path, make_options(method="fast", size=40))
    assert len(result.written) == 3 and not result.skipped and result.images_per_second > 0
    assert len(built) == 1 and len(calls) == 3 + 1  # each content once, the style once


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
    expected = Runner(opts)(Stylization(load_image(photos / "a.png", 40), [load_image(style_path, 40)]))
    assert np.array_equal(np.asarray(Image.open(out / "a-starry_night.png")), np.asarray(tensor_to_pil(expected)))


def test_the_batch_bar_counts_the_images_to_make_from_the_start(tmp_path, photos, style_path, monkeypatch, capsys):
    from impasto.cli import progress
    from impasto.cli import stylize as cli_stylize

    monkeypatch.setattr(progress, "interactive", lambda: True)  # on a terminal: the status line too
    seen = {}

    def fake_run(contents, styles, outdir, opts, fmt, skip, on_image):  # noqa: ANN001, ANN202 - the bar as given
        seen["total"] = on_image.bar.total
        return batch.BatchResult()

    monkeypatch.setattr(cli_stylize.batch, "run_batch", fake_run)
    style2 = tmp_path / "noise.png"
    Image.effect_noise((40, 40), 60).convert("RGB").save(style2)
    assert main([str(photos), str(style_path), str(style2), "-o", str(tmp_path / "out"), "--method", "fast"]) == 0
    assert seen["total"] == 4 * 2  # every readable-looking picture x each style, before the first is made
    assert "8 image(s) to make: loading the networks..." in capsys.readouterr().err


def test_one_driver_whatever_runs_the_jobs(tmp_path, style_path):
    """batch.run_batch drives any executor: the outcomes it yields, in order, become the result, with one warning
    per unreadable content file and progress over every job."""
    contents = [tmp_path / f"{name}.png" for name in ("a", "b", "c")]
    outcomes = {"a": {"status": "written"}, "b": {"status": "skipped", "error": "cannot read b"},
                "c": {"status": "failed", "error": "the loss became nan"}}  # fmt: skip
    seen = []

    class Recorded:
        def map(self, options, styles, jobs):  # noqa: ANN001, ANN202
            for job in jobs:
                seen.append((job.content.stem, list(styles)))
                yield job, outcomes[job.content.stem]

    styles = [style_path, style_path.with_name("other.png")]
    warnings, progress = [], []
    result = batch.run_batch(contents, styles, tmp_path / "out", make_options(method="fast"), on_image=lambda d, t:
                             progress.append((d, t)), warn=warnings.append, executor=Recorded())  # fmt: skip
    assert [c for c, _ in seen] == ["a", "a", "b", "b", "c", "c"] and seen[0][1] == styles
    assert [p.name for p in result.written] == ["a-starry_night.png", "a-other.png"]
    assert result.skipped == [(contents[1], "cannot read b")] and len(result.failed) == 2
    assert warnings[0] == "impasto: warning: skipped cannot read b" and len(warnings) == 3
    assert progress[-1] == (6, 6)
