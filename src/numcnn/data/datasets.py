"""MNIST and Fashion-MNIST: find the IDX files on disk, or download and verify them, then load them.

Files are looked for, in this order, in:

1. ``root`` (the folder itself, ``root/<name>``, or torchvision's ``root/<ClassName>/raw``),
2. ``$NUMCNN_DATA/<name>``, then ``$NUMCNN_DATA`` itself,
3. the user cache ``$XDG_CACHE_HOME/numcnn/<name>`` (default ``~/.cache/numcnn/<name>``),
4. system folders (Fashion-MNIST: ``/usr/share/datasets/fashion-mnist`` from Debian's
   ``dataset-fashion-mnist`` package),

where ``<name>`` is "mnist" or "fashion-mnist". A ``root`` that does not exist is an error (FileNotFoundError
naming it), not a reason to look elsewhere, unless ``download=True`` (the files are then downloaded into it); a
``root`` that exists but lacks the files is followed by the other places. A folder counts when it holds the split's
two files, gzipped (``train-images-idx3-ubyte.gz``) or not (``train-images-idx3-ubyte``). Otherwise, with
``download=True``, the four canonical ``.gz`` files are fetched from the mirrors in order (``mirrors=``,
else ``$NUMCNN_MIRRORS``, comma-separated base URLs, else the defaults), checked against their MD5 and
moved into ``root`` (when given) or the user cache only once complete.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from numcnn._io import atomic_write
from numcnn.data.base import ArrayDataset, gather_equivalent
from numcnn.data.idx import read_idx

__all__ = ["MNIST", "FashionMNIST", "download_file", "user_cache_dir"]


def user_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/numcnn`` if that is an absolute path, else ``~/.cache/numcnn``."""
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    base = Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".cache"
    return base / "numcnn"


def download_file(url: str, dest: Path, md5: str, timeout: float) -> str | None:
    """Download ``url`` to ``dest`` atomically if its MD5 is ``md5``; return why not otherwise (None: done).
    ``timeout``: seconds, per connection attempt and per blocking read. A failed download leaves nothing at dest."""
    def download(f) -> None:
        digest, size = hashlib.md5(), 0
        request = urllib.request.Request(url, headers={"User-Agent": "numcnn"})
        with urllib.request.urlopen(request, timeout=timeout) as response:
            declared = response.headers.get("Content-Length")
            while chunk := response.read(1 << 20):
                f.write(chunk)
                digest.update(chunk)
                size += len(chunk)
        # http.client does not complain when the connection closes early: check the length.
        if declared is not None and declared.isdigit() and size != int(declared):
            raise _Rejected(f"truncated: received {size} of {declared} bytes")
        if digest.hexdigest() != md5:
            raise _Rejected(f"MD5 mismatch: got {digest.hexdigest()}, expected {md5} ({size} bytes)")

    try:
        atomic_write(dest, download)
        return None
    except _Rejected as err:
        return str(err)
    except urllib.error.HTTPError as err:
        return f"HTTP {err.code} {err.reason}"
    except urllib.error.URLError as err:
        return f"unreachable ({err.reason})"
    except (OSError, http.client.HTTPException, ValueError) as err:
        return f"{type(err).__name__}: {err}"


class _Rejected(Exception):
    """A downloaded file that arrived whole but is not the expected one (size or MD5)."""


class _IdxImageDataset(ArrayDataset):
    """Shared machinery of MNIST-layout datasets: 28x28 uint8 images, labels 0..9, four IDX files."""

    name: str  # folder name under $NUMCNN_DATA and the cache
    resources: dict[str, str]  # canonical .gz file name -> MD5 of that downloaded file
    default_mirrors: tuple[str, ...]
    system_dirs: tuple[str, ...] = ()
    classes: list[str]
    timeout: float = 30.0  # seconds, per connection attempt and per blocking read
    apt_package: str | None = None  # a distribution package that installs the files...
    apt_folder: str | None = None  # ...in this folder

    def __init__(
        self,
        root: str | os.PathLike | None = None,
        train: bool = True,
        transform: Callable | None = None,
        target_transform: Callable | None = None,
        download: bool = False,
        mirrors: Sequence[str] | None = None,
    ) -> None:
        self.train = train
        self.transform = transform
        self.target_transform = target_transform
        prefix = "train" if train else "t10k"
        files = (f"{prefix}-images-idx3-ubyte.gz", f"{prefix}-labels-idx1-ubyte.gz")
        if root is not None and not (Path(root).is_dir() or (download and not os.path.lexists(root))):
            what = "does not exist" if not os.path.lexists(root) else "is not a folder"
            raise FileNotFoundError(f"{type(self).__name__}: the dataset folder {root} {what}")
        candidates = self._candidates(root)
        folder = next((d for _, d in candidates if all(self._find(d, f) for f in files)), None)
        if folder is None:
            if not download:
                raise FileNotFoundError(self._explain("could not find", files, candidates, []))
            folder = Path(root) if root is not None else user_cache_dir() / self.name
            failures = self._download(folder, self._mirrors(mirrors))
            if failures:
                raise RuntimeError(self._explain("could not download", files, candidates, failures))
        self.folder = folder
        image_path, label_path = (self._find(folder, f) for f in files)
        images, labels = read_idx(image_path), read_idx(label_path)
        self._check(images, labels, image_path, label_path)
        self.data = images
        self.targets = labels.astype(np.int64)

    @property
    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        return self.data, self.targets

    @property
    def class_to_idx(self) -> dict[str, int]:
        return {c: i for i, c in enumerate(self.classes)}

    @gather_equivalent
    def __getitem__(self, index: int) -> tuple:
        """``(image, label)``: image uint8 (28, 28), label int, each after its transform if any."""
        image, label = self.data[index], int(self.targets[index])
        if self.transform is not None:
            image = self.transform(image)
        if self.target_transform is not None:
            label = self.target_transform(label)
        return image, label

    def __repr__(self) -> str:
        split = "train" if getattr(self, "train", True) else "test"
        if not hasattr(self, "data"):
            return f"{type(self).__name__}(split={split}, not loaded)"
        return f"{type(self).__name__}(split={split}, {len(self)} images, folder={str(self.folder)!r})"

    # -- locating ---------------------------------------------------------------------------------

    def _candidates(self, root: str | os.PathLike | None) -> list[tuple[str, Path]]:
        """(how it was found, folder) in search order."""
        out: list[tuple[str, Path]] = []
        if root is not None:
            out += [("root", d) for d in self.root_folders(root)]
        env = os.environ.get("NUMCNN_DATA")
        if env:
            out += [("$NUMCNN_DATA", Path(env) / self.name), ("$NUMCNN_DATA", Path(env))]
        out.append(("user cache", user_cache_dir() / self.name))
        out += [("system", Path(d)) for d in self.system_dirs]
        return out

    @classmethod
    def root_folders(cls, root: str | os.PathLike) -> list[Path]:
        """The folders of ``root`` where the files are looked for: itself, ``root/<name>``, ``root/<Class>/raw``."""
        r = Path(root)
        return [r, r / cls.name, r / cls.__name__ / "raw"]

    @staticmethod
    def _find(folder: Path, gz_name: str) -> Path | None:
        for path in (folder / gz_name, folder / gz_name.removesuffix(".gz")):
            if path.is_file():
                return path
        return None

    def _mirrors(self, mirrors: Sequence[str] | None) -> list[str]:
        if mirrors is None:
            env = os.environ.get("NUMCNN_MIRRORS", "")
            mirrors = [m for m in (s.strip() for s in env.split(",")) if m] or self.default_mirrors
        if isinstance(mirrors, str):
            mirrors = [mirrors]
        return list(mirrors)

    def _explain(self, what: str, files: tuple[str, str], candidates, failures: list[str]) -> str:
        cls = type(self).__name__
        lines = [f"{cls}: {what} {files[0]} and {files[1]} (gzipped or not).", "Looked in:"]
        lines += [f"  {how}: {folder}" for how, folder in candidates]
        if not os.environ.get("NUMCNN_DATA"):
            lines.append("  ($NUMCNN_DATA is not set)")
        if failures:
            lines.append("Download attempts:")
            lines += [f"  {f}" for f in failures]
        lines.append("Options:")
        lines.append("  - pass root=<folder holding the files>")
        lines.append(f"  - set NUMCNN_DATA=<folder> (holding the files, or a '{self.name}' subfolder with them)")
        if self.apt_package:
            lines.append(f"  - apt-get install {self.apt_package} (installs them in {self.apt_folder})")
        if what == "could not find":
            lines.append(f"  - download=True (from {', '.join(self._mirrors(None))})")
        else:
            lines.append("  - try other mirrors with mirrors=[...] or NUMCNN_MIRRORS=url1,url2")
        return "\n".join(lines)

    def _check(self, images: np.ndarray, labels: np.ndarray, image_path: Path, label_path: Path) -> None:
        if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (28, 28):
            raise ValueError(
                f"{image_path}: expected uint8 images of shape (N, 28, 28), got {images.dtype} {images.shape}"
            )
        if images.shape[0] == 0:
            raise ValueError(f"{image_path}: the file holds 0 images (its IDX header says shape {images.shape}); "
                             f"there is nothing to train or test on")
        if labels.dtype != np.uint8 or labels.ndim != 1:
            raise ValueError(f"{label_path}: expected uint8 labels of shape (N,), got {labels.dtype} {labels.shape}")
        if labels.shape[0] != images.shape[0]:
            raise ValueError(f"{label_path}: {labels.shape[0]} labels for {images.shape[0]} images in {image_path}")
        if labels.size and labels.max() >= len(self.classes):
            raise ValueError(f"{label_path}: label {labels.max()} out of range for {len(self.classes)} classes")

    # -- downloading ------------------------------------------------------------------------------

    def _download(self, folder: Path, mirrors: list[str]) -> list[str]:
        """Fetch the missing resources into ``folder``; if any failed, return one line per failed attempt."""
        folder.mkdir(parents=True, exist_ok=True)
        attempts: list[str] = []
        complete = True
        for filename, md5 in self.resources.items():
            if self._find(folder, filename):
                continue
            for base in mirrors:
                url = base.rstrip("/") + "/" + filename
                error = self._fetch(url, folder / filename, md5)
                if error is None:
                    break
                attempts.append(f"{url}: {error}")
            else:
                complete = False
        return [] if complete else attempts

    def _fetch(self, url: str, dest: Path, md5: str) -> str | None:
        """Download ``url`` to ``dest`` atomically if its MD5 is ``md5``; return why not otherwise."""
        return download_file(url, dest, md5, self.timeout)


class MNIST(_IdxImageDataset):
    """The MNIST handwritten digits: ``.data`` uint8 (N, 28, 28), ``.targets`` int64 (N,), 60000 / 10000.

    Same arguments as torchvision's MNIST (``root=None`` searches the usual places, see the module
    docstring), plus ``mirrors``: base URLs to download from, tried in order.
    """

    name = "mnist"
    resources = {
        "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
        "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
        "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
    }
    default_mirrors = ("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/")
    classes = [
        "0 - zero", "1 - one", "2 - two", "3 - three", "4 - four",
        "5 - five", "6 - six", "7 - seven", "8 - eight", "9 - nine",
    ]  # fmt: skip


class FashionMNIST(_IdxImageDataset):
    """Zalando's Fashion-MNIST: ``.data`` uint8 (N, 28, 28), ``.targets`` int64 (N,), 60000 / 10000.

    Same arguments as torchvision's FashionMNIST, plus ``mirrors``. Also found in
    ``/usr/share/datasets/fashion-mnist`` (``apt-get install dataset-fashion-mnist``).
    """

    name = "fashion-mnist"
    resources = {
        "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
        "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
        "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
    }
    default_mirrors = ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",)
    system_dirs = ("/usr/share/datasets/fashion-mnist",)
    apt_package = "dataset-fashion-mnist"
    apt_folder = "/usr/share/datasets/fashion-mnist"
    classes = [
        "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
        "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
    ]  # fmt: skip
