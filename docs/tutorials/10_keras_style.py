"""Tutorial 10: the Keras-style workflow with numcnn: build, fit with validation data, plot, predict, score.

Shows a small CNN written as a list of layers (the network of the Keras tutorial), its summary, training
with numcnn.training.fit on Fashion-MNIST with a held-out validation split, the History plotted, then
evaluate() on the test set, predict() for class probabilities (its accuracy equals evaluate()'s), and a
save / load round trip that predicts the same. Then the same recipe runs on the MNIST digits if numcnn's
MNIST finds them: in --mnist-root, in $NUMCNN_DATA or in the user cache ~/.cache/numcnn/mnist, where
--download-mnist (or `numcnn train --dataset mnist --download`) puts the four files, 11 MB, MD5-checked. Without
them the digits part is skipped, and the output says how to get them.

    python docs/tutorials/10_keras_style.py --out figures       # 5 epochs on 54,000 images (about a minute)
    python docs/tutorials/10_keras_style.py --ci --out figures  # 2 epochs on 2,700 images, 3,000 test images
    python docs/tutorials/10_keras_style.py --download-mnist    # fetch MNIST first if it is not found
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

import numcnn as nc
import numcnn.nn as nn
from numcnn import models
from numcnn.data import MNIST, Compose, DataLoader, FashionMNIST, Normalize, Subset, ToTensor, random_split
from numcnn.data.datasets import user_cache_dir
from numcnn.training import evaluate, fit, predict
from numcnn.utils import summary
from numcnn.utils.visualize import pyplot as _pyplot


def build(channels: int = 10, hidden: int = 100, dropout: float = 0.5) -> nn.Sequential:
    """Keras's Sequential([Conv2D(10, 3, padding="same", activation="relu"), MaxPooling2D(), Flatten(),
    Dropout(0.5), Dense(100, activation="relu"), Dense(10)]) in numcnn (channels first: (N, 1, 28, 28))."""
    return nn.Sequential(
        nn.Conv2d(1, channels, 3, padding="same"), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Dropout(dropout),
        nn.Linear(channels * 14 * 14, hidden), nn.ReLU(),
        nn.Linear(hidden, 10),
    )


def images_of(ds) -> tuple[np.ndarray, np.ndarray]:
    """The raw uint8 images (N, 28, 28) and labels of a dataset or a Subset of one."""
    if isinstance(ds, Subset):
        images, labels = images_of(ds.dataset)
        return images[ds.indices], labels[ds.indices]
    return ds.data, ds.targets


def run(name: str, train_full, test, tf, limit: int | None, epochs: int, out_dir: Path, classes) -> dict:
    """Build, fit with a 10% validation split, evaluate, predict, save and load: the whole workflow.

    ``tf``: the datasets' transform, applied again to the raw test images for predict(); ``limit``: use only
    the first ``limit`` training and test images.
    """
    if limit is not None:
        train_full = Subset(train_full, np.arange(min(limit, len(train_full))))
        test = Subset(test, np.arange(min(limit, len(test))))
    train, val = random_split(train_full, [0.9, 0.1], seed=0)  # Keras's validation_split=0.1
    train_loader = DataLoader(train, batch_size=100, shuffle=True, seed=0)
    val_loader, test_loader = DataLoader(val, batch_size=500), DataLoader(test, batch_size=500)
    print(f"   {len(train)} training, {len(val)} validation and {len(test)} test images")

    nc.manual_seed(0)
    model = build()
    opt = nc.optim.Adam(model.parameters(), lr=1e-3)  # "compile": an optimizer and (by default) cross-entropy
    history = fit(model, train_loader, val_loader, epochs=epochs, optimizer=opt,
                  log=lambda line: print("   " + line))

    result = evaluate(model, test_loader)
    print(f"   evaluate: test loss {result.loss:.4f}, test accuracy {result.accuracy:.2%}")

    x_test, y_test = images_of(test)
    x_test = tf(x_test[:, None])  # the same preprocessing as the loader's: (N, 1, 28, 28) float32
    probs = predict(model, x_test)
    predicted = probs.argmax(axis=1)
    score = float((predicted == y_test).mean())
    print(f"   predict: probabilities {probs.shape}, rows sum to 1 (max error {np.abs(probs.sum(1) - 1).max():.1e});"
          f" accuracy of the argmax {score:.2%}")
    for i in range(5):
        print(f"     image {i}: predicted {classes[predicted[i]]!r} ({probs[i].max():.0%}), "
              f"true {classes[y_test[i]]!r}")

    path = out_dir / f"10_{name}.safetensors"
    out_dir.mkdir(parents=True, exist_ok=True)
    nc.save(model.state_dict(), path)
    restored = build()
    restored.load_state_dict(nc.load(path))
    reload_gap = float(np.abs(predict(restored, x_test[:200]) - probs[:200]).max())
    print(f"   saved to {path}, loaded into a fresh model: max |difference in predictions| = {reload_gap:.1e}")
    return {"history": history, "test_accuracy": result.accuracy, "test_loss": result.loss,
            "predict_accuracy": score, "probability_row_sum_error": float(np.abs(probs.sum(1) - 1).max()),
            "reload_max_abs_diff": reload_gap}


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ci", action="store_true",
                   help="the first 3,000 training and test images, 2 epochs, for the test suite")
    p.add_argument("--out", default="figures", help="folder for the figures (default: ./figures)")
    p.add_argument("--epochs", type=int, default=None, help="training epochs (default: 5, or 2 with --ci)")
    p.add_argument("--mnist-root", default=None,
                   help="folder with the MNIST IDX files for the last part (default: $NUMCNN_DATA, then the user "
                        "cache ~/.cache/numcnn/mnist)")
    p.add_argument("--download-mnist", action="store_true",
                   help="download MNIST (11 MB, into --mnist-root, else the user cache) if it is not found")
    args = p.parse_args(argv)
    out_dir = Path(args.out)
    epochs = args.epochs or (2 if args.ci else 5)
    limit = 3000 if args.ci else None  # training images (and at most as many test images)

    model = build()
    print("1. Build: the layers, in order")
    print("\n".join("   " + line for line in repr(model).splitlines()))
    print("\n2. Summary (numcnn.utils.summary):")
    info = summary(model, (1, 28, 28), print_fn=lambda text: print("\n".join("   " + s for s in text.splitlines())))
    zoo = models.get("simplecnn")  # the model zoo's copy of this network
    same_shapes = [tuple(p.shape) for p in model.parameters()] == [tuple(p.shape) for p in zoo.parameters()]
    print(f"   numcnn.models.get('simplecnn') is the same network: {same_shapes}")
    results: dict = {"params": info.total_params, "zoo_same_shapes": same_shapes}

    tf = Compose([ToTensor(), Normalize((0.2860,), (0.3530,))])
    print(f"\n3. Fit on Fashion-MNIST with validation data, {epochs} epoch(s), Adam 1e-3, batch 100")
    fashion = run("fashion_mnist", FashionMNIST(train=True, transform=tf), FashionMNIST(train=False, transform=tf),
                  tf, limit, epochs, out_dir, FashionMNIST.classes)
    results["fashion"] = {k: v for k, v in fashion.items() if k != "history"}
    results["fashion"]["train_loss"] = fashion["history"]["train_loss"]
    results["fashion"]["val_accuracy"] = fashion["history"]["val_accuracy"]

    results["mnist"] = digits(args.mnist_root, args.download_mnist, limit, epochs, out_dir)
    results["figures"] = save_figures(out_dir, fashion["history"])
    return results


def load_mnist(root: str | None, download: bool, tf):
    """``(train, test)`` MNIST datasets from wherever numcnn's MNIST finds them (or downloads them), else None."""
    try:
        return MNIST(root, train=True, transform=tf, download=download), MNIST(root, train=False, transform=tf)
    except (FileNotFoundError, RuntimeError) as e:  # not found, or the download failed: e lists where and why
        if download:
            print("\n4. (MNIST could not be downloaded, so the digits part is skipped)")
            print("\n".join("   " + line for line in str(e).splitlines()))
        else:
            where = f"--mnist-root {root}, " if root is not None else ""
            print(f"\n4. (MNIST not found in {where}$NUMCNN_DATA or {user_cache_dir() / 'mnist'}, so the digits part "
                  f"is skipped; run with --download-mnist to fetch it, 11 MB)")
        return None


def digits(root: str | None, download: bool, limit: int | None, epochs: int, out_dir: Path) -> dict | None:
    """Part 4: the same recipe on the MNIST digits, with MNIST's own normalisation; None without the files."""
    tf_digits = Compose([ToTensor(), Normalize((0.1307,), (0.3081,))])
    found = load_mnist(root, download, tf_digits)
    if found is None:
        return None
    train_digits, test_digits = found
    print(f"\n4. The same recipe on MNIST digits ({train_digits.folder})")
    result = run("mnist", train_digits, test_digits, tf_digits, limit, epochs, out_dir, [str(d) for d in range(10)])
    return {k: v for k, v in result.items() if k != "history"}


def save_figures(out_dir: Path, history) -> list[str]:
    plt = _pyplot()
    if plt is None:
        print("\n(matplotlib is not installed: no figures)")
        return []
    out_dir.mkdir(parents=True, exist_ok=True)
    epochs = history["epoch"]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for ax, metric in zip(axes, ("loss", "accuracy")):
        ax.plot(epochs, history[f"train_{metric}"], "o-", label="training")
        ax.plot(epochs, history[f"val_{metric}"], "o-", label="validation")
        ax.set_xlabel("epoch")
        ax.set_title(metric)
        ax.set_xticks(epochs)
        ax.legend()
    fig.suptitle("History of fit() on Fashion-MNIST")
    fig.tight_layout()
    paths = [out_dir / "10_history.png"]
    fig.savefig(paths[0], dpi=80)
    plt.close(fig)
    print(f"\nfigures: {', '.join(str(p) for p in paths)}")
    return [str(p) for p in paths]


if __name__ == "__main__":
    main()
