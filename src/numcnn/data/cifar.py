"""CIFAR-10 and CIFAR-100 from their files: the binary version or the Python version (read without running code).

Binary version (``cifar-10-batches-bin``): ``data_batch_1.bin`` .. ``data_batch_5.bin`` and ``test_batch.bin``, each
a run of records of 1 label byte + 3072 pixel bytes (1024 red, 1024 green, 1024 blue, each 32x32 row by row).
CIFAR-100 (``cifar-100-binary``: ``train.bin``, ``test.bin``) has 2 label bytes per record, coarse then fine.

Python version (``cifar-10-batches-py``: ``data_batch_1`` .. ``data_batch_5``, ``test_batch``; ``cifar-100-python``:
``train``, ``test``): pickled dicts with ``data`` (N, 3072) uint8 and ``labels`` (``fine_labels``), read through
``numcnn.data.safe_pickle`` (allow-list: plain data and numeric arrays; a file naming any other global is refused).

Files are looked for in ``root/<folder>`` then ``root`` itself (Python version first). With ``download=True`` and no
files, the Python version's archive is downloaded into ``root`` (checked against its MD5, as torchvision) and
extracted with tarfile's "data" filter (no paths outside ``root``, no links out, no device files). ``.data`` is uint8
(N, 32, 32, 3) and ``.targets`` a list of ints, as torchvision's; here item i is ``(uint8 (3, 32, 32), label)``
(numcnn.data's channels-first convention; ``numcnn.vision.datasets.CIFAR10`` gives PIL images as torchvision).
"""

from __future__ import annotations

import os
import tarfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from numcnn.data.base import ArrayDataset, gather_equivalent
from numcnn.data.datasets import download_file
from numcnn.data.safe_pickle import load_data_pickle

__all__ = ["CIFAR10", "CIFAR100"]

_PIXELS = 3 * 32 * 32


class CIFAR10(ArrayDataset):
    """CIFAR-10: 50000 training and 10000 test colour images of 32x32, 10 classes (torchvision's arguments)."""

    base_folder, binary_folder = "cifar-10-batches-py", "cifar-10-batches-bin"
    train_list = [f"data_batch_{k}" for k in range(1, 6)]
    test_list = ["test_batch"]
    binary_train, binary_test = [f"data_batch_{k}.bin" for k in range(1, 6)], ["test_batch.bin"]
    label_key, label_bytes, label_byte = "labels", 1, 0
    classes = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    url, tgz_md5 = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz", "c58f30108f718f92721af3b95e74349a"
    timeout = 30.0  # seconds, per connection attempt and per blocking read

    def __init__(self, root: str | os.PathLike, train: bool = True, transform: Callable | None = None,
                 target_transform: Callable | None = None, download: bool = False) -> None:
        self.root, self.train = Path(root).expanduser(), train
        self.transform, self.target_transform = transform, target_transform
        name = type(self).__name__
        if download:
            self.root.mkdir(parents=True, exist_ok=True)
        if not self.root.is_dir():
            raise FileNotFoundError(f"{name}: the dataset folder {self.root} does not exist")
        found = self._locate()
        if found is None and download:
            self._download()
            found = self._locate()
        if found is None:
            hint = f" (download=True fetches {self.url})" if not download else ""
            raise FileNotFoundError(
                f"{name}: no {'training' if train else 'test'} files under {self.root}: expected "
                f"{self.base_folder}/{(self.train_list if train else self.test_list)[0]} (Python version) or "
                f"{self.binary_folder}/{(self.binary_train if train else self.binary_test)[0]} (binary version), "
                f"extracted from the archive at https://www.cs.toronto.edu/~kriz/cifar.html{hint}")
        kind, paths = found
        images, labels = zip(*(self._read_python(p) if kind == "python" else self._read_binary(p) for p in paths),
                             strict=True)
        self.data = np.ascontiguousarray(np.concatenate(images).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
        self._targets = np.concatenate(labels).astype(np.int64)
        self.targets = self._targets.tolist()
        self._chw = self.data.transpose(0, 3, 1, 2)
        self._load_meta()
        self.class_to_idx = {c: i for i, c in enumerate(self.classes)}

    @property
    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        return self._chw, self._targets

    def __len__(self) -> int:
        return len(self.data)

    @gather_equivalent
    def __getitem__(self, index: int) -> tuple:
        """``(image, label)``: image uint8 (3, 32, 32), label int, each after its transform if any."""
        image, label = self._chw[index], self.targets[index]
        if self.transform is not None:
            image = self.transform(image)
        if self.target_transform is not None:
            label = self.target_transform(label)
        return image, label

    def _load_meta(self) -> None:
        """CIFAR-10's class names are fixed; CIFAR-100 reads its own from the ``meta`` file when there is one."""

    def _download(self) -> None:
        archive = self.root / self.url.rsplit("/", 1)[1]
        if not archive.is_file():
            error = download_file(self.url, archive, self.tgz_md5, self.timeout)
            if error is not None:
                raise RuntimeError(f"{type(self).__name__}: could not download {self.url}: {error}")
        try:
            with tarfile.open(archive, "r:gz") as tar:
                tar.extractall(self.root, filter="data")
        except (tarfile.TarError, OSError, EOFError) as err:
            raise ValueError(f"{archive}: cannot extract this archive ({type(err).__name__}: {err})") from None

    def _locate(self) -> tuple[str, list[Path]] | None:
        names = self.train_list if self.train else self.test_list
        binary = self.binary_train if self.train else self.binary_test
        for folder in (self.root / self.base_folder, self.root):
            if all((folder / n).is_file() for n in names):
                return "python", [folder / n for n in names]
        for folder in (self.root / self.binary_folder, self.root):
            if all((folder / n).is_file() for n in binary):
                return "binary", [folder / n for n in binary]
        return None

    def _read_binary(self, path: Path) -> tuple[np.ndarray, np.ndarray]:
        raw = np.fromfile(path, dtype=np.uint8)
        record = self.label_bytes + _PIXELS
        if raw.size == 0 or raw.size % record:
            raise ValueError(f"{path}: {raw.size} bytes is not a whole number of {record}-byte CIFAR records "
                             f"({self.label_bytes} label byte(s) + {_PIXELS} pixels)")
        rows = raw.reshape(-1, record)
        return self._checked(path, rows[:, self.label_bytes:], rows[:, self.label_byte])

    def _read_python(self, path: Path) -> tuple[np.ndarray, np.ndarray]:
        entry = load_data_pickle(path.read_bytes(), str(path))
        if not isinstance(entry, dict):
            raise ValueError(f"{path}: expected a pickled dict, got {type(entry).__name__}")
        entry = {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in entry.items()}
        if "data" not in entry or self.label_key not in entry:
            raise ValueError(f"{path}: expected keys 'data' and '{self.label_key}', got {sorted(map(str, entry))}")
        data = entry["data"]
        if isinstance(data, bytes | bytearray):
            data = np.frombuffer(bytes(data), dtype=np.uint8)
        data = np.asarray(data)
        if data.dtype != np.uint8 or data.size % _PIXELS:
            raise ValueError(f"{path}: expected uint8 data of shape (N, {_PIXELS}), got {data.dtype} {data.shape}")
        labels = entry[self.label_key]
        try:
            labels = np.asarray(labels, dtype=np.int64)
        except (TypeError, ValueError):
            raise ValueError(f"{path}: '{self.label_key}' must be a list of ints") from None
        return self._checked(path, data.reshape(-1, _PIXELS), labels)

    def _checked(self, path: Path, pixels: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if labels.ndim != 1 or labels.shape[0] != pixels.shape[0]:
            raise ValueError(f"{path}: {labels.size} labels for {pixels.shape[0]} images")
        if labels.size and (labels.min() < 0 or labels.max() >= len(self.classes)):
            raise ValueError(f"{path}: label {labels.max()} out of range for {len(self.classes)} classes")
        return pixels, labels

    def __repr__(self) -> str:
        return f"{type(self).__name__}(split={'train' if self.train else 'test'}, {len(self)} images, root={self.root})"


class CIFAR100(CIFAR10):
    """CIFAR-100: 100 fine classes (``targets``: the fine labels), files ``train`` / ``test``."""

    base_folder, binary_folder = "cifar-100-python", "cifar-100-binary"
    train_list, test_list = ["train"], ["test"]
    binary_train, binary_test = ["train.bin"], ["test.bin"]
    label_key, label_bytes, label_byte = "fine_labels", 2, 1
    classes = [str(k) for k in range(100)]
    url, tgz_md5 = "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz", "eb9058c3a382ffc7106e4002c42a8d85"

    def _load_meta(self) -> None:
        meta = self.root / self.base_folder / "meta"
        if meta.is_file():
            names = load_data_pickle(meta.read_bytes(), str(meta))
            fine = names.get("fine_label_names") if isinstance(names, dict) else None
            if isinstance(fine, list) and len(fine) == 100:
                self.classes = [n.decode() if isinstance(n, bytes) else str(n) for n in fine]
