"""Tutorial 3: activation functions, their derivatives, and why sigmoid gradients vanish.

Shows ReLU, LeakyReLU, Sigmoid and Tanh with their derivatives (numcnn's autograd next to the textbook
formulas), then backpropagates through a deep fully connected net on Fashion-MNIST to show the gradient
shrinking layer after layer with sigmoid (its derivative is at most 1/4) but not with tanh or ReLU.

    python docs/tutorials/03_activations.py --out figures
    python docs/tutorials/03_activations.py --ci --out figures
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

import numcnn as nc
import numcnn.nn as nn
import numcnn.nn.functional as F
from numcnn.data import FashionMNIST
from numcnn.utils.visualize import pyplot as _pyplot

SLOPE = 0.1  # LeakyReLU's slope for negative inputs; PyTorch's default is 0.01, 0.1 is visible on a plot

# name -> (numcnn function, the function by hand, its derivative by hand)
ACTIVATIONS = {
    "ReLU": (F.relu, lambda x: np.maximum(x, 0), lambda x: (x > 0).astype(x.dtype)),
    "LeakyReLU": (lambda t: F.leaky_relu(t, SLOPE), lambda x: np.where(x > 0, x, SLOPE * x),
                  lambda x: np.where(x > 0, 1.0, SLOPE)),
    "Sigmoid": (F.sigmoid, lambda x: 1 / (1 + np.exp(-x)),
                lambda x: 1 / (1 + np.exp(-x)) * (1 - 1 / (1 + np.exp(-x)))),
    "Tanh": (F.tanh, np.tanh, lambda x: 1 - np.tanh(x) ** 2),
}


def value_and_derivative(fn, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """f(x) and f'(x) from numcnn's autograd: the gradient of sum(f(x)) is f'(x), element by element."""
    xt = nc.tensor(x, requires_grad=True)
    y = fn(xt)
    y.sum().backward()
    return y.numpy(), xt.grad.numpy()


def deep_net(activation: type, depth: int, width: int) -> nn.Sequential:
    """784 -> depth hidden layers of ``width`` with ``activation`` -> 10, initialised as the textbooks advise:
    Xavier for sigmoid and tanh, He (Kaiming) for ReLU."""
    layers, fan_in = [], 784
    for _ in range(depth):
        linear = nn.Linear(fan_in, width)
        if activation is nn.ReLU:
            nn.init.kaiming_normal_(linear.weight, nonlinearity="relu")
        else:
            nn.init.xavier_uniform_(linear.weight)
        nn.init.zeros_(linear.bias)
        layers += [linear, activation()]
        fan_in = width
    return nn.Sequential(*layers, nn.Linear(width, 10))


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ci", action="store_true", help="a smaller batch, for the test suite (< 15 s)")
    p.add_argument("--out", default="figures", help="folder for the figures (default: ./figures)")
    args = p.parse_args(argv)
    results: dict = {}

    print("1. Each activation and its derivative: autograd vs the textbook formula (float64, x in [-6, 6])")
    grid = np.linspace(-6, 6, 1201)  # contains 0: ReLU'(0) is 0 by convention, as in PyTorch
    curves = {}
    for name, (fn, f_hand, df_hand) in ACTIVATIONS.items():
        y, dy = value_and_derivative(fn, grid)
        curves[name] = (y, dy)
        err_f, err_df = float(np.abs(y - f_hand(grid)).max()), float(np.abs(dy - df_hand(grid)).max())
        results[f"{name}_max_abs_error"] = max(err_f, err_df)
        print(f"   {name:10s} max |f - formula| = {err_f:.1e}, max |f' - formula| = {err_df:.1e}, "
              f"f' ranges over [{dy.min():.4f}, {dy.max():.4f}]")
    sig_d = curves["Sigmoid"][1]
    results["sigmoid_max_derivative"] = float(sig_d.max())
    results["sigmoid_derivative_at_6"] = float(sig_d[-1])
    print(f"   sigmoid'(x) = s(1-s) is at most {sig_d.max():.4f} (at x = 0), {sig_d[-1]:.4f} at x = 6: "
          "a saturated unit passes almost no gradient")

    print("\n2. Backpropagation multiplies one derivative per layer: through L sigmoids the factor is <= 0.25^L")
    for depth in (1, 2, 5, 10):
        print(f"   L = {depth:2d}: 0.25^L = {0.25**depth:.1e}")

    depth, width = 8, 64
    n = 64 if args.ci else 1000
    data = FashionMNIST(train=True)
    x = nc.tensor(data.data[:n].reshape(n, -1).astype(np.float32) / 255)
    y = nc.tensor(data.targets[:n])
    print(f"\n3. A net with {depth} hidden layers (width {width}) on {n} Fashion-MNIST images: "
          "norm of dLoss/dW for each layer, input side first")
    grad_norms = {}
    for activation in (nn.Sigmoid, nn.Tanh, nn.ReLU):
        nc.manual_seed(0)
        model = deep_net(activation, depth, width)
        F.cross_entropy(model(x), y).backward()
        norms = [float(np.linalg.norm(m.weight.grad.numpy())) for m in model if isinstance(m, nn.Linear)]
        name = activation.__name__
        grad_norms[name] = norms
        # first hidden layer vs last hidden layer: how much of the gradient survives the trip back
        results[f"{name}_first_to_last_grad_ratio"] = norms[0] / norms[depth - 1]
        print(f"   {name:8s} " + " ".join(f"{v:.1e}" for v in norms[:depth])
              + f"   first/last = {norms[0] / norms[depth - 1]:.1e}")
    print(f"   with sigmoid the first layer gets {results['Sigmoid_first_to_last_grad_ratio']:.0e} of the last "
          "one's gradient: it barely learns.\n"
          "   tanh (derivative 1 at 0, zero-centred) and ReLU (derivative 1 where active) keep it flowing.")
    results["figures"] = save_figures(Path(args.out), grid, curves, grad_norms, depth)
    return results


def save_figures(out_dir: Path, grid, curves, grad_norms, depth) -> list[str]:
    plt = _pyplot()
    if plt is None:
        print("\n(matplotlib is not installed: no figures)")
        return []
    out_dir.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(1, 4, figsize=(16, 3.6))
    for ax, (name, (y, dy)) in zip(axes, curves.items()):
        ax.plot(grid, y, label="f(x)")
        ax.plot(grid, dy, "--", label="f'(x)")
        ax.axhline(0, color="gray", lw=0.5)
        ax.axvline(0, color="gray", lw=0.5)
        ax.set_title(name + (f" (slope {SLOPE})" if name == "LeakyReLU" else ""))
        ax.set_ylim(-1.5, 2.5 if name != "Tanh" else 1.5)
        ax.legend()
    fig.tight_layout()
    paths = [out_dir / "03_activations.png"]
    fig.savefig(paths[0], dpi=80)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6.5, 4))
    for name, norms in grad_norms.items():
        ax.semilogy(range(1, depth + 1), norms[:depth], "o-", label=name)
    ax.set_xlabel("hidden layer (1 = next to the input)")
    ax.set_ylabel("||dLoss/dW||")
    ax.set_title("gradient reaching each layer")
    ax.legend()
    fig.tight_layout()
    paths.append(out_dir / "03_vanishing_gradients.png")
    fig.savefig(paths[1], dpi=80)
    plt.close(fig)
    print(f"\nfigures: {', '.join(str(p) for p in paths)}")
    return [str(p) for p in paths]


if __name__ == "__main__":
    main()
