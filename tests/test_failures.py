"""Failures a hostile user meets: full disks, read-only folders, symlink loops, odd API inputs, SIGTERM,
plans that do not fit. Each is one line, the right exit code, and nothing half-written."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import impasto
from impasto.cli import main
from impasto.errors import InputError, OutputError
from impasto.io import atomic
from impasto.io import images as I
from impasto.io.history import write_history
from impasto.io.images import read_metadata, tensor_to_pil
from impasto.methods.gatys import Gatys

FAST = ["--method", "fast", "--size", "48", "--quiet"]
_fdopen = os.fdopen


def _mount(folder: Path, options: str) -> None:
    folder.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], capture_output=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({r.stderr.decode().strip() or 'not root'})")


@pytest.fixture
def full_disk(tmp_path):
    """A folder on a tiny file system with 8 KB left: big enough to create files, too small for an image."""
    disk = tmp_path / "disk"
    _mount(disk, "size=256k")
    filler = disk / "filler"
    try:
        filler.write_bytes(b"\0" * (256 - 8) * 1024)
    except OSError:
        pass
    yield disk
    subprocess.run(["umount", str(disk)], check=False)


@pytest.fixture
def read_only_folder(tmp_path):
    folder = tmp_path / "ro"
    if os.geteuid() == 0:  # root writes through permission bits; a read-only file system stops it
        _mount(folder, "ro,size=64k")
        yield folder
        subprocess.run(["umount", str(folder)], check=False)
    else:
        folder.mkdir()
        folder.chmod(0o555)
        yield folder
        folder.chmod(0o755)


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name != "filler")


@pytest.mark.parametrize("ext", ["png", "jpg", "webp", "tif"])
def test_full_disk_is_one_line_exit_1_and_leaves_nothing(full_disk, content_path, style_path, capsys, ext):
    out = full_disk / f"out.{ext}"
    code = main([str(content_path), str(style_path), "-o", str(out), *FAST, "--size", "160"])
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1, err
    assert f"cannot write {out}: No space left on device" in err
    assert _leftovers(full_disk) == []  # no output, no temporary file
    kept = Path(err.split("the result was kept at ")[1].strip())  # the result is not lost
    assert Image.open(kept).size == (160, 106)
    kept.unlink()


def test_full_disk_for_the_history_keeps_the_image(full_disk, tmp_path, content_path, style_path, capsys):
    out = tmp_path / "out.png"
    history = full_disk / "h.json"
    (full_disk / "filler").write_bytes(b"\0" * 252 * 1024)  # leave less than a 60-step history needs (~7 KB)
    code = main([str(content_path), str(style_path), "-o", str(out), "--size", "32", "--steps", "60", "-q",
                 "--history", str(history)])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1 and f"cannot write {history}" in err, err
    assert out.exists() and _leftovers(full_disk) == []


def test_full_disk_in_batch_mode_is_one_line_exit_1(full_disk, tmp_path, content_path, style_path, capsys):
    photos = tmp_path / "photos"
    photos.mkdir()
    for name in ("a", "b"):
        (photos / f"{name}.png").write_bytes(content_path.read_bytes())
    code = main([str(photos), str(style_path), "-o", str(full_disk / "outs"), *FAST, "--size", "160"])
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1 and "No space left on device" in err, err
    assert not list((full_disk / "outs").glob("*.png")) and not list((full_disk / "outs").glob(".*"))


@pytest.mark.parametrize("when", ["write", "fsync", "replace"])
def test_every_failing_step_of_a_write_removes_the_temporary_file(tmp_path, monkeypatch, when):
    """The same without a file system of our own: a failure at each step of the write."""
    target = tmp_path / "keep.json"
    target.write_text("previous")

    def fail(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    if when == "write":
        monkeypatch.setattr(atomic.os, "fdopen", lambda fd, mode: _ShortFile(fd))
    else:
        monkeypatch.setattr(atomic.os, when, fail)
    with pytest.raises(OutputError, match=f"cannot write {target}") as caught:
        write_history(target, [{"step": 1, "loss": 2.0}])
    if when != "write":  # the cause's errno is kept: a full disk is told apart from other failures
        assert caught.value.errno == errno.ENOSPC and str(caught.value).count("\n") == 0
    assert target.read_text() == "previous"
    assert _leftovers(tmp_path) == ["keep.json"]


class _ShortFile:
    """A file whose writes stop short, as a full disk makes them."""

    def __init__(self, fd: int) -> None:
        self.fh = _fdopen(fd, "wb")

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.fh.close()

    def write(self, data: bytes) -> int:
        return self.fh.write(data[: len(data) // 2])

    def flush(self) -> None:
        self.fh.flush()

    def fileno(self) -> int:
        return self.fh.fileno()


def test_a_failing_snapshot_warns_once_and_the_run_goes_on(tmp_path, content_path, style_path, capsys, monkeypatch):
    from impasto.cli import progress

    real = progress.save_image

    def fail_snapshots(image, path, meta):
        if ".step" in str(path):
            raise OutputError(f"cannot write {path}: No space left on device")
        return real(image, path, meta)

    monkeypatch.setattr(progress, "save_image", fail_snapshots)
    out = tmp_path / "r.png"
    code = main([str(content_path), str(style_path), "-o", str(out), "--size", "32", "--steps", "4", "-q",
                 "--save-every", "1"])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 0 and out.exists() and err.count("warning") == 1 and "no more intermediate images" in err


def test_read_only_output_folder_is_refused_before_any_work(read_only_folder, content_path, style_path, capsys,
                                                            monkeypatch):  # fmt: skip
    monkeypatch.setattr("impasto.api.Runner", lambda *a, **k: pytest.fail("the run started"))
    code = main([str(content_path), str(style_path), "-o", str(read_only_folder / "out.png"), *FAST])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and f"cannot write to output folder {read_only_folder}" in err
    code = main([str(content_path.parent), str(style_path), "-o", str(read_only_folder), *FAST])
    assert code == 2 and "cannot write to output folder" in capsys.readouterr().err


def test_a_symlink_loop_is_one_line(tmp_path, style_path, capsys):
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    a.symlink_to(b)
    b.symlink_to(a)
    assert main([str(a), str(style_path), "-o", str(tmp_path / "o.png"), *FAST]) == 2
    err = capsys.readouterr().err
    assert err == f"impasto: error: symlink loop: {a}\n"
    with pytest.raises(InputError, match="symlink loop"):
        impasto.stylize(a, style_path, method="fast", size=32)


@pytest.mark.subprocess
def test_sigterm_keeps_the_latest_image_and_exits_143(tmp_path, content_path, style_path):
    out = tmp_path / "long.png"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "impasto", str(content_path), str(style_path), "-o", str(out), "-s", "40"]
    cmd += ["--steps", "9999"]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, env=env)
    seen, deadline = "", time.time() + 120
    while time.time() < deadline and "content=" not in seen:
        seen += proc.stderr.read(64)
    proc.send_signal(signal.SIGTERM)
    _, rest = proc.communicate(timeout=60)
    assert proc.returncode == 143, seen + rest
    kept = tmp_path / "long.interrupted.png"
    assert kept.exists() and not out.exists() and "terminated; best image so far saved" in rest
    assert read_metadata(kept)["options"]["steps"] == 9999


def test_dry_run_of_a_plan_that_does_not_fit_exits_2(content_path, style_path, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("impasto.estimate.available_memory", lambda device="cpu": 1 << 30)
    code = main([str(content_path), str(style_path), "-o", str(tmp_path / "o.png"), "--size", "8192", "--tile", "0",
                 "--dry-run"])  # fmt: skip
    captured = capsys.readouterr()
    assert code == 2 and "does NOT fit" in captured.out
    assert captured.err.count("\n") == 1 and "not enough memory" in captured.err


# -- the Python API's inputs -----------------------------------------------------------------------------
def test_uint8_tensors_and_numpy_arrays_mean_what_people_mean(content_path):
    expected = I.load_image(content_path)
    pixels = np.asarray(Image.open(content_path).convert("RGB"))
    as_uint8 = torch.from_numpy(pixels.copy()).permute(2, 0, 1)
    assert torch.allclose(I.load_image(as_uint8), expected, atol=1e-6)  # not white: divided by 255
    assert torch.allclose(I.load_image(pixels), expected, atol=1e-6)
    assert torch.allclose(I.load_image(pixels.astype(np.float64) / 255), expected, atol=1e-6)
    gray = I.load_image(pixels[..., 0])
    assert torch.equal(gray[0, 0], gray[0, 2]) and torch.allclose(gray[0, 0], expected[0, 0], atol=1e-6)
    rgba = np.dstack([pixels, np.zeros(pixels.shape[:2], np.uint8)])  # fully transparent: white
    assert float(I.load_image(rgba).min()) == 1.0


@pytest.mark.parametrize(
    "image, message",
    [
        (torch.full((3, 8, 8), 2.0), "values from 2 to 2; floats must lie in \\[0, 1\\]"),
        (torch.full((3, 8, 8), -0.5), "floats must lie in \\[0, 1\\]"),
        (torch.zeros(3, 0, 8), "has no pixels"),
        (torch.zeros(3, 8, 8, dtype=torch.int64), "must be float .* or uint8"),
        (np.zeros((8, 8, 3), np.int32), "must be uint8 .* or float"),
        (np.zeros((0, 8, 3), np.uint8), "has no pixels"),
        (np.zeros((3, 8, 8), np.uint8), "must have shape \\(H, W, 3\\)"),
        (42, "must be a file path, a PIL image, a \\(3, H, W\\) tensor or an \\(H, W, 3\\) numpy array, got int"),
        ([1, 2, 3], "got list"),
    ],
)
def test_other_inputs_are_refused_with_what_is_accepted(image, message, style_path):
    with pytest.raises(InputError, match=message):
        impasto.stylize(image, style_path, method="fast", size=32)


def test_no_style_is_an_input_error(content_path):
    with pytest.raises(InputError, match="at least one style image"):
        impasto.stylize(content_path, [], method="fast", size=32)
    with pytest.raises(InputError, match="at least one style image"):
        impasto.stylize(content_path, (), size=32)


def test_the_cli_writes_the_best_image_before_a_nan(tmp_path, content_path, style_path, monkeypatch, capsys):
    seen: list[tuple[float, torch.Tensor]] = []
    real = Gatys.loss_and_grad

    def nan_at_four(self, image, terms):
        total, parts, grad = real(self, image, terms)
        if len(seen) == 3:
            return float("inf"), parts, grad
        seen.append((total, image.detach().clone()))
        return total, parts, grad

    monkeypatch.setattr(Gatys, "loss_and_grad", nan_at_four)
    out = tmp_path / "n.png"
    assert main([str(content_path), str(style_path), "-o", str(out), "--size", "40", "--steps", "9", "-q"]) == 1
    kept = np.asarray(Image.open(tmp_path / "n.last-good.png"))
    best = min(seen, key=lambda item: item[0])[1]
    assert np.array_equal(kept, np.asarray(tensor_to_pil(best))) and not out.exists()
    assert "loss became inf at step 4" in capsys.readouterr().err


def test_the_style_blend_length_is_checked_when_a_run_is_planned(content_path, style_path):
    """--style-blend's weights against the style images: one check (api.as_list), made by every way of planning a
    run, the sizes-only one of a front end that has not uploaded the images too."""
    opts = impasto.make_options(method="fast", size=32, style_blend=(1.0, 2.0))
    message = r"^--style-blend has 2 weights for 1 style images$"
    with pytest.raises(InputError, match=message):
        impasto.api.plan_sizes((64, 48), [(64, 64)], opts)
    with pytest.raises(InputError, match=message):
        impasto.api.plan(content_path, style_path, opts)
    with pytest.raises(InputError, match=message):
        impasto.api.prepare(content_path, style_path, opts)
    assert impasto.api.plan_sizes((64, 48), [(64, 64), (32, 32)], opts).fits in (True, False)
