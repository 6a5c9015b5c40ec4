"""Tutorial 7: batch normalization, in training and in evaluation, and what it does for LeNet-5.

Shows the batch-norm formulas by hand next to numcnn's BatchNorm2d: in train mode each channel is normalised
with the batch's own mean and (biased) variance while running averages are updated (momentum 0.1, unbiased
variance, as PyTorch); in eval mode the running averages are used, so an image's output no longer depends on
the rest of its batch. Then the running statistics converging to the data's, and LeNet-5 trained with and
without batch norm on Fashion-MNIST from the same start: the BN version learns much faster.

    python docs/tutorials/07_batch_norm.py --out figures       # LeNet-5 for 1 epoch of 60,000 images
    python docs/tutorials/07_batch_norm.py --ci --out figures  # 100 steps
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

import numcnn as nc
import numcnn.nn as nn
import numcnn.nn.functional as F
from numcnn.data import FashionMNIST
from numcnn.models import get as get_model
from numcnn.utils.visualize import pyplot as _pyplot


def lenet5(batchnorm: bool) -> nn.Module:
    """LeNet-5 (tanh, average pooling) for 28x28 images, with BatchNorm2d after each convolution if asked."""
    return get_model("lenet5", batchnorm=batchnorm)


def batch_norm_train_by_hand(x, gamma, beta, running_mean, running_var, momentum=0.1, eps=1e-5):
    """x: (N, C, H, W). Statistics per channel, over the N*H*W values of that channel.

        mu = mean(x), var = mean((x - mu)^2)          (biased: divide by m = N*H*W)
        y  = gamma * (x - mu) / sqrt(var + eps) + beta
        running_mean <- (1 - momentum) running_mean + momentum mu
        running_var  <- (1 - momentum) running_var  + momentum var * m / (m - 1)    (unbiased)
    """
    axes, m = (0, 2, 3), x.size // x.shape[1]
    mu, var = x.mean(axis=axes), x.var(axis=axes)
    y = gamma[:, None, None] * (x - mu[:, None, None]) / np.sqrt(var[:, None, None] + eps) + beta[:, None, None]
    new_mean = (1 - momentum) * running_mean + momentum * mu
    new_var = (1 - momentum) * running_var + momentum * var * m / (m - 1)
    return y, new_mean, new_var


def batch_norm_eval_by_hand(x, gamma, beta, running_mean, running_var, eps=1e-5):
    """The same affine map for every batch: the running statistics replace the batch's."""
    scale = gamma / np.sqrt(running_var + eps)
    return scale[:, None, None] * (x - running_mean[:, None, None]) + beta[:, None, None]


def section_formulas(rng) -> dict:
    print("1. Train mode: BatchNorm2d(3) vs the formulas, on a batch (8, 3, 4, 4) with mean 5 and std 2")
    x = (5 + 2 * rng.standard_normal((8, 3, 4, 4))).astype(np.float32)
    bn = nn.BatchNorm2d(3)
    with nc.no_grad():  # a non-trivial scale and shift, to check they are applied
        bn.weight.numpy()[:] = [1.0, 2.0, 0.5]
        bn.bias.numpy()[:] = [0.0, -1.0, 3.0]
    gamma, beta = bn.weight.numpy().copy(), bn.bias.numpy().copy()
    y_hand, mean_hand, var_hand = batch_norm_train_by_hand(x, gamma, beta, np.zeros(3, np.float32),
                                                           np.ones(3, np.float32))
    y = bn(nc.tensor(x)).numpy()
    out = {"train_output_max_abs_diff": float(np.abs(y - y_hand).max()),
           "running_mean_max_abs_diff": float(np.abs(bn.running_mean.numpy() - mean_hand).max()),
           "running_var_max_abs_diff": float(np.abs(bn.running_var.numpy() - var_hand).max())}
    z = (y - beta[:, None, None]) / gamma[:, None, None]
    print(f"   normalised channels (before gamma, beta): largest |mean| {np.abs(z.mean(axis=(0, 2, 3))).max():.1e}, "
          f"variances {np.round(z.var(axis=(0, 2, 3)), 4)}")
    print(f"   max |numcnn - formula|: output {out['train_output_max_abs_diff']:.1e}, running mean "
          f"{out['running_mean_max_abs_diff']:.1e}, running var {out['running_var_max_abs_diff']:.1e}")
    print(f"   running_mean after one batch: {np.round(bn.running_mean.numpy(), 4)} (= 0.9*0 + 0.1*mu)")

    print("\n2. Eval mode uses the running statistics")
    bn.eval()
    y_eval = bn(nc.tensor(x)).numpy()
    y_eval_hand = batch_norm_eval_by_hand(x, gamma, beta, bn.running_mean.numpy(), bn.running_var.numpy())
    out["eval_output_max_abs_diff"] = float(np.abs(y_eval - y_eval_hand).max())
    print(f"   max |numcnn eval - formula| = {out['eval_output_max_abs_diff']:.1e}")

    # The first image's output, inside two different batches.
    other = (5 + 2 * rng.standard_normal((8, 3, 4, 4))).astype(np.float32)
    other[0] = x[0]
    out_dependence = {}
    for mode in ("train", "eval"):
        probe = nn.BatchNorm2d(3)
        probe.train(mode == "train")
        first = [probe(nc.tensor(batch)).numpy()[0] for batch in (x, other)]
        out_dependence[mode] = float(np.abs(first[0] - first[1]).max())
    out["batch_dependence_train"], out["batch_dependence_eval"] = out_dependence["train"], out_dependence["eval"]
    print(f"   image 0 in two different batches: its outputs differ by {out_dependence['train']:.3f} in train "
          f"mode, {out_dependence['eval']:.1e} in eval mode")
    print("   (so call model.eval() before testing: one test image must not change another's prediction)")
    return out


def section_running_stats(rng, steps: int) -> dict:
    print(f"\n3. Running statistics over {steps} batches drawn from N(3, 2^2)")
    bn = nn.BatchNorm2d(1)
    means, variances = [], []
    for _ in range(steps):
        bn(nc.tensor((3 + 2 * rng.standard_normal((32, 1, 8, 8))).astype(np.float32)))
        means.append(float(bn.running_mean.numpy()[0]))
        variances.append(float(bn.running_var.numpy()[0]))
    print(f"   after {steps} batches: running mean {means[-1]:.3f} (true 3), running var {variances[-1]:.3f} "
          "(true 4); the start's weight decays as 0.9^k")
    return {"running_means": means, "running_vars": variances}


def section_lenet(steps: int, n_train: int, lr: float) -> dict:
    print(f"\n4. LeNet-5 with and without batch norm: SGD lr {lr}, {steps} steps of 50 images (from {n_train}),\n"
          "   the same initial weights where they exist and the same batches")
    train, test = FashionMNIST(train=True), FashionMNIST(train=False)
    x_test = nc.tensor(test.data[:1000, None].astype(np.float32) / 255)
    curves, accuracy = {}, {}
    for batchnorm in (False, True):
        nc.manual_seed(0)
        model = lenet5(batchnorm)
        opt = nc.optim.SGD(model.parameters(), lr=lr)
        rng, losses = np.random.default_rng(0), []
        for _ in range(steps):
            idx = rng.integers(0, n_train, 50)
            loss = F.cross_entropy(model(nc.tensor(train.data[idx, None].astype(np.float32) / 255)),
                                   nc.tensor(train.targets[idx]))
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
        model.eval()
        with nc.no_grad():
            accuracy[batchnorm] = float((model(x_test).numpy().argmax(1) == test.targets[:1000]).mean())
        curves[batchnorm] = losses
        print(f"   batchnorm={batchnorm!s:5s}: loss {np.mean(losses[:10]):.3f} (first 10 steps) -> "
              f"{np.mean(losses[-10:]):.3f} (last 10), test accuracy {accuracy[batchnorm]:.1%}")
    print("   Normalising each layer's input keeps tanh out of saturation and the gradients well scaled.")
    return {"lenet_losses": curves[False], "lenet_bn_losses": curves[True],
            "lenet_final_loss": float(np.mean(curves[False][-10:])),
            "lenet_bn_final_loss": float(np.mean(curves[True][-10:])),
            "lenet_test_accuracy": accuracy[False], "lenet_bn_test_accuracy": accuracy[True]}


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ci", action="store_true", help="100 LeNet-5 steps, for the test suite (< 15 s)")
    p.add_argument("--out", default="figures", help="folder for the figures (default: ./figures)")
    p.add_argument("--lr", type=float, default=0.05, help="SGD learning rate for LeNet-5 (default 0.05)")
    args = p.parse_args(argv)
    nc.manual_seed(0)
    rng = np.random.default_rng(0)
    results = section_formulas(rng)
    results.update(section_running_stats(rng, 60))
    results.update(section_lenet(100 if args.ci else 1200, 4000 if args.ci else 60000, args.lr))
    results["figures"] = save_figures(Path(args.out), results)
    return results


def save_figures(out_dir: Path, r: dict) -> list[str]:
    plt = _pyplot()
    if plt is None:
        print("\n(matplotlib is not installed: no figures)")
        return []
    out_dir.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    steps = np.arange(1, len(r["running_means"]) + 1)
    axes[0].plot(steps, r["running_means"], label="running_mean")
    axes[0].plot(steps, r["running_vars"], label="running_var")
    axes[0].axhline(3, ls=":", color="tab:blue")
    axes[0].axhline(4, ls=":", color="tab:orange")
    axes[0].set_xlabel("batch")
    axes[0].set_title("running statistics (true: mean 3, var 4)")
    axes[0].legend()
    k = max(1, len(r["lenet_losses"]) // 30)
    for key, label in (("lenet_losses", "LeNet-5"), ("lenet_bn_losses", "LeNet-5 + BatchNorm")):
        axes[1].plot(np.convolve(r[key], np.ones(k) / k, mode="valid"), label=label)
    axes[1].set_xlabel("step")
    axes[1].set_ylabel(f"training loss ({k}-step mean)")
    axes[1].set_title("same SGD, same batches")
    axes[1].legend()
    fig.tight_layout()
    paths = [out_dir / "07_batch_norm.png"]
    fig.savefig(paths[0], dpi=80)
    plt.close(fig)
    print(f"\nfigures: {', '.join(str(p) for p in paths)}")
    return [str(p) for p in paths]


if __name__ == "__main__":
    main()
