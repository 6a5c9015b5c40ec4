"""Tutorial 4: a shallow CNN differentiated by hand, checked against numcnn's autograd, then trained.

Shows the network small enough to differentiate on paper: conv 3x3 -> sigmoid -> 2x2 max-pool -> fully
connected -> sigmoid, with an L2 loss against one-hot targets. Its forward and backward passes are written
out with the chain rule in NumPy, the hand gradients are compared with numcnn's autograd (equal to 1e-6 in
float64, in practice to rounding), and then the hand-written SGD and numcnn's SGD train side by side on
Fashion-MNIST from the same starting weights and stay equal step after step.

    python docs/tutorials/04_shallow_network.py --out figures       # 3 epochs on all 60,000 images
    python docs/tutorials/04_shallow_network.py --ci --out figures  # 6,000 images, 1 epoch
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

import numcnn as nc
import numcnn.nn.functional as F
from numcnn.data import FashionMNIST
from numcnn.models import get as get_model
from numcnn.utils.visualize import pyplot as _pyplot


def shallow_net(channels: int) -> nc.nn.Module:
    """conv(1 -> channels, 3x3) -> sigmoid -> maxpool 2 -> flatten -> fc(channels*13*13 -> 10) -> sigmoid."""
    return get_model("shallow", channels=channels)


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-z))


def forward(params: dict, x: np.ndarray) -> tuple[np.ndarray, dict]:
    """x: (N, 1, 28, 28) -> y: (N, 10), and what backward needs.

        z1 = W1 * x + b1          (N, C, 26, 26)   * is the 3x3 'valid' cross-correlation
        a1 = sigmoid(z1)
        p1 = maxpool2x2(a1)       (N, C, 13, 13)
        f  = flatten(p1)          (N, C*169)
        z2 = f W2^T + b2          (N, 10)
        y  = sigmoid(z2)
    """
    w1, b1, w2, b2 = params["W1"], params["b1"], params["W2"], params["b2"]
    n, c = x.shape[0], w1.shape[0]
    z1 = np.zeros((n, c, 26, 26), dtype=x.dtype) + b1[None, :, None, None]
    for r in range(3):  # one shifted copy of the image per kernel tap
        for s in range(3):
            z1 += np.einsum("nihw,ki->nkhw", x[:, :, r : r + 26, s : s + 26], w1[:, :, r, s])
    a1 = sigmoid(z1)
    # Group the four pixels of every 2x2 window on a last axis (in row-major order) and take the max.
    windows = a1.reshape(n, c, 13, 2, 13, 2).transpose(0, 1, 2, 4, 3, 5).reshape(n, c, 13, 13, 4)
    arg = windows.argmax(axis=-1)  # the first maximum, as numcnn and PyTorch pick on ties
    p1 = np.take_along_axis(windows, arg[..., None], axis=-1)[..., 0]
    f = p1.reshape(n, -1)
    y = sigmoid(f @ w2.T + b2)
    return y, {"x": x, "a1": a1, "arg": arg, "f": f, "y": y}


def l2_loss(y: np.ndarray, t: np.ndarray) -> float:
    """L = mean over the N*10 outputs of (y - t)^2: numcnn's F.mse_loss against the one-hot targets t."""
    return float(((y - t) ** 2).mean())


def backward(params: dict, cache: dict, t: np.ndarray) -> dict:
    """dL/dW1, dL/db1, dL/dW2, dL/db2 by the chain rule, from the output back to the input.

        dL/dy  = 2 (y - t) / (N*10)
        dL/dz2 = dL/dy * y (1 - y)                    sigmoid' = y (1 - y)
        dL/dW2 = dL/dz2^T f,   dL/db2 = sum_n dL/dz2
        dL/df  = dL/dz2 W2  -> reshaped to dL/dp1
        dL/da1 = dL/dp1 at each window's arg-max, 0 elsewhere
        dL/dz1 = dL/da1 * a1 (1 - a1)
        dL/dW1[k, i, r, s] = sum_{n,h,w} dL/dz1[n, k, h, w] x[n, i, h + r, w + s],   dL/db1 = sum_{n,h,w} dL/dz1
    """
    x, a1, arg, f, y = cache["x"], cache["a1"], cache["arg"], cache["f"], cache["y"]
    n, c = x.shape[0], a1.shape[1]
    dy = 2 * (y - t) / y.size
    dz2 = dy * y * (1 - y)
    grads = {"W2": dz2.T @ f, "b2": dz2.sum(axis=0)}
    dp1 = (dz2 @ params["W2"]).reshape(n, c, 13, 13)
    dwindows = np.zeros((n, c, 13, 13, 4), dtype=x.dtype)
    np.put_along_axis(dwindows, arg[..., None], dp1[..., None], axis=-1)
    da1 = dwindows.reshape(n, c, 13, 13, 2, 2).transpose(0, 1, 2, 4, 3, 5).reshape(n, c, 26, 26)
    dz1 = da1 * a1 * (1 - a1)
    dw1 = np.empty_like(params["W1"])
    for r in range(3):
        for s in range(3):
            dw1[:, :, r, s] = np.einsum("nkhw,nihw->ki", dz1, x[:, :, r : r + 26, s : s + 26])
    grads["W1"], grads["b1"] = dw1, dz1.sum(axis=(0, 2, 3))
    return grads


def params_of(model) -> dict:
    """The model's weights as a dict of ndarray copies, under the names the hand-written passes use."""
    state = {k: v.numpy().copy() for k, v in model.state_dict().items()}
    conv, fc = [k.rsplit(".", 1)[0] for k in state if k.endswith("weight")]
    return {"W1": state[f"{conv}.weight"], "b1": state[f"{conv}.bias"],
            "W2": state[f"{fc}.weight"], "b2": state[f"{fc}.bias"]}


def autograd_grads(model) -> dict:
    tensors = [p for _, p in model.named_parameters()]
    return dict(zip(("W1", "b1", "W2", "b2"), (p.grad.numpy() for p in tensors)))


def one_hot(labels: np.ndarray, dtype) -> np.ndarray:
    return np.eye(10, dtype=dtype)[labels]


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ci", action="store_true", help="6,000 training images and 1 epoch, for the test suite")
    p.add_argument("--out", default="figures", help="folder for the figures (default: ./figures)")
    p.add_argument("--channels", type=int, default=4, help="filters in the convolution (default 4)")
    p.add_argument("--lr", type=float, default=1.0, help="SGD learning rate (default 1.0)")
    p.add_argument("--batch-size", type=int, default=8, help="images per SGD step (default 8)")
    args = p.parse_args(argv)
    results: dict = {}

    train, test = FashionMNIST(train=True), FashionMNIST(train=False)
    n_train, n_test, epochs = (6000, 1000, 1) if args.ci else (len(train), len(test), 3)
    # float64 throughout: the hand-written and the autograd gradients then agree to rounding (~1e-17).
    x_train = train.data[:n_train, None].astype(np.float64) / 255
    t_train = train.targets[:n_train]
    x_test, t_test = test.data[:n_test, None].astype(np.float64) / 255, test.targets[:n_test]

    nc.manual_seed(0)
    model = shallow_net(args.channels).double()
    print(f"The network:\n{model}\n")

    print("1. One batch of 8 images: hand-derived gradients vs numcnn's autograd (float64)")
    x, t = x_train[:8], one_hot(t_train[:8], np.float64)
    params = params_of(model)
    y, cache = forward(params, x)
    hand = backward(params, cache, t)
    out = model(nc.tensor(x))
    loss = F.mse_loss(out, nc.tensor(t))
    loss.backward()
    auto = autograd_grads(model)
    results["forward_max_abs_diff"] = float(np.abs(y - out.numpy()).max())
    results["loss_abs_diff"] = abs(l2_loss(y, t) - loss.item())
    results["grad_max_abs_diff"] = {k: float(np.abs(hand[k] - auto[k]).max()) for k in hand}
    print(f"   outputs: max |hand - numcnn| = {results['forward_max_abs_diff']:.1e}; "
          f"loss {l2_loss(y, t):.10f} vs {loss.item():.10f}")
    for k in ("W1", "b1", "W2", "b2"):
        print(f"   dL/d{k:2s} {str(hand[k].shape):16s} max |hand - autograd| = {results['grad_max_abs_diff'][k]:.1e}"
              f"   (largest entry {np.abs(auto[k]).max():.1e})")

    print(f"\n2. Training side by side: hand-written SGD and numcnn's optim.SGD, lr {args.lr}, batch "
          f"{args.batch_size}, {n_train} images, {epochs} epoch(s)")
    opt = nc.optim.SGD(model.parameters(), lr=args.lr)
    params = params_of(model)
    rng = np.random.default_rng(0)
    losses_hand, losses_auto, t0 = [], [], time.perf_counter()
    for epoch in range(1, epochs + 1):
        order = rng.permutation(n_train)
        for start in range(0, n_train, args.batch_size):
            idx = order[start : start + args.batch_size]
            x, t = x_train[idx], one_hot(t_train[idx], np.float64)
            y, cache = forward(params, x)
            grads = backward(params, cache, t)
            for k in params:
                params[k] -= args.lr * grads[k]  # plain SGD: w <- w - lr * dL/dw
            loss = F.mse_loss(model(nc.tensor(x)), nc.tensor(t))
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses_hand.append(l2_loss(y, t))
            losses_auto.append(loss.item())
        print(f"   epoch {epoch}: mean loss hand {np.mean(losses_hand[-len(order) // args.batch_size:]):.4f}, "
              f"numcnn {np.mean(losses_auto[-len(order) // args.batch_size:]):.4f}")
    final = params_of(model)
    results["param_max_abs_diff_after_training"] = max(float(np.abs(params[k] - final[k]).max()) for k in params)
    results["loss_max_abs_diff_during_training"] = float(np.abs(np.subtract(losses_hand, losses_auto)).max())
    results["losses"] = losses_auto
    results["train_seconds"] = time.perf_counter() - t0
    print(f"   after {len(losses_auto)} steps: max |hand weights - numcnn weights| = "
          f"{results['param_max_abs_diff_after_training']:.1e}")

    y_hand = forward(params, x_test)[0]
    with nc.no_grad():
        y_auto = model(nc.tensor(x_test)).numpy()
    results["test_accuracy_hand"] = float((y_hand.argmax(1) == t_test).mean())
    results["test_accuracy"] = float((y_auto.argmax(1) == t_test).mean())
    print(f"\n3. Test accuracy on {n_test} Fashion-MNIST test images (the largest of the 10 sigmoid outputs): "
          f"hand {results['test_accuracy_hand']:.2%}, numcnn {results['test_accuracy']:.2%}")
    results["figures"] = save_figures(Path(args.out), losses_hand, losses_auto, final["W1"])
    return results


def save_figures(out_dir: Path, losses_hand, losses_auto, w1) -> list[str]:
    plt = _pyplot()
    if plt is None:
        print("\n(matplotlib is not installed: no figures)")
        return []
    out_dir.mkdir(parents=True, exist_ok=True)
    fig = plt.figure(figsize=(11, 3.8))
    ax = fig.add_subplot(1, 2, 1)
    k = max(1, len(losses_auto) // 50)
    smooth = np.convolve(losses_auto, np.ones(k) / k, mode="valid")
    ax.plot(losses_hand, color="tab:orange", alpha=0.4, label="hand-written SGD (per batch)")
    ax.plot(np.arange(len(smooth)) + k - 1, smooth, color="tab:blue", label=f"numcnn SGD ({k}-batch mean)")
    ax.set_xlabel("step")
    ax.set_ylabel("L2 loss")
    ax.set_title("the two trainings give the same losses")
    ax.legend()
    for i in range(w1.shape[0]):
        # the middle row of a 3-row grid, in the right half of the figure
        a = fig.add_subplot(3, 2 * w1.shape[0], 3 * w1.shape[0] + i + 1)
        a.imshow(w1[i, 0], cmap="bwr")
        a.set_title(f"learned filter {i}", fontsize=8)
        a.axis("off")
    fig.tight_layout()
    paths = [out_dir / "04_shallow_training.png"]
    fig.savefig(paths[0], dpi=80)
    plt.close(fig)
    print(f"\nfigures: {', '.join(str(p) for p in paths)}")
    return [str(p) for p in paths]


if __name__ == "__main__":
    main()
