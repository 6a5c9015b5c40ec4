"""torchvision.datasets stand-in: MNIST, FashionMNIST, CIFAR10 (Python version) and ImageFolder.

Items are ``(PIL image, int label)`` before ``transform`` as in torchvision. Files are read from torchvision's
layouts: ``root/<ClassName>/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte`` (the IDX files, plain or .gz),
``root/cifar-10-batches-py/{data_batch_1..5,test_batch}`` and ``root/<class>/<image>``. No download, no MD5.
"""

import gzip
import os
import pickle

import numpy as np
import torch
from PIL import Image

__all__ = ["CIFAR10", "FashionMNIST", "ImageFolder", "MNIST"]


def _read_idx(path):
    """An IDX file (plain or gzipped): magic 0x0000 <type 0x08 = uint8> <ndim>, big-endian int32 sizes, data."""
    opener = gzip.open if not os.path.exists(path) else open
    with opener(path if os.path.exists(path) else path + ".gz", "rb") as f:
        raw = f.read()
    ndim = raw[3]
    if raw[:3] != b"\x00\x00\x08":
        raise ValueError(f"{path}: not an IDX file of uint8")
    shape = tuple(int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


class MNIST(torch.utils.data.Dataset):
    """``.data`` uint8 tensor (N, 28, 28), ``.targets`` int64 tensor (N,); item = (PIL "L" image, int)."""

    classes = [f"{d} - {w}" for d, w in enumerate(
        ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"])]

    def __init__(self, root, train=True, transform=None, target_transform=None, download=False):
        raw = os.path.join(root, type(self).__name__, "raw")
        prefix = "train" if train else "t10k"
        self.data = torch.from_numpy(_read_idx(os.path.join(raw, f"{prefix}-images-idx3-ubyte")).copy())
        self.targets = torch.from_numpy(_read_idx(os.path.join(raw, f"{prefix}-labels-idx1-ubyte")).astype(np.int64))
        self.train, self.transform, self.target_transform = train, transform, target_transform

    def __len__(self):
        return len(self.data)

    def __getitem__(self, index):
        img, target = Image.fromarray(self.data[index].numpy(), mode="L"), int(self.targets[index])
        if self.transform is not None:
            img = self.transform(img)
        if self.target_transform is not None:
            target = self.target_transform(target)
        return img, target


class FashionMNIST(MNIST):
    """Zalando's Fashion-MNIST, MNIST's format."""

    classes = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
               "Ankle boot"]


class CIFAR10(torch.utils.data.Dataset):
    """The Python version: pickled dicts with ``data`` uint8 (N, 3072) and ``labels``; ``.data`` (N, 32, 32, 3)."""

    base_folder = "cifar-10-batches-py"

    def __init__(self, root, train=True, transform=None, target_transform=None, download=False):
        names = [f"data_batch_{k}" for k in range(1, 6)] if train else ["test_batch"]
        data, self.targets = [], []
        for name in names:
            with open(os.path.join(root, self.base_folder, name), "rb") as f:
                entry = pickle.load(f, encoding="latin1")  # the tests' own files (torchvision reads them this way)
            data.append(entry["data"])
            self.targets.extend(entry["labels"] if "labels" in entry else entry["fine_labels"])
        self.data = np.vstack(data).reshape(-1, 3, 32, 32).transpose((0, 2, 3, 1))
        with open(os.path.join(root, self.base_folder, "batches.meta"), "rb") as f:
            self.classes = pickle.load(f, encoding="latin1")["label_names"]
        self.class_to_idx = {c: i for i, c in enumerate(self.classes)}
        self.train, self.transform, self.target_transform = train, transform, target_transform

    def __len__(self):
        return len(self.data)

    def __getitem__(self, index):
        img, target = Image.fromarray(self.data[index]), self.targets[index]
        if self.transform is not None:
            img = self.transform(img)
        if self.target_transform is not None:
            target = self.target_transform(target)
        return img, target


IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")


class ImageFolder(torch.utils.data.Dataset):
    """``root/<class>/<image>``: classes = sorted folder names; samples in sorted order; images loaded as RGB."""

    def __init__(self, root, transform=None, target_transform=None):
        self.classes = sorted(e.name for e in os.scandir(root) if e.is_dir())
        self.class_to_idx = {c: i for i, c in enumerate(self.classes)}
        self.samples = [(os.path.join(d, f), self.class_to_idx[c]) for c in self.classes
                        for d, _, files in sorted(os.walk(os.path.join(root, c))) for f in sorted(files)
                        if f.lower().endswith(IMG_EXTENSIONS)]
        self.targets = [t for _, t in self.samples]
        self.transform, self.target_transform = transform, target_transform

    def __len__(self):
        return len(self.samples)

    def __getitem__(self, index):
        path, target = self.samples[index]
        with open(path, "rb") as f:
            sample = Image.open(f).convert("RGB")
        if self.transform is not None:
            sample = self.transform(sample)
        if self.target_transform is not None:
            target = self.target_transform(target)
        return sample, target
