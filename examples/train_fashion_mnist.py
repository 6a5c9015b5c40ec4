"""Train the two-conv ConvNet on Fashion-MNIST with numcnn and report test accuracy.

    python examples/train_fashion_mnist.py --epochs 2

Uses the real Fashion-MNIST (60,000 train / 10,000 test): from --root, $NUMCNN_DATA, ~/.cache/numcnn or Debian's
dataset-fashion-mnist package (/usr/share/datasets/fashion-mnist).
"""

from __future__ import annotations

import argparse
import time

import numcnn as nc
import numcnn.nn as nn
import numcnn.nn.functional as F
from numcnn.data import DataLoader, FashionMNIST, Normalize, ToTensor, transforms


def convnet() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 16, 5, padding=2), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 5, padding=2), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(32 * 7 * 7, 10),
    )


def evaluate(model: nn.Module, loader: DataLoader) -> tuple[float, float]:
    model.eval()
    correct = total = 0
    loss_sum = 0.0
    with nc.no_grad():
        for x, y in loader:
            logits = model(x)
            loss_sum += F.cross_entropy(logits, y, reduction="sum").item()
            correct += int((logits.argmax(1) == y).numpy().sum())
            total += len(y)
    return loss_sum / total, correct / total


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--root", default=None, help="folder with the four Fashion-MNIST IDX files")
    p.add_argument("--limit", type=int, default=None, help="train on the first N images only (quick runs)")
    args = p.parse_args()

    nc.manual_seed(args.seed)
    tf = transforms.Compose([ToTensor(), Normalize((0.2860,), (0.3530,))])
    train = FashionMNIST(args.root, train=True, transform=tf)
    test = FashionMNIST(args.root, train=False, transform=tf)
    if args.limit:
        from numcnn.data import Subset

        train = Subset(train, range(args.limit))
    train_loader = DataLoader(train, batch_size=args.batch_size, shuffle=True, seed=args.seed)
    test_loader = DataLoader(test, batch_size=500)

    model = convnet()
    opt = nc.optim.Adam(model.parameters(), lr=args.lr)
    print(f"Fashion-MNIST: {len(train)} train / {len(test)} test images; {sum(p.numel() for p in model.parameters()):,}"
          f" parameters; {nc.get_num_threads()} BLAS threads")
    for epoch in range(1, args.epochs + 1):
        model.train()
        t0 = time.perf_counter()
        seen, loss_sum = 0, 0.0
        for i, (x, y) in enumerate(train_loader, 1):
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            seen += len(y)
            loss_sum += loss.item() * len(y)
            if i % 100 == 0:
                print(f"  epoch {epoch} step {i}/{len(train_loader)} loss {loss_sum / seen:.4f}", flush=True)
        dt = time.perf_counter() - t0
        test_loss, test_acc = evaluate(model, test_loader)
        print(f"epoch {epoch}: train loss {loss_sum / seen:.4f}, test loss {test_loss:.4f}, "
              f"test accuracy {test_acc:.2%} ({dt:.1f} s, {seen / dt:.0f} images/s)")
    print(f"Final test accuracy: {test_acc:.2%}")


if __name__ == "__main__":
    main()
