"""Tutorial 9: the building blocks of modern CNNs, and a small ResNet on Fashion-MNIST.

Shows a 1x1 convolution as a per-pixel linear layer that changes the number of channels; element-wise
addition vs channel concatenation of two feature maps (shapes, costs, and how each routes the gradient);
skip connections keeping the gradient alive through 20 layers where a plain stack loses it; the ResNet
bottleneck (1x1 reduce, 3x3, 1x1 expand) and its cost next to two full 3x3 convolutions; an Inception
block's concatenated branches; and finally a small ResNet trained on Fashion-MNIST.

    python docs/tutorials/09_modern_blocks.py --out figures       # ResNet: 1 epoch of 60,000 images (minutes)
    python docs/tutorials/09_modern_blocks.py --ci --out figures  # ResNet: 2,000 images
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

import numcnn as nc
import numcnn.nn as nn
import numcnn.nn.functional as F
from numcnn import models
from numcnn.data import FashionMNIST
from numcnn.utils import summary
from numcnn.utils.visualize import pyplot as _pyplot

MEAN, STD = 0.2860, 0.3530


def count_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def quiet_summary(module: nn.Module, shape: tuple) -> object:
    return summary(module, shape, print_fn=lambda *a: None)


def section_1x1(rng) -> dict:
    print("1. A 1x1 convolution mixes channels at each pixel: Conv2d(64, 16, 1) maps (N, 64, H, W) -> (N, 16, H, W)")
    x = nc.tensor(rng.standard_normal((2, 64, 7, 7)).astype(np.float32))
    conv = nn.Conv2d(64, 16, 1)
    y = conv(x).numpy()
    w, b = conv.weight.numpy()[:, :, 0, 0], conv.bias.numpy()  # (16, 64), (16,)
    # y[n, k, h, w] = sum_c W[k, c] x[n, c, h, w] + b[k]: the same Linear(64, 16) at every pixel
    by_hand = np.einsum("kc,nchw->nkhw", w, x.numpy()) + b[:, None, None]
    linear = nn.Linear(64, 16)
    linear.load_state_dict({"weight": w, "bias": b})
    as_linear = linear(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2).numpy()
    out = {"conv1x1_vs_einsum": float(np.abs(y - by_hand).max()),
           "conv1x1_vs_linear": float(np.abs(y - as_linear).max()),
           "conv1x1_params": count_params(conv), "conv3x3_params": count_params(nn.Conv2d(64, 16, 3))}
    print(f"   max |conv - einsum over channels| = {out['conv1x1_vs_einsum']:.1e}; "
          f"max |conv - Linear at every pixel| = {out['conv1x1_vs_linear']:.1e}")
    print(f"   parameters: 1x1 {out['conv1x1_params']:,} (64*16 + 16) vs 3x3 {out['conv3x3_params']:,}")
    return out


def section_add_vs_cat(rng) -> dict:
    print("\n2. Merging two branches a, b of shape (N, 16, 7, 7)")
    a = nc.tensor(rng.standard_normal((2, 16, 7, 7)), requires_grad=True)  # float64
    b = nc.tensor(rng.standard_normal((2, 16, 7, 7)), requires_grad=True)
    added, joined = a + b, nc.cat([a, b], 1)
    print(f"   addition a + b: {tuple(added.shape)}; concatenation cat([a, b], 1): {tuple(joined.shape)}")
    print(f"   a 3x3 conv to 16 channels after them: {count_params(nn.Conv2d(16, 16, 3)):,} vs "
          f"{count_params(nn.Conv2d(32, 16, 3)):,} parameters")
    # L = sum(v * merged): dL/dmerged = v. Addition hands v to both inputs; concatenation splits v by channel.
    v_add, v_cat = rng.standard_normal(added.shape), rng.standard_normal(joined.shape)
    (added * nc.tensor(v_add)).sum().backward()
    add_gap = max(float(np.abs(a.grad.numpy() - v_add).max()), float(np.abs(b.grad.numpy() - v_add).max()))
    a.grad, b.grad = None, None
    (joined * nc.tensor(v_cat)).sum().backward()
    cat_gap = max(float(np.abs(a.grad.numpy() - v_cat[:, :16]).max()),
                  float(np.abs(b.grad.numpy() - v_cat[:, 16:]).max()))
    print(f"   backward of addition: both inputs get the upstream gradient (max gap {add_gap:.1e})")
    print(f"   backward of concatenation: each input gets its own channels of it (max gap {cat_gap:.1e})")

    block = models.Inception(32, 16, 16, 32, 8, 8, 8)
    y = block(nc.tensor(rng.standard_normal((1, 32, 14, 14)).astype(np.float32)))
    print("   an Inception block concatenates 4 branches (1x1 | 1x1-3x3 | 1x1-5x5 | pool-1x1):\n"
          f"   16 + 32 + 8 + 8 = {y.shape[1]} channels, output {tuple(y.shape)}")
    return {"add_grad_gap": add_gap, "cat_grad_gap": cat_gap, "inception_channels": y.shape[1]}


class ConvReLU(nn.Module):
    """relu(conv3x3(x)), or with ``skip`` the residual form relu(conv3x3(x) + x)."""

    def __init__(self, channels: int, skip: bool):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)
        self.skip = skip

    def forward(self, x):
        out = self.conv(x)
        return F.relu(out + x if self.skip else out)


def section_skip(images: np.ndarray, labels: np.ndarray, depth: int) -> dict:
    print(f"\n3. Skip connections: {depth} conv-ReLU layers (8 channels) with and without x + F(x), "
          "norm of dLoss/dW per layer")
    x, y = nc.tensor(images), nc.tensor(labels)
    norms = {}
    for skip in (False, True):
        nc.manual_seed(0)
        stem, head = nn.Conv2d(1, 8, 3, padding=1), nn.Linear(8, 10)
        blocks = nn.Sequential(*[ConvReLU(8, skip) for _ in range(depth)])
        logits = head(blocks(F.relu(stem(x))).mean(dim=(2, 3)))
        F.cross_entropy(logits, y).backward()
        norms[skip] = [float(np.linalg.norm(blk.conv.weight.grad.numpy())) for blk in blocks]
        print(f"   {'residual' if skip else 'plain':8s} first layer {norms[skip][0]:.1e}, last layer "
              f"{norms[skip][-1]:.1e}, ratio {norms[skip][0] / norms[skip][-1]:.1e}")
    print("   d(x + F(x))/dx = I + dF/dx: the identity carries the gradient past every layer unchanged,\n"
          "   while the plain stack multiplies it by one small Jacobian per layer.")

    # The identity by hand: the gradient through one residual block is g + (gradient through F alone).
    rng = np.random.default_rng(1)
    xb = nc.tensor(rng.standard_normal((2, 8, 6, 6)), requires_grad=True)
    g = rng.standard_normal((2, 8, 6, 6))
    conv = nn.Conv2d(8, 8, 3, padding=1).double()
    (conv(xb) + xb).backward(nc.tensor(g))
    through_block = xb.grad.numpy().copy()
    xb.grad = None
    conv(xb).backward(nc.tensor(g))
    identity_gap = float(np.abs(through_block - (g + xb.grad.numpy())).max())
    print(f"   checked on one block (float64): max |grad through x + conv(x) - (g + grad through conv)| = "
          f"{identity_gap:.1e}")
    return {"plain_grad_norms": norms[False], "residual_grad_norms": norms[True],
            "plain_first_to_last": norms[False][0] / norms[False][-1],
            "residual_first_to_last": norms[True][0] / norms[True][-1], "residual_identity_gap": identity_gap}


def section_bottleneck() -> dict:
    print("\n4. The bottleneck: 1x1 (256 -> 64), 3x3 (64 -> 64), 1x1 (64 -> 256), vs two 3x3 convs at 256")
    bottleneck, basic = models.Bottleneck(256, 64), models.BasicBlock(256, 256)
    # conv weights (no biases: BN follows) + BN's weight and bias per channel
    formula_bottleneck = 256 * 64 + 64 * 64 * 9 + 64 * 256 + 2 * (64 + 64 + 256)
    formula_basic = 2 * 256 * 256 * 9 + 2 * (256 + 256)
    s_bottleneck, s_basic = quiet_summary(bottleneck, (256, 14, 14)), quiet_summary(basic, (256, 14, 14))
    out = {"bottleneck_params": count_params(bottleneck), "bottleneck_params_formula": formula_bottleneck,
           "basic_params": count_params(basic), "basic_params_formula": formula_basic,
           "bottleneck_macs": s_bottleneck.total_macs, "basic_macs": s_basic.total_macs}
    print(f"   parameters: bottleneck {out['bottleneck_params']:,} (formula {formula_bottleneck:,}), two 3x3 "
          f"{out['basic_params']:,} (formula {formula_basic:,})")
    print(f"   multiply-adds on a 14x14 map: {out['bottleneck_macs']:,} vs {out['basic_macs']:,} "
          f"({out['basic_macs'] / out['bottleneck_macs']:.0f}x fewer with the bottleneck)")
    return out


def section_resnet(args, train, test) -> dict:
    n_train = 2000 if args.ci else len(train.data)
    n_test = 1000 if args.ci else len(test.data)
    epochs, batch = (1, 50) if args.ci else (args.epochs, 100)
    nc.manual_seed(0)
    model = models.get("resnet", blocks_per_stage=args.blocks)
    info = quiet_summary(model, (1, 28, 28))
    print(f"\n5. A small ResNet ({args.blocks} basic block(s) per stage, {info.total_params:,} parameters, "
          f"{info.total_macs / 1e6:.1f} M multiply-adds per image)\n   on {n_train} Fashion-MNIST images, "
          f"Adam with a one-cycle schedule peaking at {args.lr}")

    def images(ds, idx):
        return nc.tensor((ds.data[idx, None].astype(np.float32) / 255 - MEAN) / STD)

    steps_per_epoch = -(-n_train // batch)
    opt = nc.optim.Adam(model.parameters(), lr=args.lr)
    sched = nc.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, epochs=epochs, steps_per_epoch=steps_per_epoch)
    rng, losses, t0 = np.random.default_rng(0), [], time.perf_counter()
    for epoch in range(1, epochs + 1):
        order = rng.permutation(n_train)
        for start in range(0, n_train, batch):
            idx = order[start : start + batch]
            loss = F.cross_entropy(model(images(train, idx)), nc.tensor(train.targets[idx]))
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            losses.append(loss.item())
        print(f"   epoch {epoch}: mean training loss {np.mean(losses[-steps_per_epoch:]):.4f} "
              f"({time.perf_counter() - t0:.1f} s)")
    model.eval()
    correct = 0
    with nc.no_grad():
        for start in range(0, n_test, 500):
            idx = np.arange(start, min(start + 500, n_test))
            correct += int((model(images(test, idx)).numpy().argmax(1) == test.targets[idx]).sum())
    accuracy = correct / n_test
    print(f"   test accuracy {accuracy:.2%} on {n_test} images")
    return {"resnet_losses": losses, "resnet_test_accuracy": accuracy, "resnet_params": info.total_params}


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ci", action="store_true", help="2,000 training images for the ResNet, for the test suite")
    p.add_argument("--out", default="figures", help="folder for the figures (default: ./figures)")
    p.add_argument("--blocks", type=int, default=1, help="basic blocks per ResNet stage (default 1)")
    p.add_argument("--epochs", type=int, default=1, help="ResNet epochs in full mode (default 1)")
    p.add_argument("--lr", type=float, default=1e-2, help="Adam's peak learning rate for the ResNet (default 1e-2)")
    args = p.parse_args(argv)
    rng = np.random.default_rng(0)
    nc.manual_seed(0)
    train, test = FashionMNIST(train=True), FashionMNIST(train=False)

    results = section_1x1(rng)
    results.update(section_add_vs_cat(rng))
    results.update(section_skip(train.data[:16, None].astype(np.float32) / 255, train.targets[:16], depth=20))
    results.update(section_bottleneck())
    results.update(section_resnet(args, train, test))
    results["figures"] = save_figures(Path(args.out), results)
    return results


def save_figures(out_dir: Path, r: dict) -> list[str]:
    plt = _pyplot()
    if plt is None:
        print("\n(matplotlib is not installed: no figures)")
        return []
    out_dir.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(1, 3, figsize=(15, 3.8))
    layers = np.arange(1, len(r["plain_grad_norms"]) + 1)
    axes[0].semilogy(layers, r["plain_grad_norms"], "o-", label="plain: relu(conv(x))")
    axes[0].semilogy(layers, r["residual_grad_norms"], "o-", label="residual: relu(conv(x) + x)")
    axes[0].set_xlabel("layer (1 = next to the input)")
    axes[0].set_ylabel("||dLoss/dW||")
    axes[0].set_title("gradient reaching each layer")
    axes[0].legend()
    names = ["bottleneck", "two 3x3"]
    axes[1].bar(names, [r["bottleneck_params"], r["basic_params"]], color=["tab:green", "tab:gray"])
    axes[1].set_title("parameters of a 256-channel block")
    k = max(1, len(r["resnet_losses"]) // 30)
    axes[2].plot(np.convolve(r["resnet_losses"], np.ones(k) / k, mode="valid"))
    axes[2].set_xlabel("step")
    axes[2].set_ylabel(f"training loss ({k}-step mean)")
    axes[2].set_title(f"small ResNet: test accuracy {r['resnet_test_accuracy']:.1%}")
    fig.tight_layout()
    paths = [out_dir / "09_modern_blocks.png"]
    fig.savefig(paths[0], dpi=80)
    plt.close(fig)
    print(f"\nfigures: {', '.join(str(p) for p in paths)}")
    return [str(p) for p in paths]


if __name__ == "__main__":
    main()
