"""Shared fixtures: bundled example images, small tensors, and the optional ../shared/images folder."""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path

import pytest
import torch
from PIL import Image

# This machine's measured speed and observed runs are kept in a cache of the test session's own (the runs of the
# tests must not change the estimates of a user's runs, nor theirs the tests').
os.environ["IMPASTO_CACHE_DIR"] = tempfile.mkdtemp(prefix="impasto-test-cache-")

from impasto import api  # noqa: E402
from impasto.io.images import load_image  # noqa: E402


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under mutmut (``make mutation``): Ray and browser tests are left out, in the clean run and the stats run
    too, since no mutant is ever tested with them (their work runs in other processes, which import the installed
    package, not the mutant). Under a mutant: the tests that cover it, fastest first (by mutmut's recorded
    durations), so that a killed mutant dies in its quickest test; with ``IMPASTO_MUTATION_MAX_TEST_SECONDS``,
    tests recorded as slower are left out (docs/development.md: the score is then a lower bound); a presets mutant runs
    ``test_presets.py`` only."""
    if "MUTANT_UNDER_TEST" not in os.environ:
        return
    under_mutant = "__mutmut_" in os.environ["MUTANT_UNDER_TEST"]
    stats = Path("mutmut-stats.json")
    durations = json.loads(stats.read_text())["duration_by_test"] if under_mutant and stats.exists() else {}
    items.sort(key=lambda item: durations.get(item.nodeid, 0.0))
    cap = float(os.environ.get("IMPASTO_MUTATION_MAX_TEST_SECONDS", math.inf)) if under_mutant else math.inf

    def elsewhere(item: pytest.Item) -> bool:
        return item.get_closest_marker("cluster") is not None or item.path.name == "test_web_browser.py"

    # The presets feed every test (make_options), so a surviving presets mutant would run the whole suite: its
    # mutants are tested by the tests that pin the presets (a lower bound on what the suite kills).
    only = "test_presets.py" if os.environ["MUTANT_UNDER_TEST"].startswith("impasto.presets.") else None
    slow = [item for item in items if durations.get(item.nodeid, 0.0) > cap or elsewhere(item)
            or (only is not None and item.path.name != only)]  # fmt: skip
    if slow:
        config.hook.pytest_deselected(items=slow)
        items[:] = [item for item in items if item not in slow]


ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
#: The shared folder beside the repository (test images, seed documents); IMPASTO_SHARED points elsewhere (the
#: mutation run copies the repository into mutants/).
SHARED = Path(os.environ.get("IMPASTO_SHARED", ROOT.parent / "shared"))
SHARED_IMAGES = Path(os.environ.get("IMPASTO_SHARED_IMAGES", SHARED / "images"))


@pytest.fixture(scope="session")
def content_path() -> Path:
    return EXAMPLES / "chelsea.png"


@pytest.fixture(scope="session")
def style_path() -> Path:
    return EXAMPLES / "starry_night.jpg"


@pytest.fixture(scope="session")
def content64(content_path: Path) -> torch.Tensor:
    return load_image(content_path, 64)


@pytest.fixture(scope="session")
def style64(style_path: Path) -> torch.Tensor:
    return load_image(style_path, 64)


@pytest.fixture
def shared_images() -> Path:
    """The shared test images folder; the test is skipped where it is absent."""
    if not SHARED_IMAGES.is_dir():
        pytest.skip(f"shared images not found at {SHARED_IMAGES}")
    return SHARED_IMAGES


def np_channel_stats(feat: torch.Tensor, mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Channel mean and population standard deviation (N, C, 1, 1) of features, optionally weighted by a mask
    (N, 1, H, W), computed in float64 NumPy: an independent check of the code's own statistics helper."""
    import numpy as np

    f = feat.detach().double().cpu().numpy()
    w = np.ones_like(f[:, :1]) if mask is None else mask.detach().double().cpu().numpy()
    mass = w.sum(axis=(2, 3), keepdims=True)
    mean = (f * w).sum(axis=(2, 3), keepdims=True) / mass
    var = (((f - mean) ** 2) * w).sum(axis=(2, 3), keepdims=True) / mass
    return torch.from_numpy(mean).float(), torch.from_numpy(np.sqrt(var)).float()


#: A tiny trained network (width 8, 32 px crops): trains in seconds, for tests of everything around training.
TINY = {"start": "scratch", "width": 8, "train_size": 32, "style_size": 48, "batch_size": 2, "sample_every": 0,
        "checkpoint_every": 0}


@pytest.fixture(scope="session")
def photos(tmp_path_factory, content_path) -> Path:
    """A small data folder: two crops of the bundled photo, one in a subfolder (the search is recursive), an
    unreadable .jpg and a text file."""
    folder = tmp_path_factory.mktemp("photos")
    im = Image.open(content_path).convert("RGB")
    im.crop((0, 0, 200, 160)).save(folder / "a.png")
    (folder / "sub").mkdir()
    im.crop((100, 50, 300, 250)).save(folder / "sub" / "b.jpg")
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (folder / "notes.txt").write_text("not an image")
    return folder


@pytest.fixture(scope="session")
def trained(tmp_path_factory, photos, style_path) -> Path:
    """A model trained for 4 steps (width 8, 32 px crops)."""
    out = tmp_path_factory.mktemp("model") / "tiny.pt"
    api.train(style_path, out, data=photos, steps=4, seed=3, warn=lambda m: None, **TINY)
    return out
