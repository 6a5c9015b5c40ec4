"""The PNG figures of the command line, drawn with matplotlib's object API on the Agg canvas (no pyplot, no global
backend switch), imported only when a figure is drawn. Each function writes one file through atomic_write."""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np

from ..serialization import atomic_write
from .errors import CLIError

MISSING = "drawing PNG figures needs matplotlib: pip install 'numcnn[cli]' (or pip install matplotlib)"


def available() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def _figure(width: float, height: float):
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise CLIError(MISSING) from None
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path: Path, dpi: int = 100) -> Path:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    atomic_write(path, buf.getvalue())
    return path


def curves(records: list[dict], path: Path, title: str = "") -> Path:
    """Loss and accuracy per epoch, train vs validation, side by side."""
    fig = _figure(10, 4)
    epochs = [r["epoch"] for r in records]
    for ax, what in zip(fig.subplots(1, 2), ("loss", "accuracy")):
        for split, style in (("train", "o-"), ("val", "s--")):
            values = [r.get(f"{split}_{what}") for r in records]
            pts = [(e, v) for e, v in zip(epochs, values) if v is not None]
            if pts:
                ax.plot(*zip(*pts), style, label="train" if split == "train" else "validation")
        ax.set_xlabel("epoch")
        ax.set_ylabel(what)
        ax.set_title(what)
        ax.grid(alpha=0.3)
        ax.legend()
        if epochs:
            ax.set_xticks(range(1, max(epochs) + 1, max(1, math.ceil(max(epochs) / 10))))
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def confusion(matrix: np.ndarray, classes: list[str], path: Path, title: str = "") -> Path:
    """The confusion matrix (rows: true class, columns: predicted class) with its counts written in each cell."""
    k = len(classes)
    fig = _figure(max(5.0, 0.6 * k + 2.5), max(4.5, 0.6 * k + 2))
    ax = fig.add_subplot()
    im = ax.imshow(matrix, cmap="Blues")
    fig.colorbar(im, ax=ax, shrink=0.8)
    ax.set_xticks(range(k), classes, rotation=45, ha="right")
    ax.set_yticks(range(k), classes)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    threshold = matrix.max() / 2 if matrix.size else 0
    for i in range(k):
        for j in range(k):
            ax.text(j, i, str(int(matrix[i, j])), ha="center", va="center", fontsize=7,
                    color="white" if matrix[i, j] > threshold else "black")
    ax.set_title(title or "confusion matrix")
    return _save(fig, path)


def activations(x: np.ndarray, curves_: dict, labels: dict, path: Path) -> Path:
    """One panel per activation: f(x) and f'(x)."""
    n = len(curves_)
    cols = 3
    rows = math.ceil(n / cols)
    fig = _figure(4 * cols, 3.2 * rows)
    axes = np.atleast_1d(fig.subplots(rows, cols)).ravel()
    for ax, (name, (y, dy)) in zip(axes, curves_.items()):
        ax.plot(x, y, label="f(x)")
        ax.plot(x, dy, "--", label="f'(x) (autograd)")
        ax.axhline(0, color="gray", lw=0.5)
        ax.axvline(0, color="gray", lw=0.5)
        ax.set_title(labels.get(name, name))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    for ax in axes[n:]:
        ax.set_visible(False)
    return _save(fig, path)


def _grid(n: int) -> tuple[int, int]:
    cols = math.ceil(math.sqrt(n))
    return math.ceil(n / cols), cols


def image_grid(images: np.ndarray, path: Path, title: str, cmap: str = "gray", symmetric: bool = False) -> Path:
    """Images (K, H, W) tiled into one near-square mosaic (row-major, image 0 at the top left) with a one-pixel
    gap, drawn with a single imshow and one colour scale; ``symmetric`` centres that scale on 0 (for filters)."""
    k, h, w = images.shape
    rows, cols = _grid(k)
    mosaic = np.full((rows * (h + 1) - 1, cols * (w + 1) - 1), np.nan, dtype=np.float32)
    for i in range(k):  # one copy per map (at most a few hundred), not per pixel
        r, c = divmod(i, cols)
        mosaic[r * (h + 1) : r * (h + 1) + h, c * (w + 1) : c * (w + 1) + w] = images[i]
    if symmetric:
        lim = float(np.abs(images).max()) or 1.0
        vmin, vmax = -lim, lim
    else:
        vmin, vmax = float(images.min()), float(images.max())
    side = min(8.0, 0.45 * max(rows * h, cols * w) / 7 + 1.5)
    fig = _figure(side * cols * (w + 1) / max(rows * (h + 1), cols * (w + 1)) + 1.2,
                  side * rows * (h + 1) / max(rows * (h + 1), cols * (w + 1)) + 0.6)
    ax = fig.add_subplot()
    from matplotlib import colormaps

    # The gaps (NaN) in a colour no map uses: gray for the diverging filter scale (whose 0 is white), else white.
    colours = colormaps[cmap].with_extremes(bad="0.55" if symmetric else "white")
    im = ax.imshow(mosaic, cmap=colours, vmin=vmin, vmax=vmax, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    fig.colorbar(im, ax=ax, shrink=0.8)
    ax.set_title(title, fontsize=9)
    return _save(fig, path)
