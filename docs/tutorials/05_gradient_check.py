"""Tutorial 5: every layer's backward pass, checked by numerical differentiation.

Shows the textbook gradient check: nudge each input and each weight by +-eps, measure how the loss moves,
and compare (f(w + eps) - f(w - eps)) / 2 eps with the gradient backpropagation gives. Done for the
affine layer, ReLU, sigmoid, softmax-with-loss, batch normalization, dropout, convolution and max / average
pooling, in float64; then the same check in float32 shows why gradient checks are run in float64.

    python docs/tutorials/05_gradient_check.py --out figures
    python docs/tutorials/05_gradient_check.py --ci --out figures
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

import numpy as np

import numcnn as nc
import numcnn.nn as nn
import numcnn.nn.functional as F
from numcnn.utils import gradcheck
from numcnn.utils.visualize import pyplot as _pyplot


def numerical_gradient(loss: Callable[[], float], a: np.ndarray, eps: float) -> np.ndarray:
    """Central differences: dL/da[i] ~ (L(a + eps e_i) - L(a - eps e_i)) / (2 eps), one element at a time.

    ``a`` is perturbed in place (it is the array inside a Tensor) and restored after each element.
    """
    grad = np.zeros_like(a)
    for i in np.ndindex(a.shape):
        old = a[i]
        a[i] = old + eps
        plus = loss()
        a[i] = old - eps
        minus = loss()
        a[i] = old
        grad[i] = (plus - minus) / (2 * eps)
    return grad


def check_layer(fn: Callable[[], nc.Tensor], tensors: dict[str, nc.Tensor], eps: float, seed: int = 0) -> dict:
    """Compare backprop with central differences for every tensor in ``tensors``.

    ``fn()`` runs the layer on those tensors. The loss is L = sum(fn() * v) for a fixed random v, so every output
    element gets its own upstream gradient (a scalar output, such as a loss, is used as it is).
    Returns the worst absolute and relative errors over all tensors.
    """
    out = fn()
    v = np.random.default_rng(seed).standard_normal(out.shape).astype(out.dtype)
    for t in tensors.values():
        t.grad = None
    (out * nc.tensor(v)).sum().backward()
    analytic = {name: t.grad.numpy().copy() for name, t in tensors.items()}

    def loss() -> float:
        with nc.no_grad():
            return float((fn().numpy() * v).sum())

    worst_abs = worst_rel = 0.0
    for name, t in tensors.items():
        numeric = numerical_gradient(loss, t.numpy(), eps)
        diff = np.abs(analytic[name] - numeric)
        # relative error |a - n| / max(|a|, |n|), ignoring entries where both are ~0 (e.g. ReLU's dead inputs)
        scale = np.maximum(np.maximum(np.abs(analytic[name]), np.abs(numeric)), 1e-8)
        worst_abs = max(worst_abs, float(diff.max()))
        worst_rel = max(worst_rel, float((diff / scale).max()))
    return {"max_abs_error": worst_abs, "max_rel_error": worst_rel}


def cases(dtype, rng: np.random.Generator, size: int) -> dict:
    """name -> (fn, tensors): each layer with small random inputs of ``dtype``."""
    def t(*shape):
        return nc.tensor(rng.standard_normal(shape).astype(dtype), requires_grad=True)

    nc.manual_seed(0)
    linear = nn.Linear(size, 3).to(dtype)
    conv = nn.Conv2d(2, 3, 3, stride=2, padding=1).to(dtype)
    bn = nn.BatchNorm2d(3).to(dtype)
    x_fc, x_img, x_bn, x_pool = t(4, size), t(2, 2, size, size), t(4, 3, 3, 3), t(2, 2, 4, 4)
    logits, labels = t(4, 5), nc.tensor(rng.integers(0, 5, 4))
    return {
        "Affine (Linear)": (lambda: linear(x_fc), {"x": x_fc, "W": linear.weight, "b": linear.bias}),
        "ReLU": (lambda: F.relu(x_fc), {"x": x_fc}),
        "Sigmoid": (lambda: F.sigmoid(x_fc), {"x": x_fc}),
        "Softmax-with-loss": (lambda: F.cross_entropy(logits, labels), {"logits": logits}),
        # train mode: normalised with the batch's own mean and variance, so they are differentiated too
        "BatchNorm2d (train)": (lambda: bn(x_bn), {"x": x_bn, "gamma": bn.weight, "beta": bn.bias}),
        # a fresh generator with the same seed at every call: the same mask, so the layer is a fixed function
        "Dropout (p=0.5)": (lambda: F.dropout(x_fc, 0.5, generator=np.random.default_rng(1)), {"x": x_fc}),
        "Conv2d (3x3, stride 2, pad 1)": (lambda: conv(x_img), {"x": x_img, "W": conv.weight, "b": conv.bias}),
        "MaxPool2d (2x2)": (lambda: F.max_pool2d(x_pool, 2), {"x": x_pool}),
        "AvgPool2d (2x2)": (lambda: F.avg_pool2d(x_pool, 2), {"x": x_pool}),
    }


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ci", action="store_true", help="smaller inputs, for the test suite (< 15 s)")
    p.add_argument("--out", default="figures", help="folder for the figures (default: ./figures)")
    args = p.parse_args(argv)
    size = 5 if args.ci else 8

    print("1. Backprop vs central differences, float64, eps = 1e-6")
    print(f"   {'layer':32s} {'max |abs error|':>16s} {'max rel error':>14s}  numcnn.utils.gradcheck")
    results: dict = {"float64": {}, "gradcheck": {}}
    for name, (fn, tensors) in cases(np.float64, np.random.default_rng(0), size).items():
        r = check_layer(fn, tensors, eps=1e-6)
        results["float64"][name] = r
        # numcnn's own checker (random projection of the output, same central differences) as a second opinion
        results["gradcheck"][name] = gradcheck(lambda *_, fn=fn: fn(), list(tensors.values()), raise_exception=False)
        print(f"   {name:32s} {r['max_abs_error']:16.1e} {r['max_rel_error']:14.1e}  "
              f"{'passed' if results['gradcheck'][name] else 'FAILED'}")

    print("\n2. The same check in float32 (eps = 1e-3, as small as float32's 7 digits allow)")
    results["float32"] = {}
    for name, (fn, tensors) in cases(np.float32, np.random.default_rng(0), size).items():
        r = check_layer(fn, tensors, eps=1e-3)
        results["float32"][name] = r
        print(f"   {name:32s} {r['max_abs_error']:16.1e} {r['max_rel_error']:14.1e}")
    print("   float32 rounding (~1e-7 relative) divided by 2*eps swamps the difference quotient: errors around\n"
          "   1e-3 that say nothing about the backward pass. Gradient checks belong in float64.")
    results["figures"] = save_figures(Path(args.out), results)
    return results


def save_figures(out_dir: Path, results: dict) -> list[str]:
    plt = _pyplot()
    if plt is None:
        print("\n(matplotlib is not installed: no figures)")
        return []
    out_dir.mkdir(parents=True, exist_ok=True)
    names = list(results["float64"])
    fig, ax = plt.subplots(figsize=(8, 4.2))
    pos = np.arange(len(names))
    for offset, key, color in ((-0.2, "float64", "tab:blue"), (0.2, "float32", "tab:orange")):
        errors = [max(results[key][n]["max_abs_error"], 1e-17) for n in names]
        ax.barh(pos + offset, errors, height=0.4, color=color, label=key)
    ax.set_yticks(pos, names)
    ax.set_xscale("log")
    ax.set_xlabel("max |backprop - central difference|")
    ax.set_title("gradient check of every layer")
    ax.legend()
    fig.tight_layout()
    paths = [out_dir / "05_gradient_check.png"]
    fig.savefig(paths[0], dpi=80)
    plt.close(fig)
    print(f"\nfigures: {', '.join(str(p) for p in paths)}")
    return [str(p) for p in paths]


if __name__ == "__main__":
    main()
