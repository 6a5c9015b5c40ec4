"""ImageFolder: images stored as ``root/<class name>/<file>``, read with Pillow (an optional dependency)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from numcnn.data.base import Dataset

__all__ = ["ImageFolder", "IMG_EXTENSIONS"]

IMG_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm", ".ppm")


def _pillow():
    try:
        from PIL import Image
    except ImportError as err:
        raise ImportError(
            "ImageFolder reads images with Pillow, which is not installed: pip install pillow "
            "(or pip install 'numcnn[cli]')"
        ) from err
    return Image


class ImageFolder(Dataset):
    """One subfolder of ``root`` per class (sorted names -> labels 0, 1, ...), one image per file.

    Item i is ``(image, label)``: image uint8 (C, H, W), C = 1 for grayscale files and 3 otherwise
    (``mode="L"`` or ``"RGB"`` forces one), after ``transform``; label int after ``target_transform``.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        transform: Callable | None = None,
        target_transform: Callable | None = None,
        mode: str | None = None,
    ) -> None:
        if mode not in (None, "L", "RGB"):
            raise ValueError(f"ImageFolder: mode must be None, 'L' or 'RGB', got {mode!r}")
        _pillow()  # fail early, with the install hint, rather than at the first item
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"ImageFolder: {self.root} is not a folder")
        self.classes = sorted(d.name for d in self.root.iterdir() if d.is_dir())
        if not self.classes:
            raise FileNotFoundError(f"ImageFolder: {self.root} has no class subfolders")
        self.class_to_idx = {c: i for i, c in enumerate(self.classes)}
        self.samples = [
            (str(f), label)
            for label, c in enumerate(self.classes)
            for f in sorted((self.root / c).rglob("*"))
            if f.is_file() and f.suffix.lower() in IMG_EXTENSIONS
        ]
        if not self.samples:
            raise FileNotFoundError(
                f"ImageFolder: no image files ({', '.join(IMG_EXTENSIONS)}) under {self.root}'s class folders"
            )
        self.targets = [label for _, label in self.samples]
        self.transform = transform
        self.target_transform = target_transform
        self.mode = mode

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple:
        path, label = self.samples[index]
        with _pillow().open(path) as img:
            mode = self.mode or ("L" if img.mode in ("1", "L", "P") and _is_gray(img) else "RGB")
            pixels = np.asarray(img.convert(mode), dtype=np.uint8)
        image = pixels[None] if pixels.ndim == 2 else np.ascontiguousarray(pixels.transpose(2, 0, 1))
        if self.transform is not None:
            image = self.transform(image)
        if self.target_transform is not None:
            label = self.target_transform(label)
        return image, label

    def __repr__(self) -> str:
        return f"ImageFolder({str(self.root)!r}, {len(self)} images, {len(self.classes)} classes)"


def _is_gray(img) -> bool:
    if img.mode != "P":
        return True
    # A palette image is grayscale only if every palette entry has r == g == b.
    palette = np.asarray(img.getpalette() or [], dtype=np.uint8).reshape(-1, 3)
    return bool(np.all(palette == palette[:, :1]))
