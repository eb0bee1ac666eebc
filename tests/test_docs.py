"""The commands of README.md and of the documentation pages run as written, at small sizes.

Every line of a fenced ``sh`` block that starts with ``impasto`` runs through the CLI's entry point (in this
process, so torch and the networks load once), and every ``python`` block runs as a script, in a folder of small
test images named as the pages name them. Sizes are cut to 32 px and steps to 2 (the options' meaning does not
depend on them), and a command that differs from one already run only in its output's name runs once; a command
whose line ends in ``# exit N`` must exit with N, every other one with 0. Commands
that need a server, a Ray cluster or a GPU, and ``impasto export`` (slow), are only parsed, so their options must
still exist; the reason is printed. ``text`` blocks are not run.
"""

from __future__ import annotations

import functools
import re
import shlex
import shutil
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

import impasto
from impasto import api, cli, methods, options
from impasto import video as video_module

from .conftest import ROOT

PAGES = [ROOT / "README.md", *sorted(p for p in (ROOT / "docs").rglob("*.md") if p.name != "quality.md")]
FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```", re.M | re.S)
#: Options cut down for the test: name -> largest value kept (larger ones become it).
LIMITS = {"--size": 32, "-s": 32, "--steps": 2, "--start-size": 32, "--train-size": 32, "--style-size": 48,
          "--save-every": 1, "--chunk-frames": 8, "--batch-size": 1, "--epochs": 1}  # fmt: skip
SMALL_TRAIN = ["--batch-size", "1", "--train-size", "32", "--style-size", "48", "--sample-every", "0"]
SMALL_TRAIN_KW = {"steps": 2, "batch_size": 1, "train_size": 32, "style_size": 48, "sample_every": 0,
                  "checkpoint_every": 0}  # fmt: skip


def blocks(page: Path) -> list[tuple[str, str]]:
    """(language, text) of every fenced block of ``page``."""
    return [(m.group(1), m.group(2)) for m in FENCE.finditer(page.read_text())]


def commands(page: Path) -> list[tuple[str, list[str], int]]:
    """(line, argv after ``impasto``, expected exit code) of every ``impasto`` line of the page's sh blocks."""
    out = []
    for lang, text in blocks(page):
        if lang != "sh":
            continue
        for line in text.replace("\\\n", " ").splitlines():
            if line.strip().startswith("impasto "):
                expected = re.search(r"#\s*exit (\d+)", line)
                argv = shlex.split(line, comments=True)[1:]
                out.append((line.strip(), argv, int(expected.group(1)) if expected else 0))
    return out


def python_blocks(page: Path) -> list[str]:
    return [text for lang, text in blocks(page) if lang == "python"]


def skip_reason(argv: list[str]) -> str | None:
    """Why a documented command is only parsed (its options checked against the parser), not run, or None."""
    if argv and argv[0] == "serve":
        return "starts a server that runs until stopped (tests/test_web.py runs impasto serve)"
    if argv and argv[0] == "export":
        return "the ONNX exporter takes ~30 s of CPU (tests/test_trained.py runs impasto export)"
    if "--cluster" in argv:
        return "needs a Ray cluster (tests/test_cluster.py runs --cluster on a local instance)"
    device = argv[argv.index("--device") + 1] if "--device" in argv else ""
    if device.startswith(("cuda", "mps")):
        return "needs a GPU"
    return None


def unavailable(argv: list[str]) -> str | None:
    """Why a documented command cannot even be parsed in this build, or None."""
    builtin = (argv and argv[0] == "styles") or any(a.startswith("builtin:") for a in argv)
    if builtin and "styles" not in cli.COMMANDS:
        return "the built-in styles are not part of this build (no 'impasto styles' command)"
    return None


def parse(argv: list[str]) -> None:
    """Parse ``argv`` as the ``impasto`` command would (argparse exits 2 on an unknown option or a bad value)."""
    command = cli.COMMANDS.get(argv[0]) if argv else None
    (command or cli.stylize).build_parser().parse_args(argv[1:] if command else argv)


def shrink(argv: list[str]) -> list[str]:
    """``argv`` with sizes and steps cut to what a test affords, and the extra options a small run needs."""
    out = list(argv)
    for i, arg in enumerate(out[:-1]):
        if arg in LIMITS:
            try:
                out[i + 1] = str(min(float(out[i + 1]), LIMITS[arg])).removesuffix(".0")
            except ValueError:
                pass
        elif arg == "--start":
            out[i + 1] = "0.04"
        elif arg == "--duration":
            out[i + 1] = "0.1"
        elif arg == "--scale-steps":
            out[i + 1] = ",".join("1" for _ in out[i + 1].split(","))
        elif arg == "--tile" and out[i + 1] != "0":
            out[i + 1] = "32" if out[0] == "styles" else "64"  # the smallest sheet picture / tile
        out[i + 1] = re.sub(r"\.step\d{5}\.", ".step00001.", out[i + 1])
    command = out[0] if out and out[0] in cli.COMMANDS else None
    if command == "train":
        out += [a for a in SMALL_TRAIN if a not in out] if "--resume" not in out else []
        if "--steps" not in out and "--resume" not in out:
            out += ["--steps", "2"]
    elif command == "styles":
        out += [] if "--tile" in out else ["--tile", "32"]
    elif command in (None, "video"):
        out += [] if {"--size", "-s"} & set(out) else ["--size", "32"]
        out += [] if "--steps" in out else ["--steps", "2"]
        out += [] if "-q" in out else ["-q"]
    return out


#: Options whose value is the output: a command that differs from one already run only in its output's name (not
#: its format) runs the same code, so it is not run again (:func:`same_run`).
OUTPUT_OPTIONS = ("-o", "--output")


def same_run(argv: list[str]) -> tuple[str, ...]:
    """What decides whether two shrunk commands run the same code: ``argv`` with the output's name replaced by its
    suffix (a folder output stays a folder). A command that writes files named after its output for later
    commands to read (``--save-every``) keeps its name."""
    if "--save-every" in argv:
        return tuple(argv)
    out = list(argv)
    for i, arg in enumerate(out[:-1]):
        if arg in OUTPUT_OPTIONS:
            name = out[i + 1]
            out[i + 1] = "/" if name.endswith("/") else "*" + Path(name).suffix
    return tuple(out)


def output_of(argv: list[str]) -> str | None:
    """The value of ``-o`` / ``--output`` in ``argv``, or None."""
    for i, arg in enumerate(argv[:-1]):
        if arg in OUTPUT_OPTIONS:
            return argv[i + 1]
    return None


def make_workspace(ws: Path, content_path: Path, style_path: Path, model: Path) -> Path:
    """The files the pages name, in ``ws``: photo.jpg, painting.jpg, painting2.jpg, sunset.jpg, label maps and
    masks, photos/, painting.pt (``model``) and clip.mp4 (4 frames)."""
    from . import clips

    photo = Image.open(content_path).convert("RGB").resize((96, 64))
    photo.save(ws / "photo.jpg")
    painting = Image.open(style_path).convert("RGB").resize((96, 60))
    painting.save(ws / "painting.jpg")
    scream = ROOT / "src" / "impasto" / "web" / "gallery" / "the_scream.jpg"
    Image.open(scream).convert("RGB").resize((60, 76)).save(ws / "painting2.jpg")
    painting.transpose(Image.Transpose.FLIP_TOP_BOTTOM).save(ws / "sunset.jpg")
    for name, size in (("photo-seg.png", photo.size), ("sunset-seg.png", painting.size)):
        seg = Image.new("RGB", size, (0, 0, 255))
        ImageDraw.Draw(seg).rectangle((0, size[1] // 2, size[0], size[1]), fill=(0, 255, 0))
        seg.save(ws / name)
    left = Image.new("L", photo.size, 0)
    ImageDraw.Draw(left).rectangle((0, 0, photo.size[0] // 2, photo.size[1]), fill=255)
    left.save(ws / "left.png")
    Image.eval(left, lambda v: 255 - v).save(ws / "right.png")
    left.convert("RGB").save(ws / "map.png")
    (ws / "photos").mkdir()
    photo.save(ws / "photos" / "a.jpg")
    photo.transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(ws / "photos" / "b.jpg")
    shutil.copy(model, ws / "painting.pt")
    clips.write(clips.render(photo, frames=4, size=(96, 64)), ws / "clip.mp4")
    return ws


@pytest.fixture(scope="session")
def workspace(tmp_path_factory, content_path, style_path, trained) -> Path:
    return make_workspace(tmp_path_factory.mktemp("docs-files"), content_path, style_path, trained)


@pytest.fixture
def folder(workspace, monkeypatch) -> Path:
    """The workspace as the current folder: one for every page, so that a command a page repeats from another
    (README's quick start, say) has the same inputs and outputs and runs once (:data:`RAN`)."""
    monkeypatch.chdir(workspace)
    return workspace


#: The commands run so far in this session (:func:`same_run` of each, after :func:`shrink`), with the output each
#: wrote.
RAN: dict[tuple[str, ...], str | None] = {}


def _small(fn, sized: bool = True, **fixed):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        if sized:
            kwargs["size"] = min(kwargs.get("size", 32), 32)
        return fn(*args, **{**kwargs, **fixed})

    return wrapper


PAGE_IDS = [str(p.relative_to(ROOT)) for p in PAGES]


@pytest.mark.slow
@pytest.mark.parametrize("page", PAGES, ids=PAGE_IDS)
def test_documented_commands_run(page: Path, folder: Path, capsys) -> None:
    found = commands(page)
    if not found:
        pytest.skip("no impasto commands on this page")
    skipped = []
    for line, argv, expected in found:
        reason = unavailable(argv)
        if reason is None and skip_reason(argv):
            parse(argv)  # the options still have to exist
            reason = f"parsed only: {skip_reason(argv)}"
        if reason:
            skipped.append(f"{line}: {reason}")
            continue
        small = shrink(argv)
        key = same_run(small)
        if key in RAN:
            earlier, output = RAN[key], output_of(small)
            if earlier and output and output != earlier and Path(earlier).is_file():
                shutil.copy(earlier, output)  # a later command may read it under this name
            skipped.append(f"{line}: the same command ran already (output {earlier})")
            continue
        try:
            code = cli.main(small)
        except SystemExit as stop:  # argparse: an unknown option or a bad value
            code = stop.code
        err = capsys.readouterr().err
        assert code == expected, f"{page.name}: `{line}` (run as impasto {shlex.join(small)}) exited {code}:\n{err}"
        RAN[key] = output_of(small)
    if skipped:
        print("\n".join(["not run:", *skipped]))


@pytest.mark.slow
@pytest.mark.parametrize("page", PAGES, ids=PAGE_IDS)
def test_documented_python_runs(page: Path, folder: Path, monkeypatch) -> None:
    found = python_blocks(page)
    if not found:
        pytest.skip("no python blocks on this page")
    small_stylize = _small(api.stylize, steps=2)
    monkeypatch.setattr(api, "stylize", small_stylize)
    monkeypatch.setattr(impasto, "stylize", small_stylize)
    monkeypatch.setattr(impasto, "stylize_video", _small(video_module.stylize_video, steps=2))
    monkeypatch.setattr(api, "train", _small(api.train, sized=False, **SMALL_TRAIN_KW))
    monkeypatch.setattr(api, "style_sheet", _small(api.style_sheet, sized=False, tile=32))
    registered = dict(methods.METHODS), dict(options._METHOD_CHECKS)  # a page may register a method
    try:
        for text in found:
            exec(compile(text, f"{page.name} python block", "exec"), {"__name__": "__docs__"})
    finally:
        for registry, saved in zip((methods.METHODS, options._METHOD_CHECKS), registered, strict=True):
            registry.clear()
            registry.update(saved)


def test_the_commands_are_found_and_shrunk() -> None:
    """The extraction sees README's commands (a page whose commands were missed would pass unrun)."""
    readme = commands(ROOT / "README.md")
    assert any(argv[:1] == ["video"] for _, argv, _ in readme)
    assert any("--method" in argv for _, argv, _ in readme)
    assert shrink(["photo.jpg", "p.jpg", "--size", "2048", "--steps", "300"])[2:6] == ["--size", "32", "--steps", "2"]
    assert shrink(["photo.jpg", "p.jpg", "--size", "0"])[3] == "0"  # an invalid value stays invalid
    assert shrink(["photo.jpg", "p.jpg", "--resume", "run.step00100.png"])[3] == "run.step00001.png"
    assert shrink(["styles", "photo.jpg", "-o", "sheet.png"])[-2:] == ["--tile", "32"]
    assert same_run(["a.jpg", "b.jpg", "-o", "x.png"]) == same_run(["a.jpg", "b.jpg", "-o", "y.png"])
    assert same_run(["a.jpg", "b.jpg", "-o", "x.png"]) != same_run(["a.jpg", "b.jpg", "-o", "x.jpg"])
    assert same_run(["a.jpg", "b.jpg", "-o", "x.png", "--save-every", "1"]) != same_run(
        ["a.jpg", "b.jpg", "-o", "y.png", "--save-every", "1"]
    )
