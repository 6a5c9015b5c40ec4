"""Data for the script tests, written in the datasets' documented formats (shared with the measurement of
PyTorch's figures: ``python tests/scripts/conftest.py DIR`` writes the same files into DIR).

- ``FashionMNIST/raw/``: Debian's Fashion-MNIST IDX files (/usr/share/datasets/fashion-mnist), un-gzipped, in
  torchvision's layout (``root/<ClassName>/raw/train-images-idx3-ubyte`` ...).
- ``cifar-10-batches-py/``: a small synthetic CIFAR-10 in the Python version's format (pickled dicts ``data`` uint8
  (N, 3072) as R, G, B planes of 32x32, ``labels`` a list; ``batches.meta`` with ``label_names``).
- ``hymenoptera/{train,val}/<class>/*.png``: an ImageFolder tree of Fashion-MNIST test images as PNG files.
"""

import gzip
import pickle
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

DEBIAN_FASHION = Path("/usr/share/datasets/fashion-mnist")
CIFAR_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
FOLDER_CLASSES = {1: "trouser", 4: "coat", 6: "shirt"}  # Fashion-MNIST label -> ImageFolder class folder


def write_fashion_mnist(root: Path) -> None:
    """Debian's four Fashion-MNIST files, un-gzipped into ``root/FashionMNIST/raw`` (where torchvision reads)."""
    raw = root / "FashionMNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for gz in sorted(DEBIAN_FASHION.glob("*-ubyte.gz")):
        with gzip.open(gz, "rb") as src, open(raw / gz.name.removesuffix(".gz"), "wb") as dst:
            shutil.copyfileobj(src, dst)


def cifar_arrays(n: int, seed: int) -> tuple[np.ndarray, list[int]]:
    """``n`` synthetic 32x32 colour images: class c is a fixed smooth colour pattern (from a 4x4 grid of random
    colours, upsampled), shifted by up to 2 pixels and drawn over with Gaussian noise; labels cycle 0..9, and 15%
    of them are then replaced by random labels (so a perfect classifier scores about 0.865, not 1.0, and the
    figure settles instead of jumping to 1.0 once training leaves its plateau)."""
    patterns = np.random.default_rng(12345).uniform(-1, 1, size=(10, 3, 4, 4))
    patterns = patterns.repeat(8, axis=2).repeat(8, axis=3)  # (10, 3, 32, 32)
    rng = np.random.default_rng(seed)
    labels = [int(k % 10) for k in range(n)]
    images = np.empty((n, 3, 32, 32), dtype=np.uint8)
    for k, c in enumerate(labels):
        shifted = np.roll(patterns[c], tuple(rng.integers(-2, 3, size=2)), axis=(1, 2))
        pixels = 128 + 80 * shifted + rng.normal(0, 30, size=(3, 32, 32))
        images[k] = np.clip(pixels, 0, 255).astype(np.uint8)
    noisy = rng.random(n) < 0.15
    labels = [int(rng.integers(10)) if flip else c for c, flip in zip(labels, noisy)]
    return images.reshape(n, 3072), labels


def write_cifar10(root: Path, per_batch: int = 400, n_test: int = 1000) -> None:
    """Five training batches of ``per_batch`` images and a test batch, in the Python version's format."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    names = [f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]
    for seed, name in enumerate(names):
        data, labels = cifar_arrays(n_test if name == "test_batch" else per_batch, seed)
        entry = {"batch_label": f"synthetic {name}", "labels": labels, "data": data,
                 "filenames": [f"img_{seed}_{k}.png" for k in range(len(labels))]}
        with open(folder / name, "wb") as f:
            pickle.dump(entry, f, protocol=2)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({"label_names": CIFAR_CLASSES, "num_cases_per_batch": per_batch, "num_vis": 3072}, f, protocol=2)


def write_image_folder(root: Path, n_train: int = 120, n_val: int = 100) -> None:
    """``root/hymenoptera/{train,val}/<class>/<k>.png``: Fashion-MNIST test images of three classes (first
    ``n_train`` of each class for train, the next ``n_val`` for val), as 28x28 grayscale PNG files."""
    from PIL import Image

    with gzip.open(DEBIAN_FASHION / "t10k-images-idx3-ubyte.gz", "rb") as f:
        images = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 28, 28)
    with gzip.open(DEBIAN_FASHION / "t10k-labels-idx1-ubyte.gz", "rb") as f:
        labels = np.frombuffer(f.read(), np.uint8, offset=8)
    for label, name in FOLDER_CLASSES.items():
        picks = np.flatnonzero(labels == label)
        for split, chosen in (("train", picks[:n_train]), ("val", picks[n_train:n_train + n_val])):
            folder = root / "hymenoptera" / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for k in chosen:
                Image.fromarray(images[k], mode="L").save(folder / f"{k:05d}.png")


def write_all(root: Path) -> Path:
    write_fashion_mnist(root)
    write_cifar10(root)
    write_image_folder(root)
    return root


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory) -> Path:
    """One folder with all three datasets, written once per test session."""
    return write_all(tmp_path_factory.mktemp("script-data"))


if __name__ == "__main__":
    print(write_all(Path(sys.argv[1])))
