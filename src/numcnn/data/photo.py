"""Turn a photo or a drawing (PNG, JPEG, anything Pillow reads) into an image like MNIST's.

MNIST and Fashion-MNIST images are 28x28, gray, a light object on a black background. A photo of a
shoe on a table or a digit drawn in black ink on white paper is the other way round, so it is inverted
when its border is bright (the border is background in nearly every such picture).

By default (``fit=None``) the whole picture is stretched to the target size. ``fit="fashion-mnist"`` and
``fit="mnist"`` prepare it the way those datasets were made, keeping the aspect ratio: the uniform border is
trimmed (background = the border's most frequent value), the object is scaled so that its longer side fits the
frame (28 px for Fashion-MNIST; 20 px for MNIST), centred (MNIST: by centre of mass in the 28x28 frame) and padded
with the background.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

__all__ = ["FITS", "background_value", "border_mean", "load_photo", "to_dataset_style"]

FITS = ("stretch", "fashion-mnist", "mnist")
TRIM_TOLERANCE = 24  # a pixel this far (or less) from the background value counts as background (JPEG noise)


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


def background_value(image: np.ndarray) -> int:
    """The most frequent value of the outermost rows and columns of a uint8 gray image (H, W)."""
    image = np.asarray(image)
    border = np.concatenate([image[0], image[-1], image[1:-1, 0], image[1:-1, -1]]).astype(np.uint8)
    return int(np.argmax(np.bincount(border.ravel(), minlength=256)))


def _fit(Image, img, size: tuple[int, int], fit: str) -> np.ndarray:
    """Trim the uniform border, scale the object to fit (keeping its aspect), centre it, pad with the background."""
    h, w = size
    a = np.asarray(img, dtype=np.uint8)
    bg = background_value(a)
    rows, cols = np.nonzero(np.abs(a.astype(np.int16) - bg) > TRIM_TOLERANCE)
    canvas = np.full((h, w), bg, dtype=np.uint8)
    if rows.size == 0:  # nothing but background
        return canvas
    crop = a[rows.min():rows.max() + 1, cols.min():cols.max() + 1]
    bh, bw = (h, w) if fit == "fashion-mnist" else (max(1, round(h * 20 / 28)), max(1, round(w * 20 / 28)))
    scale = min(bh / crop.shape[0], bw / crop.shape[1])
    ph, pw = min(bh, max(1, round(crop.shape[0] * scale))), min(bw, max(1, round(crop.shape[1] * scale)))
    patch = np.asarray(Image.fromarray(crop, mode="L").resize((pw, ph), Image.Resampling.LANCZOS), dtype=np.uint8)
    r0, c0 = (h - ph) // 2, (w - pw) // 2
    if fit == "mnist":  # centre of mass of the ink (distance from the background) at the frame's centre
        ink = np.abs(patch.astype(np.float64) - bg)
        if ink.sum() > 0:
            ys, xs = np.indices(ink.shape)
            cy, cx = (ink * ys).sum() / ink.sum(), (ink * xs).sum() / ink.sum()
            r0 = int(np.clip(round((h - 1) / 2 - cy), 0, h - ph))
            c0 = int(np.clip(round((w - 1) / 2 - cx), 0, w - pw))
    canvas[r0:r0 + ph, c0:c0 + pw] = patch
    return canvas


def to_dataset_style(gray, size: int | Sequence[int] = 28, invert: bool | None = None,
                     fit: str | None = None) -> tuple[np.ndarray, bool]:
    """Resize a gray image to ``size`` (int or (height, width)) and make it light-on-dark.

    ``gray``: uint8 (H, W) ndarray or a Pillow image (converted to "L"). Resizing uses Pillow's
    antialiasing filter (LANCZOS). ``fit``: None or "stretch" resizes the whole image without keeping the aspect
    ratio; "fashion-mnist" / "mnist" trim, fit, centre and pad as described in the module docstring.
    ``invert``: True/False forces it; None (auto) inverts when the border mean (of the resized image when
    stretching, of the picture itself otherwise) is above 127.5 (dark-on-light).
    Returns ``(uint8 (height, width), inverted)``.
    """
    Image = _pil()
    h, w = (size, size) if isinstance(size, int) else tuple(size)
    fit = fit or "stretch"
    if fit not in FITS:
        raise ValueError(f"to_dataset_style: fit must be one of {', '.join(FITS)}, got {fit!r}")
    img = gray if isinstance(gray, Image.Image) else Image.fromarray(np.asarray(gray, dtype=np.uint8), mode="L")
    if img.mode != "L":
        img = img.convert("L")
    if fit == "stretch":
        out = np.asarray(img.resize((w, h), Image.Resampling.LANCZOS), dtype=np.uint8)
        if invert is None:
            invert = border_mean(out) > 127.5
    else:  # the object may fill the prepared frame: judge the border of the picture itself
        out = _fit(Image, img, (h, w), fit)
        if invert is None:
            invert = border_mean(np.asarray(img, dtype=np.uint8)) > 127.5
    if invert:
        out = 255 - out
    return np.ascontiguousarray(out), bool(invert)


def load_photo(path, size: int | Sequence[int] = 28,
               invert: bool | None = None, fit: str | None = None) -> tuple[np.ndarray, bool]:
    """Read an image file (a path, or a binary file object such as an upload's ``io.BytesIO``) as a dataset-style
    gray image: ``(uint8 (height, width), inverted)``.

    Colour is converted to gray (ITU-R 601 luma, Pillow's "L"); transparent pixels count as white paper, so a
    drawing on a transparent background is dark-on-light. Then :func:`to_dataset_style` (``fit`` as there).
    Raises FileNotFoundError for a missing file and ValueError (naming the file) for one Pillow cannot read.
    """
    Image = _pil()
    if not hasattr(path, "read"):
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
        name = path if isinstance(path, str) else "the image"
        raise ValueError(f"{name}: cannot read this image ({type(err).__name__}: {err})") from None
    return to_dataset_style(gray, size, invert, fit)
