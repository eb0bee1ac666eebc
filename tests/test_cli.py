"""The command line end to end at small sizes, every bad-input case, and Ctrl-C."""

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

from impasto.cli import main
from impasto.io.images import read_metadata

from .test_images import bomb_png

FAST = ["--size", "48", "--steps", "3", "--quiet"]


def run_cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "impasto", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=300)  # fmt: skip


@pytest.mark.subprocess
def test_end_to_end_writes_image_history_plot(tmp_path, content_path, style_path):
    out = tmp_path / "result.png"
    r = run_cli(content_path, style_path, "-o", out, "--size", "48", "--steps", "4", "--history", tmp_path / "h.csv",
                "--plot", tmp_path / "plot.png", "--save-every", "2", "--seed", "5")  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "wrote" in r.stderr and "step" in r.stderr  # progress bar and final message
    im = Image.open(out)
    assert max(im.size) == 48 and im.mode == "RGB"
    meta = read_metadata(out)
    assert meta["options"]["seed"] == 5 and meta["options"]["steps"] == 4 and meta["impasto"]
    assert meta["content"] == "chelsea.png" and meta["styles"] == ["starry_night.jpg"]
    rows = list(csv.DictReader(open(tmp_path / "h.csv")))
    assert [int(r["step"]) for r in rows] == [1, 2, 3, 4] and float(rows[0]["style"]) > 0
    assert Image.open(tmp_path / "plot.png").size[0] > 400
    assert sorted(p.name for p in tmp_path.glob("result.step*.png")) == ["result.step00002.png", "result.step00004.png"]


@pytest.mark.parametrize("ext", ["jpg", "webp", "tiff"])
def test_output_format_from_extension(tmp_path, content_path, style_path, ext):
    out = tmp_path / f"r.{ext}"
    assert main([str(content_path), str(style_path), "-o", str(out), *FAST]) == 0
    assert Image.open(out).format == {"jpg": "JPEG", "webp": "WEBP", "tiff": "TIFF"}[ext]
    assert read_metadata(out)["options"]["size"] == 48


def test_history_json_and_article_preset(tmp_path, content_path, style_path):
    out, hist = tmp_path / "a.png", tmp_path / "h.json"
    assert main([str(content_path), str(style_path), "-o", str(out), "--preset", "article", "--beta", "1e3",
                 "--history", str(hist), *FAST]) == 0  # fmt: skip
    data = json.loads(hist.read_text())
    assert len(data) == 3 and read_metadata(out)["options"]["style_weight"] == 1000.0


@pytest.mark.subprocess
def test_python_module_and_console_script_agree():
    r = run_cli("--version")
    assert r.returncode == 0 and r.stdout.startswith("impasto ")


def test_several_styles_with_blend(tmp_path, content_path, style_path):
    out = tmp_path / "b.png"
    gray = tmp_path / "gray_style.png"
    Image.open(style_path).convert("L").save(gray)
    assert main([str(content_path), str(style_path), str(gray), "--style-blend", "0.7,0.3", "-o", str(out), *FAST]) == 0
    assert read_metadata(out)["options"]["style_blend"] == [0.7, 0.3]


def _bad_cases(tmp: Path, content: Path, style: Path):
    empty = tmp / "empty.png"
    empty.write_bytes(b"")
    text = tmp / "text.jpg"
    text.write_text("not an image")
    good = tmp / "good.jpg"
    Image.open(content).save(good, quality=90)
    trunc = tmp / "trunc.jpg"
    trunc.write_bytes(good.read_bytes()[:2000])
    bomb = bomb_png(tmp / "bomb.png", 50000, 50000)
    out = str(tmp / "out.png")
    c, s = str(content), str(style)
    return {
        "missing file": ([str(tmp / "absent.jpg"), s, "-o", out], "image not found"),
        "empty file": ([str(empty), s, "-o", out], "empty"),
        "not an image": ([c, str(text), "-o", out], "not an image file"),
        "truncated": ([str(trunc), s, "-o", out], "cannot decode image"),
        "bomb": ([str(bomb), s, "-o", out], "too large"),
        "unknown extension": ([c, s, "-o", str(tmp / "out.gif")], "unknown output extension"),
        "missing folder": ([c, s, "-o", str(tmp / "nope" / "out.png")], "output folder does not exist"),
        "output is input": ([c, s, "-o", s], "same file as input"),
        "output is a folder": ([c, s, "-o", str(tmp)], "unknown output extension"),
        "non-numeric size": ([c, s, "-o", out, "--size", "big"], "invalid int value"),
        "zero size": ([c, s, "-o", out, "--size", "0"], "--size"),
        "huge size": ([c, s, "-o", out, "--size", "99999"], "--size"),
        "negative weight": ([c, s, "-o", out, "--style-weight", "-3"], "--style-weight"),
        "nan weight": ([c, s, "-o", out, "--content-weight", "nan"], "--content-weight"),
        "negative steps": ([c, s, "-o", out, "--steps", "-1"], "--steps"),
        "bad layer": ([c, s, "-o", out, "--style-layers", "relu1_1,conv9_1"], "unknown VGG-19 layer"),
        "bad blend": ([c, s, "-o", out, "--style-blend", "1,x"], "comma-separated numbers"),
        "blend count": ([c, s, "-o", out, "--style-blend", "1,2"], "2 weights for 1 style"),
        "bad history ext": ([c, s, "-o", out, "--history", str(tmp / "h.txt")], "--history"),
        "bad weights": ([c, s, "-o", out, "--weights", str(text)], "cannot read weights"),
        "missing init": ([c, s, "-o", out, "--init", str(tmp / "nope.png")], "image not found"),
        "bad device": ([c, s, "-o", out, "--device", "tpu"], "device"),
    }


def test_every_bad_input_is_one_line_exit_2(tmp_path, content_path, style_path, capsys):
    cases = _bad_cases(tmp_path, content_path, style_path)
    before = sorted(p.name for p in tmp_path.iterdir())
    for name, (argv, message) in cases.items():
        assert exit_code([*argv, "--quiet"]) == 2, name
        err = capsys.readouterr().err
        assert message in err, (name, err)
        assert err.count("\n") == 1 and "Traceback" not in err, (name, err)
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing written, no input touched


def exit_code(argv: list[str]) -> int:
    """The exit code of the command, whether main returns it or argparse exits with it."""
    try:
        return main(argv)
    except SystemExit as stop:
        return stop.code


@pytest.mark.subprocess
def test_parse_errors_exit_2_in_a_subprocess(tmp_path, content_path, style_path):
    r = run_cli(content_path, style_path, "-o", tmp_path / "o.png", "--size", "abc")
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "--size" in r.stderr


@pytest.mark.subprocess
def test_output_equal_to_input_is_refused_and_input_kept(tmp_path, content_path, style_path):
    copy = tmp_path / "photo.png"
    copy.write_bytes(content_path.read_bytes())
    r = run_cli(copy, style_path, "-o", copy, *FAST)
    assert r.returncode == 2 and "same file as input" in r.stderr
    assert copy.read_bytes() == content_path.read_bytes()


@pytest.mark.subprocess
def test_ctrl_c_keeps_latest_image_and_exits_130(tmp_path, content_path, style_path):
    out = tmp_path / "long.png"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "impasto", str(content_path), str(style_path), "-o", str(out),
                             "--size", "48", "--steps", "100000", "--history", str(tmp_path / "h.json")],
                            stderr=subprocess.PIPE, text=True, env=env,
                            # a shell's background job starts with SIGINT ignored, which the child would inherit
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # fmt: skip
    seen = ""
    deadline = time.time() + 120
    while time.time() < deadline:
        chunk = proc.stderr.read(64)
        seen += chunk
        if "content=" in seen:  # a few steps done
            break
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    _, rest = proc.communicate(timeout=60)
    assert proc.returncode == 130, seen + rest
    kept = tmp_path / "long.interrupted.png"
    assert kept.exists() and not out.exists()
    assert "interrupted; best image so far saved" in rest
    assert read_metadata(kept)["options"]["steps"] == 100000
    assert json.loads((tmp_path / "h.json").read_text())


def test_non_finite_loss_exit_1_keeps_last_good(tmp_path, content_path, style_path, monkeypatch, capsys):
    from impasto.methods import gatys

    real = gatys.Gatys.loss_and_grad

    def nan_after_two(self, image, losses):
        total, parts, grad = real(self, image, losses)
        return (total * float("inf"), parts, grad) if len(self.history) >= 2 else (total, parts, grad)

    monkeypatch.setattr(gatys.Gatys, "loss_and_grad", nan_after_two)
    out = tmp_path / "n.png"
    assert main([str(content_path), str(style_path), "-o", str(out), "--size", "48", "--steps", "9", "-q"]) == 1
    err = capsys.readouterr().err
    assert "loss became inf at step 3" in err and err.count("\n") == 1
    assert (tmp_path / "n.last-good.png").exists() and not out.exists()


def test_help_and_the_bare_command_name_every_command(capsys):
    from impasto.cli import COMMANDS

    with pytest.raises(SystemExit) as done:
        main(["--help"])
    text = capsys.readouterr().out
    assert done.value.code == 0 and set(COMMANDS) == {"train", "video", "styles", "serve", "export"}
    for name in COMMANDS:
        assert f"\n  {name} " in text  # one line each in the commands' list
    assert main([]) == 2
    bare = capsys.readouterr().err
    assert bare.count("\n") == 1 and all(name in bare for name in COMMANDS) and "CONTENT STYLE" in bare
    with pytest.raises(SystemExit):
        main(["-o", "out.png"])  # options but no pictures: the same pointer to the commands
    assert "other commands: train, video, styles, serve, export" in capsys.readouterr().err


def test_a_one_pass_method_says_what_it_does_before_it_finishes(tmp_path, content_path, style_path, capsys,
                                                                monkeypatch):  # fmt: skip
    from impasto.cli import progress

    monkeypatch.setattr(progress, "interactive", lambda: True)  # on a terminal
    out = tmp_path / "fast.png"
    assert main([str(content_path), str(style_path), "-o", str(out), "--method", "fast", "--size", "48"]) == 0
    lines = capsys.readouterr().err.splitlines()
    assert lines[0].startswith("impasto: fast, 48x32: estimated ") and lines[0].endswith("loading the networks...")
    assert lines[1] == "impasto: stylizing (one pass)..." and lines[-1].startswith(f"impasto: wrote {out} (took ")
