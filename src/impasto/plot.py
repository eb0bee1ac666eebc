"""Figures like the two seed documents draw: content | style | result, and the loss curves."""

from __future__ import annotations

import os
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from PIL import Image  # noqa: E402


def plot_run(
    path: str | os.PathLike,
    content: Image.Image,
    styles: Sequence[Image.Image],
    result: Image.Image,
    history: Sequence[dict[str, float]],
) -> None:
    """Save a figure with the images on top and content/style/TV/total loss curves (log scale) below."""
    style_titles = [f"style {i + 1}" if len(styles) > 1 else "style" for i in range(len(styles))]
    panels = [("content", content), *zip(style_titles, styles),
              ("result", result)]  # fmt: skip
    fig = plt.figure(figsize=(4 * len(panels), 7.5 if history else 4), constrained_layout=True)
    grid = fig.add_gridspec(2 if history else 1, len(panels), height_ratios=[1.3, 1] if history else [1])
    for i, (title, im) in enumerate(panels):
        ax = fig.add_subplot(grid[0, i])
        ax.imshow(im)
        ax.set_title(title)
        ax.axis("off")
    if history:
        ax = fig.add_subplot(grid[1, :])
        steps = [h["step"] for h in history]
        for key in ("loss", "content", "style", "tv"):
            values = [h[key] for h in history]
            if any(v > 0 for v in values):
                ax.plot(steps, values, label="total" if key == "loss" else key)
        ax.set_yscale("log")
        ax.set_xlabel("step")
        ax.set_ylabel("weighted loss")
        ax.grid(True, alpha=0.3)
        ax.legend()
    fig.savefig(path, dpi=100)
    plt.close(fig)
