"""Shared fixtures: bundled example images, small tensors, and the optional ../shared/images folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from impasto.io.images import load_image

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
