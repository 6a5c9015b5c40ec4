"""Tutorial 1: convolution, step by step.

Shows the output-size formula, the multiply-accumulate (MAC) count, the textbook seven-loop sliding
window, im2col + one matrix product (GEMM), a picture of what im2col builds, and the time each takes next
to PyTorch's convolution (when PyTorch is installed), all on the same Fashion-MNIST images.

    python docs/tutorials/01_convolution.py --out figures      # full size (a few seconds)
    python docs/tutorials/01_convolution.py --ci --out figures # small, for the test suite
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

import numcnn as nc
import numcnn.nn.functional as F
from numcnn.data import FashionMNIST
from numcnn.kernels.conv import im2col as numcnn_im2col
from numcnn.utils import summary
from numcnn.utils.visualize import pyplot as _pyplot


def output_size(size: int, kernel: int, stride: int = 1, padding: int = 0, dilation: int = 1) -> int:
    """The textbook formula: how many positions a kernel takes along one axis.

    A dilated kernel spans d*(k-1)+1 pixels; it fits (size + 2p - span) // s + 1 times.
    """
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def conv2d_seven_loops(x: np.ndarray, w: np.ndarray, b: np.ndarray, stride: int = 1,
                       padding: int = 0) -> tuple[np.ndarray, int]:
    """The sliding window, one multiply-add at a time.

    x: (N, C, H, W), w: (K, C, R, S), b: (K,). Returns y: (N, K, Ho, Wo) with x's dtype and the number of
    multiply-adds done (the MAC count).
    """
    n_images, channels, height, width = x.shape
    filters, _, kh, kw = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    ho, wo = output_size(height, kh, stride, padding), output_size(width, kw, stride, padding)
    y = np.zeros((n_images, filters, ho, wo), dtype=x.dtype)
    macs = 0
    for n in range(n_images):                     # 1. every image
        for k in range(filters):                  # 2. every filter (output channel)
            for i in range(ho):                   # 3. every output row
                for j in range(wo):               # 4. every output column
                    acc = b[k]
                    for c in range(channels):     # 5. every input channel
                        for r in range(kh):       # 6. every kernel row
                            for s in range(kw):   # 7. every kernel column
                                acc += xp[n, c, i * stride + r, j * stride + s] * w[k, c, r, s]
                                macs += 1
                    y[n, k, i, j] = acc
    return y, macs


def im2col_by_hand(x: np.ndarray, kh: int, kw: int, stride: int = 1) -> np.ndarray:
    """Copy every receptive field of x (N, C, H, W) into one column: (C*kh*kw, N*Ho*Wo).

    Loops run over the kernel offsets only: offset (r, s) reads one strided sub-image of every channel.
    Row (c, r, s) of the result holds pixel (r, s) of every window of channel c.
    """
    n_images, channels, height, width = x.shape
    ho, wo = output_size(height, kh, stride), output_size(width, kw, stride)
    cols = np.empty((channels, kh, kw, n_images, ho, wo), dtype=x.dtype)
    for r in range(kh):
        for s in range(kw):
            window = x[:, :, r : r + stride * (ho - 1) + 1 : stride, s : s + stride * (wo - 1) + 1 : stride]
            cols[:, r, s] = window.transpose(1, 0, 2, 3)
    return cols.reshape(channels * kh * kw, n_images * ho * wo)


def _best_time(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def section_output_size() -> int:
    print("1. Output size: Ho = (H + 2P - D(K-1) - 1) // S + 1")
    print(f"   {'H':>3} {'K':>3} {'S':>3} {'P':>3} {'D':>3}  formula  numcnn")
    mismatches = 0
    for h, k, s, p, d in [(28, 5, 1, 0, 1), (28, 5, 1, 2, 1), (28, 3, 2, 1, 1), (7, 3, 2, 0, 1),
                          (28, 3, 1, 2, 2), (32, 5, 1, 0, 1), (14, 2, 2, 0, 1), (10, 4, 3, 1, 1)]:
        expected = output_size(h, k, s, p, d)
        y = F.conv2d(nc.zeros(1, 1, h, h), nc.zeros(1, 1, k, k), stride=s, padding=p, dilation=d)
        mismatches += y.shape[2] != expected
        print(f"   {h:>3} {k:>3} {s:>3} {p:>3} {d:>3}  {expected:>7}  {y.shape[2]:>6}")
    return mismatches


def section_macs(images: np.ndarray) -> dict:
    print("\n2. MACs: one multiply-add per (output pixel, input channel, kernel tap)")
    # LeNet-5's first layer: 6 filters of 5x5 over a 28x28 image padded by 2.
    conv = nc.nn.Conv2d(1, 6, 5, padding=2)
    formula = 6 * output_size(28, 5, 1, 2) ** 2 * 1 * 5 * 5
    counted = conv2d_seven_loops(images[:1], conv.weight.numpy(), conv.bias.numpy(), padding=2)[1]
    reported = summary(conv, (1, 28, 28), print_fn=lambda *a: None).total_macs
    print(f"   Conv2d(1, 6, 5, padding=2) on 28x28: K*Ho*Wo*C*R*S = 6*28*28*1*5*5 = {formula:,}")
    print(f"   counted in the seven loops: {counted:,}; numcnn.utils.summary: {reported:,}")
    return {"macs_formula": formula, "macs_counted": counted, "macs_summary": reported}


def section_seven_loops(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> dict:
    print(f"\n3. The seven loops vs numcnn on x {x.shape}, w {w.shape} (stride 1, padding 1)")
    xt, wt, bt = nc.tensor(x), nc.tensor(w), nc.tensor(b)
    t0 = time.perf_counter()
    y_loops, _ = conv2d_seven_loops(x, w, b, padding=1)
    t1 = time.perf_counter()
    y_naive = F.conv2d(xt, wt, bt, padding=1, algorithm="naive").numpy()
    t2 = time.perf_counter()
    y_im2col = F.conv2d(xt, wt, bt, padding=1, algorithm="im2col").numpy()
    out = {"max_abs_loops_vs_im2col": float(np.abs(y_loops - y_im2col).max()),
           "max_abs_naive_vs_im2col": float(np.abs(y_naive - y_im2col).max()),
           "times": {"seven_loops": t1 - t0, "naive": t2 - t1}}
    print(f"   max |seven loops - im2col| = {out['max_abs_loops_vs_im2col']:.2e}")
    print(f"   max |numcnn naive - im2col| = {out['max_abs_naive_vs_im2col']:.2e}  (float32 rounding only)")
    return out


def section_im2col(image: np.ndarray) -> dict:
    print("\n4. im2col: every 3x3 window of a 4x4 image becomes one column")
    x = np.arange(1, 17, dtype=np.float32).reshape(1, 1, 4, 4)
    cols = im2col_by_hand(x, 3, 3)
    print("   input:\n" + "\n".join("     " + " ".join(f"{v:3.0f}" for v in row) for row in x[0, 0]))
    print(f"   columns {cols.shape} (row = kernel tap, column = window):")
    print("\n".join("     " + " ".join(f"{v:3.0f}" for v in row) for row in cols))
    library = numcnn_im2col(x, (3, 3), (1, 1), ((0, 0), (0, 0)), (1, 1))
    # The whole convolution is now one matrix product: (K, C*R*S) @ (C*R*S, N*Ho*Wo).
    rng = np.random.default_rng(0)
    w = rng.standard_normal((2, 1, 3, 3)).astype(np.float32)
    y_gemm = (w.reshape(2, -1) @ cols).reshape(2, 1, 2, 2).transpose(1, 0, 2, 3)
    y_conv = F.conv2d(nc.tensor(x), nc.tensor(w)).numpy()
    real_cols = im2col_by_hand(image[None, None], 5, 5)
    out = {"max_abs_hand_im2col_vs_numcnn": float(np.abs(cols - library).max()),
           "max_abs_gemm_vs_conv": float(np.abs(y_gemm - y_conv).max()),
           "real_cols_shape": real_cols.shape, "tiny_cols": cols, "real_cols": real_cols}
    print(f"   max |hand im2col - numcnn.kernels.conv.im2col| = {out['max_abs_hand_im2col_vs_numcnn']:.1e}")
    print(f"   W (2, 9) @ cols (9, 4) reshaped = conv2d: max difference {out['max_abs_gemm_vs_conv']:.1e}")
    print(f"   a 28x28 Fashion-MNIST image with a 5x5 kernel: cols {real_cols.shape} "
          f"({real_cols.size / image.size:.0f}x the image's memory)")
    return out


def section_timing(x: np.ndarray, w: np.ndarray, b: np.ndarray, slow_times: dict, repeats: int) -> dict:
    print(f"\n5. Timing the same convolution: x {x.shape}, w {w.shape}, padding 1")
    print("   (the two loop versions were timed once in section 3; the fast ones are the best of several runs)")
    xt, wt, bt = nc.tensor(x), nc.tensor(w), nc.tensor(b)
    times = dict(slow_times)
    times["im2col"] = _best_time(lambda: F.conv2d(xt, wt, bt, padding=1, algorithm="im2col"), repeats)
    times["torch"] = None
    max_torch = None
    try:
        import torch
    except ImportError:
        print("   (PyTorch is not installed: no comparison with torch.nn.functional.conv2d)")
    else:
        tx, tw, tb = torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(b)
        with torch.no_grad():
            times["torch"] = _best_time(lambda: torch.nn.functional.conv2d(tx, tw, tb, padding=1), repeats)
            y_torch = torch.nn.functional.conv2d(tx, tw, tb, padding=1).numpy()
        max_torch = float(np.abs(y_torch - F.conv2d(xt, wt, bt, padding=1, algorithm="im2col").numpy()).max())
    for name, t in times.items():
        if t is not None:
            print(f"   {name:12s} {t * 1e3:10.3f} ms   ({times['seven_loops'] / t:8.1f}x the speed of the seven loops)")
    if max_torch is not None:
        print(f"   max |torch - numcnn im2col| = {max_torch:.2e}")
    return {"times": times, "max_abs_torch_vs_im2col": max_torch}


def save_figures(out_dir: Path, im2col_result: dict, times: dict) -> list[str]:
    plt = _pyplot()
    if plt is None:
        print("\n(matplotlib is not installed: no figures)")
        return []
    out_dir.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5), gridspec_kw={"width_ratios": [1, 1, 3]})
    tiny = np.arange(1, 17).reshape(4, 4)
    axes[0].imshow(tiny, cmap="Blues")
    axes[0].add_patch(plt.Rectangle((-0.5, -0.5), 3, 3, fill=False, color="red", lw=3))
    for (i, j), v in np.ndenumerate(tiny):
        axes[0].text(j, i, v, ha="center", va="center")
    axes[0].set_title("input 4x4, first 3x3 window in red")
    cols = im2col_result["tiny_cols"]
    axes[1].imshow(cols, cmap="Blues", aspect="auto")
    axes[1].add_patch(plt.Rectangle((-0.5, -0.5), 1, 9, fill=False, color="red", lw=3))
    for (i, j), v in np.ndenumerate(cols):
        axes[1].text(j, i, int(v), ha="center", va="center")
    axes[1].set_title("im2col: (9, 4), one column per window")
    axes[1].set_xlabel("window")
    axes[1].set_ylabel("kernel tap (r, s)")
    axes[2].imshow(im2col_result["real_cols"][:, :200], cmap="gray", aspect="auto")
    axes[2].set_title("im2col of a Fashion-MNIST image, 5x5 kernel: (25, 576), first 200 columns")
    axes[2].set_xlabel("window (output pixel)")
    axes[2].set_ylabel("kernel tap")
    fig.tight_layout()
    paths = [out_dir / "01_im2col.png"]
    fig.savefig(paths[0], dpi=80)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 3.5))
    names = [k for k, v in times.items() if v is not None]
    ax.barh(names, [times[k] * 1e3 for k in names], color="tab:blue")
    ax.set_xscale("log")
    ax.set_xlabel("milliseconds (log scale)")
    ax.set_title("the same convolution, four ways")
    fig.tight_layout()
    paths.append(out_dir / "01_conv_timing.png")
    fig.savefig(paths[1], dpi=80)
    plt.close(fig)
    print(f"\nfigures: {', '.join(str(p) for p in paths)}")
    return [str(p) for p in paths]


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ci", action="store_true", help="small inputs, for the test suite (< 15 s)")
    p.add_argument("--out", default="figures", help="folder for the figures (default: ./figures)")
    args = p.parse_args(argv)

    nc.manual_seed(0)
    images = FashionMNIST(train=True).data[:16].astype(np.float32) / 255  # (16, 28, 28) in [0, 1]
    results = {"size_formula_mismatches": section_output_size()}
    results.update(section_macs(images[:, None]))

    # The same input for the loop-by-loop comparison and the timing: real images, 3 channels, 3x3 filters.
    n, size, filters = (2, 14, 4) if args.ci else (8, 28, 16)
    x = np.ascontiguousarray(np.repeat(images[:n, None, :size, :size], 3, axis=1))
    conv = nc.nn.Conv2d(3, filters, 3, padding=1)
    w, b = conv.weight.numpy(), conv.bias.numpy()
    loops = section_seven_loops(x, w, b)
    slow_times = loops.pop("times")
    results.update(loops)
    im2col_result = section_im2col(images[0])
    results.update({k: v for k, v in im2col_result.items() if k.startswith(("max", "real_cols_shape"))})
    results.update(section_timing(x, w, b, slow_times, repeats=5 if args.ci else 20))
    results["figures"] = save_figures(Path(args.out), im2col_result, results["times"])
    return results


if __name__ == "__main__":
    main()
