"""Turn a photo or a drawing (PNG, JPEG, anything Pillow reads) into an image like MNIST's.

MNIST and Fashion-MNIST images are 28x28, gray, a light object on a black background. A photo of a
shoe on a table or a digit drawn in black ink on white paper is the other way round, so it is inverted
when its border is bright (the border is background in nearly every such picture).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

__all__ = ["border_mean", "load_photo", "to_dataset_style"]


def _pil():
    try:
        from PIL import Image
    except ImportError as err:  # pragma: no cover - the [cli] extra brings it
        raise ImportError("reading images needs Pillow: pip install 'numcnn[cli]' (or pip install pillow)") from err
    return Image


def border_mean(image: np.ndarray) -> float:
    """Mean of the pixels of the outermost rows and columns of a gray image (H, W)."""
    image = np.asarray(image)
    if image.ndim != 2 or min(image.shape) < 1:
        raise ValueError(f"border_mean: expected a gray image (H, W), got shape {image.shape}")
    border = np.concatenate([image[0], image[-1], image[1:-1, 0], image[1:-1, -1]])
    return float(border.mean(dtype=np.float64))


def to_dataset_style(gray, size: int | Sequence[int] = 28, invert: bool | None = None) -> tuple[np.ndarray, bool]:
    """Resize a gray image to ``size`` (int or (height, width)) and make it light-on-dark.

    ``gray``: uint8 (H, W) ndarray or a Pillow image (converted to "L"). Resizing uses Pillow's
    antialiasing filter (LANCZOS) over the whole image, without keeping the aspect ratio, as the datasets' images
    fill their frame. ``invert``: True/False forces it; None (auto) inverts when the resized image's border mean
    is above 127.5 (dark-on-light). Returns ``(uint8 (height, width), inverted)``.
    """
    Image = _pil()
    h, w = (size, size) if isinstance(size, int) else tuple(size)
    img = gray if isinstance(gray, Image.Image) else Image.fromarray(np.asarray(gray, dtype=np.uint8), mode="L")
    if img.mode != "L":
        img = img.convert("L")
    out = np.asarray(img.resize((w, h), Image.Resampling.LANCZOS), dtype=np.uint8)
    if invert is None:
        invert = border_mean(out) > 127.5
    if invert:
        out = 255 - out
    return np.ascontiguousarray(out), bool(invert)


def load_photo(path: str | os.PathLike, size: int | Sequence[int] = 28,
               invert: bool | None = None) -> tuple[np.ndarray, bool]:
    """Read an image file as a dataset-style gray image: ``(uint8 (height, width), inverted)``.

    Colour is converted to gray (ITU-R 601 luma, Pillow's "L"); transparent pixels count as white paper, so a
    drawing on a transparent background is dark-on-light. Then :func:`to_dataset_style`.
    Raises FileNotFoundError for a missing file and ValueError (naming the file) for one Pillow cannot read.
    """
    Image = _pil()
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such image file")
    try:
        with Image.open(path) as im:
            im.load()
            if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
                rgba = im.convert("RGBA")
                white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
                im = Image.alpha_composite(white, rgba)
            gray = im.convert("L")
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        raise ValueError(f"{path}: cannot read this image ({type(err).__name__}: {err})") from None
    return to_dataset_style(gray, size, invert)
