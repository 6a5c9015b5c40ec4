"""torchvision.datasets for numcnn: MNIST, FashionMNIST, CIFAR10, CIFAR100 and ImageFolder with torchvision's items.

Without a transform an item is ``(PIL image, int label)`` as in torchvision (MNIST: mode "L"; CIFAR and ImageFolder:
"RGB"); ``transforms.ToTensor()`` makes the image a float32 Tensor (C, H, W). MNIST's ``.data`` / ``.targets``
are Tensors (uint8 (N, 28, 28), int64 (N,)), CIFAR's ``.data`` an ndarray (N, 32, 32, 3) and ``.targets`` a list,
as torchvision's. Finding and reading the files is numcnn.data's (see numcnn.data.datasets and numcnn.data.cifar).

A DataLoader with the default collate gathers a whole batch with one fancy index (``collated_batch``) when the
transform is ToTensor, or ToTensor then Normalize, and there is no target_transform: the same numbers as item by item.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from numcnn.autograd.tensor import Tensor
from numcnn.data import cifar, datasets
from numcnn.data.base import Dataset
from numcnn.vision.transforms.transforms import batch_pipeline

__all__ = ["CIFAR10", "CIFAR100", "FashionMNIST", "IMG_EXTENSIONS", "ImageFolder", "MNIST", "default_loader"]

IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")


def _to_pil(array: np.ndarray, mode: str) -> Any:
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - without Pillow the item stays an ndarray
        return array
    return Image.fromarray(array, mode=mode)


class _Batchable:
    """The fast batch path: ``collated_batch(indices)`` equals default_collate of the items."""

    transform: Callable | None
    target_transform: Callable | None

    def can_collate_batch(self) -> bool:
        if self.target_transform is not None or self.transform is None:
            return False
        return batch_pipeline(self.transform) is not None

    def _transformed(self, img, target) -> tuple:
        """One item as torchvision gives it: ``(transform(img), target_transform(target))``, each if set."""
        if self.transform is not None:
            img = self.transform(img)
        if self.target_transform is not None:
            target = self.target_transform(target)
        return img, target

    def collated_batch(self, indices: np.ndarray) -> list[Tensor]:
        images, labels = self._raw_arrays()
        return [Tensor(batch_pipeline(self.transform)(images[indices])), Tensor(labels[indices])]


class _TorchvisionMNIST(_Batchable):
    """MNIST-layout datasets with torchvision's items and Tensor ``data`` / ``targets``."""

    @property
    def data(self) -> Tensor:
        return Tensor(self._images)

    @data.setter
    def data(self, value: Any) -> None:
        self._images = value.numpy() if isinstance(value, Tensor) else np.asarray(value)

    @property
    def targets(self) -> Tensor:
        return Tensor(self._labels)

    @targets.setter
    def targets(self, value: Any) -> None:
        self._labels = value.numpy() if isinstance(value, Tensor) else np.asarray(value)

    @property
    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        return self._images, self._labels

    def _raw_arrays(self) -> tuple[np.ndarray, np.ndarray]:
        return self._images, self._labels

    def __len__(self) -> int:
        return len(self._images)

    def __getitem__(self, index: int) -> tuple:
        """``(image, label)``: image a PIL "L" image, label an int, each after its transform if any."""
        return self._transformed(_to_pil(self._images[index], "L"), int(self._labels[index]))


class MNIST(_TorchvisionMNIST, datasets.MNIST):
    __doc__ = datasets.MNIST.__doc__


class FashionMNIST(_TorchvisionMNIST, datasets.FashionMNIST):
    __doc__ = datasets.FashionMNIST.__doc__


class _TorchvisionCIFAR(_Batchable):
    def _raw_arrays(self) -> tuple[np.ndarray, np.ndarray]:
        return self.data, self._targets

    def __getitem__(self, index: int) -> tuple:
        """``(image, label)``: image a PIL "RGB" image, label an int, each after its transform if any."""
        return self._transformed(_to_pil(self.data[index], "RGB"), self.targets[index])


class CIFAR10(_TorchvisionCIFAR, cifar.CIFAR10):
    __doc__ = cifar.CIFAR10.__doc__


class CIFAR100(_TorchvisionCIFAR, cifar.CIFAR100):
    __doc__ = cifar.CIFAR100.__doc__


def default_loader(path: str) -> Any:
    """torchvision's loader: the file opened with Pillow and converted to RGB."""
    from PIL import Image

    with open(path, "rb") as f:
        return Image.open(f).convert("RGB")


class ImageFolder(Dataset):
    """``root/<class>/**/<image>``: classes are the sorted subfolder names, samples the files with an image
    extension (or accepted by ``is_valid_file``) in sorted order; item i is ``(loader(path), class index)``."""

    def __init__(self, root: str | os.PathLike, transform: Callable | None = None,
                 target_transform: Callable | None = None, loader: Callable[[str], Any] = default_loader,
                 is_valid_file: Callable[[str], bool] | None = None, allow_empty: bool = False) -> None:
        self.root = os.fspath(root)
        if not Path(self.root).is_dir():
            raise FileNotFoundError(f"ImageFolder: {self.root} is not a folder")
        self.classes = sorted(e.name for e in os.scandir(self.root) if e.is_dir())
        if not self.classes:
            raise FileNotFoundError(f"ImageFolder: couldn't find any class folder in {self.root}")
        self.class_to_idx = {c: i for i, c in enumerate(self.classes)}
        valid = is_valid_file or (lambda p: p.lower().endswith(IMG_EXTENSIONS))
        self.samples: list[tuple[str, int]] = []
        for c in self.classes:
            found = [os.path.join(d, f) for d, _, files in sorted(os.walk(os.path.join(self.root, c), followlinks=True))
                     for f in sorted(files) if valid(os.path.join(d, f))]
            if not found and not allow_empty:
                raise FileNotFoundError(f"ImageFolder: found no valid file for the class {c} "
                                        f"(supported extensions: {', '.join(IMG_EXTENSIONS)})")
            self.samples += [(p, self.class_to_idx[c]) for p in found]
        self.imgs = self.samples
        self.targets = [t for _, t in self.samples]
        self.loader, self.extensions = loader, None if is_valid_file else IMG_EXTENSIONS
        self.transform, self.target_transform = transform, target_transform

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple:
        path, target = self.samples[index]
        sample = self.loader(path)
        if self.transform is not None:
            sample = self.transform(sample)
        if self.target_transform is not None:
            target = self.target_transform(target)
        return sample, target

    def __repr__(self) -> str:
        return f"ImageFolder({self.root!r}, {len(self)} images, {len(self.classes)} classes)"
