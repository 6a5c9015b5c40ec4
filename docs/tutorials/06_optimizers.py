"""Tutorial 6: optimizers, and regularization against overfitting.

Shows the update rules of SGD, Momentum, AdaGrad, RMSprop, Adam and AdamW written by hand and checked
against numcnn.optim on the textbook's elongated bowl f(x, y) = x^2/20 + y^2 (paths drawn on its contours);
their loss curves training the same network on Fashion-MNIST, in one plot; and then overfitting on a small
training set (300 images), with L2 and L1 penalties and dropout each narrowing the gap between training
and test loss. Also checks that an L2 penalty added to the loss is SGD's weight_decay.

    python docs/tutorials/06_optimizers.py --out figures       # about a minute
    python docs/tutorials/06_optimizers.py --ci --out figures  # a few seconds
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

# ---------------------------------------------------------------------------------------------------------
# 1. The update rules, as PyTorch (and so numcnn) define them. g is the gradient, s the optimizer's state.


def sgd(p, g, s, lr):
    p -= lr * g


def momentum(p, g, s, lr, mu=0.9):
    # v <- mu v + g; p <- p - lr v (the textbook's v <- mu v - lr g; p <- p + v, scaled by -lr)
    s["v"] = mu * s.get("v", 0.0) + g
    p -= lr * s["v"]


def adagrad(p, g, s, lr, eps=1e-10):
    # h sums every squared gradient: steps shrink fastest along the steep directions
    s["h"] = s.get("h", 0.0) + g * g
    p -= lr * g / (np.sqrt(s["h"]) + eps)


def rmsprop(p, g, s, lr, alpha=0.99, eps=1e-8):
    # like AdaGrad, but old squared gradients fade away (a moving average), so steps never stop
    s["v"] = alpha * s.get("v", 0.0) + (1 - alpha) * g * g
    p -= lr * g / (np.sqrt(s["v"]) + eps)


def adam(p, g, s, lr, beta1=0.9, beta2=0.999, eps=1e-8, decoupled_weight_decay=0.0):
    # momentum (m) + RMSprop (v), both started at 0 and divided by (1 - beta^t) to undo that bias
    s["t"] = s.get("t", 0) + 1
    p *= 1 - lr * decoupled_weight_decay  # AdamW: shrink the weights directly, outside the adaptive step
    s["m"] = beta1 * s.get("m", 0.0) + (1 - beta1) * g
    s["v"] = beta2 * s.get("v", 0.0) + (1 - beta2) * g * g
    m_hat, v_hat = s["m"] / (1 - beta1 ** s["t"]), s["v"] / (1 - beta2 ** s["t"])
    p -= lr * m_hat / (np.sqrt(v_hat) + eps)


# name -> (hand-written rule, numcnn optimizer class, keyword arguments of both, learning rate on the bowl)
OPTIMIZERS = {
    "SGD": (sgd, nc.optim.SGD, {}, 0.95),
    "Momentum": (momentum, nc.optim.SGD, {"momentum": 0.9}, 0.1),
    "AdaGrad": (adagrad, nc.optim.Adagrad, {}, 1.5),
    "RMSprop": (rmsprop, nc.optim.RMSprop, {}, 0.1),
    "Adam": (adam, nc.optim.Adam, {}, 0.3),
    "AdamW": (adam, nc.optim.AdamW, {"weight_decay": 0.1}, 0.3),
}


def _hand_kwargs(name: str, kwargs: dict) -> dict:
    if name == "Momentum":
        return {"mu": kwargs["momentum"]}
    if name == "AdamW":
        return {"decoupled_weight_decay": kwargs["weight_decay"]}
    return {}


def bowl(x, y):
    """The textbook's test function: 20 times steeper along y than along x; minimum at (0, 0)."""
    return x**2 / 20 + y**2


def paths_on_the_bowl(steps: int) -> tuple[dict, dict, float]:
    """Run every optimizer from (-7, 2) by hand and with numcnn; return both paths and the worst gap."""
    hand_paths, numcnn_paths, worst = {}, {}, 0.0
    for name, (rule, cls, kwargs, lr) in OPTIMIZERS.items():
        p, state, path = np.array([-7.0, 2.0]), {}, [np.array([-7.0, 2.0])]
        for _ in range(steps):
            g = np.array([p[0] / 10, 2 * p[1]])  # the gradient of the bowl, by hand
            rule(p, g, state, lr, **_hand_kwargs(name, kwargs))
            path.append(p.copy())
        hand_paths[name] = np.array(path)

        q = nc.tensor(np.array([-7.0, 2.0]), requires_grad=True)  # float64, like the hand-written path
        opt = cls([q], lr=lr, **kwargs)
        path = [q.numpy().copy()]
        for _ in range(steps):
            opt.zero_grad()
            bowl(q[0], q[1]).backward()
            opt.step()
            path.append(q.numpy().copy())
        numcnn_paths[name] = np.array(path)
        worst = max(worst, float(np.abs(hand_paths[name] - numcnn_paths[name]).max()))
    return hand_paths, numcnn_paths, worst


# ---------------------------------------------------------------------------------------------------------
# 2. and 3. Training networks


def mlp(width: int, depth: int, dropout: float = 0.0) -> nn.Sequential:
    """784 -> depth x (Linear(width), ReLU[, Dropout]) -> 10, PyTorch's default initialisation."""
    layers, fan_in = [], 784
    for _ in range(depth):
        layers += [nn.Linear(fan_in, width), nn.ReLU()] + ([nn.Dropout(dropout)] if dropout else [])
        fan_in = width
    return nn.Sequential(*layers, nn.Linear(fan_in, 10))


def flat_images(ds, n: int, offset: int = 0) -> tuple[nc.Tensor, np.ndarray]:
    x = ds.data[offset : offset + n].reshape(n, -1).astype(np.float32) / 255
    return nc.tensor(x), ds.targets[offset : offset + n]


def loss_and_accuracy(model, x: nc.Tensor, labels: np.ndarray) -> tuple[float, float]:
    model.eval()
    with nc.no_grad():
        out = model(x)
        loss = F.cross_entropy(out, nc.tensor(labels)).item()
    model.train()
    return loss, float((out.numpy().argmax(1) == labels).mean())


def optimizer_curves(train, steps: int, n_images: int, batch: int) -> dict:
    """The same network, initial weights and batches for every optimizer; the loss of every step."""
    x, labels = flat_images(train, n_images)
    settings = {"SGD": {"lr": 0.05}, "Momentum": {"lr": 0.05, "momentum": 0.9}, "AdaGrad": {"lr": 0.01},
                "RMSprop": {"lr": 1e-3}, "Adam": {"lr": 1e-3}, "AdamW": {"lr": 1e-3, "weight_decay": 0.01}}
    curves = {}
    for name, kwargs in settings.items():
        nc.manual_seed(0)
        model = mlp(100, 4)
        opt = OPTIMIZERS[name][1](model.parameters(), **kwargs)
        rng, losses = np.random.default_rng(0), []
        for _ in range(steps):
            idx = rng.integers(0, n_images, batch)
            loss = F.cross_entropy(model(x[idx]), nc.tensor(labels[idx]))
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
        curves[name] = losses
    return curves


def penalties_are_weight_decay() -> dict:
    """One SGD step with loss + l2_penalty(lambda) equals one with weight_decay=lambda; the L1 penalty's
    gradient is lambda * sign(W)."""
    lam, lr = 0.1, 0.5
    rng = np.random.default_rng(0)
    x, y = nc.tensor(rng.standard_normal((8, 5)).astype(np.float32)), nc.tensor(rng.integers(0, 3, 8))
    models = []
    for penalty_in_loss in (True, False):
        nc.manual_seed(0)
        model = nn.Linear(5, 3)
        opt = nc.optim.SGD(model.parameters(), lr=lr, weight_decay=0.0 if penalty_in_loss else lam)
        loss = F.cross_entropy(model(x), y)
        if penalty_in_loss:
            loss = loss + nn.utils.l2_penalty(model, lam)  # 0.5 * lambda * sum W^2, gradient lambda * W
        opt.zero_grad()
        loss.backward()
        opt.step()
        models.append(model)
    l2_gap = max(float(np.abs(a.numpy() - b.numpy()).max())
                 for a, b in zip(models[0].parameters(), models[1].parameters()))

    w = nc.tensor(rng.standard_normal((4, 4)).astype(np.float32), requires_grad=True)
    nn.utils.l1_penalty([w], lam).backward()
    l1_gap = float(np.abs(w.grad.numpy() - lam * np.sign(w.numpy())).max())
    return {"l2_penalty_vs_weight_decay": l2_gap, "l1_grad_vs_sign": l1_gap}


def overfitting(train, test, epochs: int, every: int) -> dict:
    """300 training images, a 2 x 256 network, Adam, with no regularization, L2, L1 or dropout."""
    x, labels = flat_images(train, 300)
    x_test, labels_test = flat_images(test, 1000)
    configs = {"none": {}, "L2 (lambda 0.03)": {"l2": 0.03}, "L1 (lambda 1e-3)": {"l1": 1e-3},
               "dropout (p 0.5)": {"dropout": 0.5}}
    runs = {}
    for name, cfg in configs.items():
        nc.manual_seed(0)
        model = mlp(256, 2, cfg.get("dropout", 0.0))
        opt = nc.optim.Adam(model.parameters(), lr=1e-3)
        rng = np.random.default_rng(0)
        curve = {"epoch": [], "train_loss": [], "test_loss": [], "train_accuracy": [], "test_accuracy": []}
        for epoch in range(1, epochs + 1):
            order = rng.permutation(300)
            for start in range(0, 300, 100):
                idx = order[start : start + 100]
                loss = F.cross_entropy(model(x[idx]), nc.tensor(labels[idx]))
                if "l2" in cfg:  # weights only: biases and the like are not penalised
                    loss = loss + nn.utils.l2_penalty(model, cfg["l2"], biases=False)
                if "l1" in cfg:
                    loss = loss + nn.utils.l1_penalty(model, cfg["l1"], biases=False)
                opt.zero_grad()
                loss.backward()
                opt.step()
            if epoch % every == 0 or epoch == epochs:
                curve["epoch"].append(epoch)
                for split, (xs, ys) in (("train", (x, labels)), ("test", (x_test, labels_test))):
                    loss_value, acc = loss_and_accuracy(model, xs, ys)
                    curve[f"{split}_loss"].append(loss_value)
                    curve[f"{split}_accuracy"].append(acc)
        runs[name] = curve
    return runs


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ci", action="store_true", help="fewer steps and epochs, for the test suite (< 15 s)")
    p.add_argument("--out", default="figures", help="folder for the figures (default: ./figures)")
    args = p.parse_args(argv)
    results: dict = {}

    print("1. Six update rules by hand vs numcnn.optim, 30 steps on f(x, y) = x^2/20 + y^2 from (-7, 2)")
    hand_paths, numcnn_paths, worst = paths_on_the_bowl(30)
    results["bowl_max_abs_diff"] = worst
    results["bowl_final_distance"] = {k: float(np.hypot(*v[-1])) for k, v in numcnn_paths.items()}
    for name, path in numcnn_paths.items():
        print(f"   {name:9s} lr {OPTIMIZERS[name][3]:<5} ends at ({path[-1][0]:7.3f}, {path[-1][1]:7.3f}), "
              f"f = {bowl(*path[-1]):.4f}")
    print(f"   max |hand-written - numcnn| over every point of every path: {worst:.1e}")

    train, test = FashionMNIST(train=True), FashionMNIST(train=False)
    steps = 150 if args.ci else 2000
    n_images = 5000 if args.ci else 60000
    print(f"\n2. A 784-100-100-100-100-10 ReLU net, {steps} steps of 128 images from {n_images} Fashion-MNIST images")
    curves = optimizer_curves(train, steps, n_images, 128)
    results["optimizer_losses"] = curves
    for name, losses in curves.items():
        print(f"   {name:9s} loss: first step {losses[0]:.3f}, mean of the last 20 steps {np.mean(losses[-20:]):.3f}")

    print("\n3. Regularization terms")
    results.update(penalties_are_weight_decay())
    print(f"   SGD step with loss + l2_penalty(0.1) vs SGD(weight_decay=0.1): max difference "
          f"{results['l2_penalty_vs_weight_decay']:.1e}")
    print(f"   gradient of l1_penalty(0.1) vs 0.1 * sign(W): max difference {results['l1_grad_vs_sign']:.1e}")

    epochs = 60 if args.ci else 200
    print(f"\n4. Overfitting: 300 training images, 2 x 256 ReLU net, Adam 1e-3, {epochs} epochs; "
          "1000 test images")
    runs = overfitting(train, test, epochs, every=5)
    results["overfitting"] = {}
    print(f"   {'':18s} {'train loss':>10s} {'test loss':>10s} {'train acc':>10s} {'test acc':>9s}")
    for name, c in runs.items():
        final = {k: c[k][-1] for k in ("train_loss", "test_loss", "train_accuracy", "test_accuracy")}
        results["overfitting"][name] = final
        print(f"   {name:18s} {final['train_loss']:10.3f} {final['test_loss']:10.3f} "
              f"{final['train_accuracy']:10.1%} {final['test_accuracy']:9.1%}")
    none = runs["none"]
    best = int(np.argmin(none["test_loss"]))
    print(f"   Unregularized, the net memorizes the 300 images: its test loss is lowest at epoch {none['epoch'][best]} "
          f"({none['test_loss'][best]:.3f}),\n   then climbs to {none['test_loss'][-1]:.3f} while the training loss "
          f"goes to {none['train_loss'][-1]:.3f}. Final test loss with each regularizer, relative to none:")
    for name in list(runs)[1:]:
        change = runs[name]["test_loss"][-1] / none["test_loss"][-1] - 1
        print(f"     {name:18s} {change:+.0%}")
    results["figures"] = save_figures(Path(args.out), numcnn_paths, curves, runs)
    return results


def save_figures(out_dir: Path, paths_by_name: dict, curves: dict, runs: dict) -> list[str]:
    plt = _pyplot()
    if plt is None:
        print("\n(matplotlib is not installed: no figures)")
        return []
    out_dir.mkdir(parents=True, exist_ok=True)
    files = []
    gx, gy = np.meshgrid(np.linspace(-10, 10, 200), np.linspace(-5, 5, 200))
    fig, axes = plt.subplots(2, 3, figsize=(13, 6.5))
    for ax, (name, path) in zip(axes.ravel(), paths_by_name.items()):
        ax.contour(gx, gy, bowl(gx, gy), levels=20, colors="lightgray")
        ax.plot(path[:, 0], path[:, 1], "o-", color="tab:red", ms=3)
        ax.plot(0, 0, "+", color="k", ms=12)
        ax.set_title(name)
        ax.set_xlim(-10, 10)
        ax.set_ylim(-5, 5)
    fig.tight_layout()
    files.append(out_dir / "06_optimizer_paths.png")
    fig.savefig(files[-1], dpi=80)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, losses in curves.items():
        k = max(1, len(losses) // 40)
        ax.plot(np.convolve(losses, np.ones(k) / k, mode="valid"), label=name)
    ax.set_xlabel("step")
    ax.set_ylabel(f"training loss ({k}-step mean)")
    ax.set_yscale("log")
    ax.set_title("Fashion-MNIST, same network and batches")
    ax.legend()
    fig.tight_layout()
    files.append(out_dir / "06_optimizer_losses.png")
    fig.savefig(files[-1], dpi=80)
    plt.close(fig)

    fig, axes = plt.subplots(1, len(runs), figsize=(4 * len(runs), 3.6), sharey=True)
    for ax, (name, c) in zip(axes, runs.items()):
        ax.plot(c["epoch"], c["train_loss"], label="train")
        ax.plot(c["epoch"], c["test_loss"], label="test")
        ax.set_title(name)
        ax.set_xlabel("epoch")
        ax.set_yscale("log")
    axes[0].set_ylabel("cross-entropy")
    axes[0].legend()
    fig.tight_layout()
    files.append(out_dir / "06_overfitting.png")
    fig.savefig(files[-1], dpi=80)
    plt.close(fig)
    print(f"\nfigures: {', '.join(str(f) for f in files)}")
    return [str(f) for f in files]


if __name__ == "__main__":
    main()
