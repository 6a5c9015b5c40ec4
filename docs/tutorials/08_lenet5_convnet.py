"""Tutorial 8: LeNet-5 and a two-conv ConvNet on Fashion-MNIST.

Shows LeNet-5 with Xavier initialisation (its weight spread checked against the formula), batch norm and
dropout, then the two-conv ConvNet (conv-BN-ReLU-pool twice, one linear layer), each trained with
numcnn.training.fit on Fashion-MNIST and scored on the test set: accuracy, per-class accuracy, the confusion
matrix (and accuracy recomputed from it by hand) and a gallery of misclassified test images.

    python docs/tutorials/08_lenet5_convnet.py --out figures       # 3 epochs on 60,000 images each (minutes)
    python docs/tutorials/08_lenet5_convnet.py --ci --out figures  # 3,000 images, seconds
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

import numcnn as nc
import numcnn.nn as nn
from numcnn import models
from numcnn.data import Compose, DataLoader, FashionMNIST, Normalize, Subset, ToTensor
from numcnn.training import evaluate, fit, predict
from numcnn.utils import summary
from numcnn.utils.visualize import pyplot as _pyplot

MEAN, STD = 0.2860, 0.3530  # Fashion-MNIST's training-set pixel mean and standard deviation (of x / 255)


def xavier_check(model: nn.Module) -> float:
    """Xavier-uniform draws W ~ U(-a, a) with a = sqrt(6 / (fan_in + fan_out)), so std(W) = a / sqrt(3).

    fan_in = in_channels * kernel area, fan_out = out_channels * kernel area (a Linear's kernel area is 1).
    Prints measured vs expected std for every conv/linear weight; returns the worst relative gap.
    """
    worst = 0.0
    for name, m in model.named_modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            w = m.weight.numpy()
            area = int(np.prod(w.shape[2:])) if w.ndim == 4 else 1
            fan_in, fan_out = w.shape[1] * area, w.shape[0] * area
            expected = np.sqrt(6 / (fan_in + fan_out)) / np.sqrt(3)
            gap = abs(w.std() / expected - 1)
            worst = max(worst, gap)
            print(f"   {name:8s} {str(w.shape):18s} fan_in {fan_in:5d} fan_out {fan_out:5d}  "
                  f"std {w.std():.4f}, formula {expected:.4f}")
    return worst


def train_and_score(name: str, model: nn.Module, train_loader: DataLoader, test_loader: DataLoader,
                    epochs: int) -> dict:
    recipe = models.recipe(name)  # Adam with a one-cycle learning-rate schedule
    opt = nc.optim.Adam(model.parameters(), lr=recipe["lr"])
    sched = nc.optim.lr_scheduler.OneCycleLR(opt, max_lr=recipe["max_lr"], epochs=epochs,
                                             steps_per_epoch=len(train_loader))
    print(f"   Adam, one-cycle schedule peaking at lr {recipe['max_lr']}, {epochs} epoch(s), "
          f"batch {train_loader.batch_size}")
    t0 = time.perf_counter()
    # No validation data here (tutorial 10 shows that): the test set is only looked at once, at the end.
    history = fit(model, train_loader, epochs=epochs, optimizer=opt, scheduler=sched,
                  log=lambda line: print("   " + line))
    seconds = time.perf_counter() - t0
    result = evaluate(model, test_loader)
    # The confusion matrix holds every (true, predicted) count: its diagonal is the correct predictions.
    by_hand = np.trace(result.confusion) / result.confusion.sum()
    print(f"   test accuracy {result.accuracy:.2%} on {result.n} images (from the confusion matrix: {by_hand:.2%}),"
          f" test loss {result.loss:.4f}, {seconds:.1f} s")
    return {"history": history, "eval": result, "accuracy_from_confusion": float(by_hand), "seconds": seconds}


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ci", action="store_true", help="3,000 training and 1,000 test images, for the test suite")
    p.add_argument("--out", default="figures", help="folder for the figures (default: ./figures)")
    p.add_argument("--epochs", type=int, default=None, help="epochs per model (default: 3, or 2 and 1 with --ci)")
    args = p.parse_args(argv)

    tf = Compose([ToTensor(), Normalize((MEAN,), (STD,))])
    train, test = FashionMNIST(train=True, transform=tf), FashionMNIST(train=False, transform=tf)
    if args.ci:
        train, test = Subset(train, np.arange(3000)), Subset(test, np.arange(1000))
    train_loader = DataLoader(train, batch_size=100, shuffle=True, seed=0)
    test_loader = DataLoader(test, batch_size=500)
    epochs_lenet = args.epochs or (2 if args.ci else 3)
    epochs_convnet = args.epochs or (1 if args.ci else 3)
    results: dict = {"n_train": len(train), "n_test": len(test)}
    print(f"Fashion-MNIST: {len(train)} training and {len(test)} test images, normalised with mean {MEAN}, "
          f"std {STD}")

    print("\n1. LeNet-5 with Xavier initialisation, batch norm after each convolution, dropout before the output")
    nc.manual_seed(0)
    lenet = models.get("lenet5", init="xavier", batchnorm=True, dropout=0.2)
    results["xavier_worst_relative_gap"] = xavier_check(lenet)
    info = summary(lenet, (1, 28, 28), print_fn=lambda *a: None)
    print(f"   {info.total_params:,} parameters, {info.total_macs:,} multiply-adds per image")
    lenet_run = train_and_score("lenet5", lenet, train_loader, test_loader, epochs_lenet)

    print("\n2. The two-conv ConvNet: [conv 5x5 - BN - ReLU - maxpool] x 2 (16, 32 channels), linear 1568 -> 10")
    nc.manual_seed(0)
    convnet = models.get("convnet")
    info = summary(convnet, (1, 28, 28), print_fn=lambda *a: None)
    print(f"   {info.total_params:,} parameters, {info.total_macs:,} multiply-adds per image")
    convnet_run = train_and_score("convnet", convnet, train_loader, test_loader, epochs_convnet)

    classes = FashionMNIST.classes
    per_class = convnet_run["eval"].per_class_accuracy
    print("\n3. ConvNet per-class test accuracy (rows of the confusion matrix):")
    for c in np.argsort(per_class):
        print(f"   {classes[c]:12s} {per_class[c]:.1%}")
    confusion = convnet_run["eval"].confusion.copy()
    np.fill_diagonal(confusion, 0)
    true_c, pred_c = np.unravel_index(confusion.argmax(), confusion.shape)
    print(f"   most frequent confusion: {classes[true_c]} taken for {classes[pred_c]} ({confusion.max()} times)")

    images = test.dataset.data[test.indices] if isinstance(test, Subset) else test.data
    labels = test.dataset.targets[test.indices] if isinstance(test, Subset) else test.targets
    probs = predict(convnet, tf(images[:, None]))  # (N, 10) softmax outputs, in eval mode
    wrong = np.flatnonzero(probs.argmax(1) != labels)
    print(f"   {len(wrong)} of {len(labels)} test images misclassified "
          f"(predict's accuracy {1 - len(wrong) / len(labels):.2%})")

    for key, run in (("lenet5", lenet_run), ("convnet", convnet_run)):
        results[key] = {"test_accuracy": run["eval"].accuracy, "test_loss": run["eval"].loss,
                        "accuracy_from_confusion": run["accuracy_from_confusion"],
                        "train_loss": run["history"]["train_loss"],
                        "confusion": run["eval"].confusion, "seconds": run["seconds"]}
    results["convnet"]["predict_accuracy"] = 1 - len(wrong) / len(labels)
    results["figures"] = save_figures(Path(args.out), convnet_run["eval"].confusion, images, labels, probs, wrong,
                                      classes)
    return results


def save_figures(out_dir: Path, confusion, images, labels, probs, wrong, classes) -> list[str]:
    plt = _pyplot()
    if plt is None:
        print("\n(matplotlib is not installed: no figures)")
        return []
    out_dir.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(7.5, 6.5))
    ax.imshow(confusion, cmap="Blues")
    for (i, j), v in np.ndenumerate(confusion):
        ax.text(j, i, v, ha="center", va="center", fontsize=7,
                color="white" if v > confusion.max() / 2 else "black")
    ax.set_xticks(range(10), classes, rotation=60, ha="right")
    ax.set_yticks(range(10), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title("ConvNet on the Fashion-MNIST test set")
    fig.tight_layout()
    paths = [out_dir / "08_confusion_matrix.png"]
    fig.savefig(paths[0], dpi=80)
    plt.close(fig)

    fig, axes = plt.subplots(3, 6, figsize=(12, 7.6))
    for ax, i in zip(axes.ravel(), wrong[:18]):
        ax.imshow(images[i], cmap="gray_r")
        ax.set_title(f"{classes[labels[i]]}\n-> {classes[probs[i].argmax()]} ({probs[i].max():.0%})", fontsize=8)
    for ax in axes.ravel():
        ax.axis("off")
    fig.suptitle("misclassified: true class -> predicted (confidence)")
    fig.tight_layout()
    paths.append(out_dir / "08_misclassified.png")
    fig.savefig(paths[1], dpi=80)
    plt.close(fig)
    print(f"\nfigures: {', '.join(str(p) for p in paths)}")
    return [str(p) for p in paths]


if __name__ == "__main__":
    main()
