import numpy as np
import pytest
import torch
from PIL import Image

from impasto.errors import InputError, OutputError
from impasto.io import images as I


def _save(im: Image.Image, path, **kw):
    im.save(path, **kw)
    return path


def _gradient(mode="RGB", size=(40, 30)):
    arr = np.zeros((size[1], size[0], 3), np.uint8)
    arr[..., 0] = np.linspace(0, 255, size[0], dtype=np.uint8)[None, :]
    arr[..., 1] = 128
    arr[..., 2] = np.linspace(0, 255, size[1], dtype=np.uint8)[:, None]
    return Image.fromarray(arr, "RGB").convert(mode) if mode != "RGB" else Image.fromarray(arr, "RGB")


@pytest.mark.parametrize("mode", ["L", "RGBA", "LA", "P", "CMYK", "I;16", "I", "F", "1"])
def test_every_mode_loads_as_rgb(tmp_path, mode):
    im = _gradient()
    if mode == "I;16":
        arr = np.asarray(im.convert("L"), np.uint16) * 257
        im = Image.frombytes("I;16", arr.shape[::-1], arr.astype("<u2").tobytes())
    else:
        im = im.convert(mode)
    fmt = "TIFF" if mode in ("CMYK", "I", "F") else "PNG"
    path = _save(im, tmp_path / f"x.{fmt.lower()}", format=fmt)
    t = I.load_image(path)
    assert t.shape == (1, 3, 30, 40) and t.dtype == torch.float32
    assert 0 <= t.min() and t.max() <= 1 and t.std() > 0.01


def test_sixteen_bit_is_scaled_not_clipped(tmp_path):
    arr = np.full((8, 8), 32768, np.uint16)
    path = _save(Image.frombytes("I;16", (8, 8), arr.astype("<u2").tobytes()), tmp_path / "half.png")
    assert I.load_image(path).mean().item() == pytest.approx(0.5, abs=0.01)


def test_alpha_is_composited_on_white(tmp_path):
    im = Image.new("RGBA", (4, 4), (0, 0, 0, 0))
    t = I.load_image(_save(im, tmp_path / "clear.png"))
    assert t.min().item() == 1.0


def test_exif_orientation_is_applied(tmp_path):
    im = _gradient(size=(40, 20))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    path = _save(im, tmp_path / "rot.jpg", exif=exif)
    assert I.load_image(path).shape[-2:] == (40, 20)


def test_size_is_longest_side_keeping_aspect(tmp_path):
    path = _save(_gradient(size=(300, 200)), tmp_path / "g.png")
    assert I.load_image(path, 150).shape[-2:] == (100, 150)
    assert I.fit_size(451, 300, 64) == (64, 43)


def test_tensor_inputs(tmp_path):
    t = torch.rand(3, 10, 20)
    assert I.load_image(t, 40).shape == (1, 3, 20, 40)
    with pytest.raises(InputError, match="shape"):
        I.load_image(torch.rand(2, 3, 4, 4))
    with pytest.raises(InputError, match="NaN"):
        I.load_image(torch.full((3, 4, 4), float("nan")))


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: None, "image not found"),
        (lambda p: p.write_bytes(b""), "image file is empty"),
        (lambda p: p.write_text("hello, I am text"), "not an image file"),
    ],
)
def test_bad_files(tmp_path, make, message):
    path = tmp_path / "bad.jpg"
    make(path)
    with pytest.raises(InputError, match=message):
        I.open_image(path)


def test_truncated_file(tmp_path):
    good = _save(_gradient(size=(200, 200)), tmp_path / "good.jpg", quality=90)
    bad = tmp_path / "trunc.jpg"
    bad.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(InputError, match="cannot decode image"):
        I.open_image(bad)


def test_decompression_bomb_is_refused(tmp_path):
    path = bomb_png(tmp_path / "bomb.png", 40000, 40000)
    with pytest.raises(InputError, match="too large"):
        I.open_image(path)


def bomb_png(path, width, height):
    """A tiny PNG whose header claims width x height pixels."""
    import struct
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b""))
    return path


@pytest.mark.parametrize("ext", [".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff"])
def test_save_formats_embed_metadata(tmp_path, ext):
    path = I.save_image(_gradient(), tmp_path / f"out{ext}", {"options": {"seed": 7}})
    assert Image.open(path).size == (40, 30)
    assert I.read_metadata(path) == {"options": {"seed": 7}}


def test_unknown_extension_and_missing_folder(tmp_path):
    with pytest.raises(InputError, match="unknown output extension '.gif'"):
        I.output_format(tmp_path / "x.gif")
    with pytest.raises(OutputError, match="folder .*nope does not exist"):
        I.save_image(_gradient(), tmp_path / "nope" / "x.png")


def test_save_is_atomic(tmp_path, monkeypatch):
    target = tmp_path / "keep.png"
    target.write_bytes(b"previous result")

    def boom(self, fp, *a, **k):
        fp.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(Image.Image, "save", boom)
    with pytest.raises(OSError):
        I.save_image(_gradient(), target)
    assert target.read_bytes() == b"previous result"
    assert [p.name for p in tmp_path.iterdir()] == ["keep.png"]


def test_saved_file_has_the_usual_mode(tmp_path):
    import os
    import stat

    path = I.save_image(_gradient(), tmp_path / "mode.png")
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~mask
