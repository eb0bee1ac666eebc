"""Figures like the two seed documents draw: content | style | result, and the loss curves."""

from __future__ import annotations

import io
import os
from collections.abc import Sequence

from PIL import Image

from .atomic import write_bytes
from .history import term_names


def plot_run(
    path: str | os.PathLike,
    content: Image.Image,
    styles: Sequence[Image.Image],
    result: Image.Image,
    history: Sequence[dict[str, float]],
) -> None:
    """Save a figure with the images on top and the total and each term's loss curve (log scale) below,
    written atomically in the format of the file's extension."""
    import matplotlib  # third-party, imported on first use: it takes half a second

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

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
        for key in ("loss", *term_names(history)):
            values = [h.get(key, 0.0) for h in history]
            if any(v > 0 for v in values):
                ax.plot(steps, values, label="total" if key == "loss" else key)
        ax.set_yscale("log")
        ax.set_xlabel("step")
        ax.set_ylabel("weighted loss")
        ax.grid(True, alpha=0.3)
        ax.legend()
    buffer = io.BytesIO()
    try:
        fig.savefig(buffer, dpi=100, format=os.path.splitext(os.fspath(path))[1][1:].lower() or "png")
    finally:
        plt.close(fig)
    write_bytes(path, buffer.getvalue())
