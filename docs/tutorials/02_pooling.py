"""Tutorial 2: pooling, forward and backward.

Shows max and average pooling computed window by window by hand and by numcnn, then their backward
passes: max pooling routes each window's gradient to its arg-max (and nowhere else), average pooling
spreads it evenly, and overlapping windows add up what they send to a shared pixel. Ends with what two
rounds of pooling do to a Fashion-MNIST image and where the gradient of a max pool lands on it.

    python docs/tutorials/02_pooling.py --out figures
    python docs/tutorials/02_pooling.py --ci --out figures
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

import numcnn as nc
import numcnn.nn.functional as F
from numcnn.data import FashionMNIST
from numcnn.utils.visualize import pyplot as _pyplot


def pool_by_hand(x: np.ndarray, k: int, stride: int, mode: str) -> np.ndarray:
    """x: (H, W) -> (Ho, Wo): the max or the mean of every k x k window, one window at a time."""
    ho, wo = (x.shape[0] - k) // stride + 1, (x.shape[1] - k) // stride + 1
    y = np.empty((ho, wo), dtype=x.dtype)
    for i in range(ho):
        for j in range(wo):
            window = x[i * stride : i * stride + k, j * stride : j * stride + k]
            y[i, j] = window.max() if mode == "max" else window.mean()
    return y


def pool_backward_by_hand(x: np.ndarray, dy: np.ndarray, k: int, stride: int, mode: str) -> np.ndarray:
    """The gradient of sum(dy * pool(x)) with respect to x (H, W).

    Max: the window's output is one of its inputs, so dy goes to that input (the first maximum, in row-major
    order) and the others get 0. Average: the output is the mean of k*k inputs, each gets dy / (k*k).
    A pixel shared by overlapping windows collects the sum of what every window sends it.
    """
    dx = np.zeros_like(x)
    for i in range(dy.shape[0]):
        for j in range(dy.shape[1]):
            rows, cols = slice(i * stride, i * stride + k), slice(j * stride, j * stride + k)
            if mode == "max":
                r, c = np.unravel_index(np.argmax(x[rows, cols]), (k, k))
                dx[i * stride + r, j * stride + c] += dy[i, j]
            else:
                dx[rows, cols] += dy[i, j] / (k * k)
    return dx


def numcnn_pool(x: np.ndarray, dy: np.ndarray, k: int, stride: int, mode: str) -> tuple[np.ndarray, np.ndarray]:
    """numcnn's forward and backward for a single (H, W) plane: returns (y, dx)."""
    xt = nc.tensor(x[None, None], requires_grad=True)
    pool = F.max_pool2d if mode == "max" else F.avg_pool2d
    y = pool(xt, k, stride)
    # backward of sum(dy * y) hands dy to the pooling layer as its upstream gradient.
    (y * nc.tensor(dy[None, None])).sum().backward()
    return y.numpy()[0, 0], xt.grad.numpy()[0, 0]


def _grid(a: np.ndarray, indent: str = "     ") -> str:
    return "\n".join(indent + " ".join(f"{v:5.2f}" for v in row) for row in a)


def compare(name: str, x: np.ndarray, dy: np.ndarray, k: int, stride: int, mode: str, show: bool) -> dict:
    y_hand, dx_hand = pool_by_hand(x, k, stride, mode), pool_backward_by_hand(x, dy, k, stride, mode)
    y_lib, dx_lib = numcnn_pool(x, dy, k, stride, mode)
    fwd, bwd = float(np.abs(y_hand - y_lib).max()), float(np.abs(dx_hand - dx_lib).max())
    print(f"\n{name}: {mode} pool {k}x{k}, stride {stride}, on a {x.shape[0]}x{x.shape[1]} input")
    if show:
        print(f"   x:\n{_grid(x)}\n   y = pool(x):\n{_grid(y_lib)}")
        print(f"   upstream gradient dy:\n{_grid(dy)}\n   dx (numcnn's backward):\n{_grid(dx_lib)}")
    print(f"   max |hand - numcnn|: forward {fwd:.1e}, backward {bwd:.1e}; "
          f"sum(dx) = {dx_lib.sum():.4f} = sum(dy) = {dy.sum():.4f}")
    return {"forward": fwd, "backward": bwd, "dx": dx_lib, "grad_sum_gap": float(abs(dx_lib.sum() - dy.sum()))}


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ci", action="store_true", help="fewer images, for the test suite (< 15 s)")
    p.add_argument("--out", default="figures", help="folder for the figures (default: ./figures)")
    args = p.parse_args(argv)

    x = np.array([[1, 2, 0, 1], [0, 6, 3, 2], [4, 2, 1, 0], [3, 0, 5, 7]], dtype=np.float64)
    dy = np.array([[0.1, 0.2], [0.3, 0.4]])
    results = {"max": compare("1. Max pooling", x, dy, 2, 2, "max", True),
               "avg": compare("2. Average pooling", x, dy, 2, 2, "avg", True)}
    kept = int((results["max"]["dx"] != 0).sum())
    print(f"   max pooling sends gradient to {kept} of {x.size} inputs: one per window")
    results["max_nonzero_grads"] = kept

    # 3x3 windows with stride 2 overlap by one row/column: the 9 at the centre wins all four windows.
    x5 = np.array([[1, 0, 2, 0, 1], [0, 3, 0, 1, 0], [2, 0, 9, 0, 2], [0, 1, 0, 3, 0], [1, 0, 2, 0, 1]], np.float64)
    results["overlap"] = compare("3. Overlapping windows", x5, dy, 3, 2, "max", True)
    centre = results["overlap"]["dx"][2, 2]
    print(f"   the centre pixel is every window's maximum: its gradient is 0.1+0.2+0.3+0.4 = {centre:.2f}")
    results["overlap_centre_grad"] = float(centre)

    # Many random planes and upstream gradients, float32 this time.
    rng = np.random.default_rng(0)
    worst = 0.0
    for _ in range(5 if args.ci else 50):
        xr = rng.standard_normal((8, 8)).astype(np.float32)
        dyr = rng.standard_normal((4, 4)).astype(np.float32)
        for mode in ("max", "avg"):
            y_lib, dx_lib = numcnn_pool(xr, dyr, 2, 2, mode)
            worst = max(worst, float(np.abs(y_lib - pool_by_hand(xr, 2, 2, mode)).max()),
                        float(np.abs(dx_lib - pool_backward_by_hand(xr, dyr, 2, 2, mode)).max()))
    print(f"\n4. Random 8x8 planes in float32: worst |hand - numcnn| over forward and backward = {worst:.1e}")
    results["random_max_abs_diff"] = worst

    images = FashionMNIST(train=False).data[: 4 if args.ci else 16].astype(np.float32) / 255
    xt = nc.tensor(images[:, None], requires_grad=True)
    pooled = F.max_pool2d(xt, 2)                  # (N, 1, 14, 14)
    twice = F.max_pool2d(pooled, 2)               # (N, 1, 7, 7)
    twice.sum().backward()
    routed = xt.grad.numpy()[:, 0]
    print(f"\n5. Fashion-MNIST: {images.shape[1:]} -> max pool -> {pooled.shape[2:]} -> max pool -> {twice.shape[2:]}")
    print(f"   the gradient of sum(pool(pool(x))) reaches {int((routed[0] != 0).sum())} of 784 pixels "
          "of the first image: one per 4x4 block")
    results["routed_pixels"] = int((routed[0] != 0).sum())
    avg = F.avg_pool2d(nc.tensor(images[:, None]), 2).numpy()[:, 0]
    results["figures"] = save_figures(Path(args.out), results, images[0], pooled.numpy()[0, 0],
                                      twice.numpy()[0, 0], avg[0], routed[0])
    for key in ("max", "avg", "overlap"):
        results[key].pop("dx")
    return results


def save_figures(out_dir: Path, results: dict, image, pooled, twice, avg, routed) -> list[str]:
    plt = _pyplot()
    if plt is None:
        print("\n(matplotlib is not installed: no figures)")
        return []
    out_dir.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(1, 5, figsize=(16, 3.6))
    panels = [(image, "image 28x28"), (pooled, "max pool: 14x14"), (twice, "max pool twice: 7x7"),
              (avg, "average pool: 14x14"), (routed, "gradient of max pool twice")]
    for ax, (a, title) in zip(axes, panels):
        ax.imshow(a, cmap="gray")
        ax.set_title(title)
        ax.axis("off")
    fig.tight_layout()
    paths = [out_dir / "02_pooling_image.png"]
    fig.savefig(paths[0], dpi=80)
    plt.close(fig)

    fig, axes = plt.subplots(1, 2, figsize=(8, 3.8))
    for ax, key, title in ((axes[0], "max", "max pool: dy goes to the arg-max"),
                           (axes[1], "avg", "avg pool: dy / 4 to every input")):
        dx = results[key]["dx"]
        ax.imshow(dx, cmap="Reds", vmin=0)
        for (i, j), v in np.ndenumerate(dx):
            ax.text(j, i, f"{v:.3g}", ha="center", va="center")
        ax.set_title(title)
        ax.axhline(1.5, color="k")
        ax.axvline(1.5, color="k")
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    paths.append(out_dir / "02_pooling_backward.png")
    fig.savefig(paths[1], dpi=80)
    plt.close(fig)
    print(f"\nfigures: {', '.join(str(p) for p in paths)}")
    return [str(p) for p in paths]


if __name__ == "__main__":
    main()
