"""torchvision.utils: ``make_grid`` and ``save_image`` with torchvision's parameters and numbers.

``make_grid`` tiles a batch (B, C, H, W) into one image (C, rows * (H + padding) + padding, cols * (W + padding) +
padding): ``xmaps = min(nrow, B)`` images per row, ``ymaps = ceil(B / xmaps)`` rows, image k at row ``k // xmaps``,
column ``k % xmaps``, its top-left corner at ``(row * (H + padding) + padding, col * (W + padding) + padding)``,
``pad_value`` everywhere else. One-channel images become three channels; a single image is returned without
padding. ``normalize`` clamps to ``value_range`` (default: the batch's min and max, or each image's with
``scale_each``) and maps it to [0, 1]: ``(x - low) / max(high - low, 1e-5)``, in float32.
"""

from __future__ import annotations

import math
import os
from typing import Any, BinaryIO

import numpy as np

from numcnn.autograd.tensor import Tensor

__all__ = ["make_grid", "save_image"]


def _as_batch(tensor: Any) -> np.ndarray:
    if isinstance(tensor, list):
        arrays = [t.numpy() if isinstance(t, Tensor) else np.asarray(t) for t in tensor]
        tensor = np.stack(arrays)
    arr = tensor.numpy() if isinstance(tensor, Tensor) else np.asarray(tensor)
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim == 3:
        arr = (np.concatenate([arr, arr, arr]) if arr.shape[0] == 1 else arr)[None]
    if arr.ndim != 4:
        raise ValueError(f"make_grid: expected a tensor (B, C, H, W), (C, H, W) or (H, W), got shape {arr.shape}")
    if arr.shape[1] == 1:
        arr = np.concatenate([arr, arr, arr], axis=1)
    return arr


def _norm_ip(img: np.ndarray, low: float, high: float) -> None:
    np.clip(img, low, high, out=img)
    img -= img.dtype.type(low)
    img /= img.dtype.type(max(high - low, 1e-5))


def _normalize(arr: np.ndarray, value_range: tuple[float, float] | None, scale_each: bool) -> np.ndarray:
    if value_range is not None and not isinstance(value_range, tuple):
        raise TypeError("make_grid: value_range has to be a tuple (min, max) if specified; min and max are numbers")
    arr = arr.copy()
    if arr.dtype.kind != "f":
        arr = arr.astype(np.float32)
    for part in (arr if scale_each else [arr]):
        low, high = value_range if value_range is not None else (float(part.min()), float(part.max()))
        _norm_ip(part, low, high)
    return arr


def make_grid(tensor: Any, nrow: int = 8, padding: int = 2, normalize: bool = False,
              value_range: tuple[float, float] | None = None, scale_each: bool = False, pad_value: float = 0.0,
              **kwargs: Any) -> Tensor:
    """A grid of images, as torchvision.utils.make_grid (layout in the module docstring)."""
    if kwargs:
        raise TypeError(f"make_grid: unexpected keyword arguments {sorted(kwargs)}")
    arr = _as_batch(tensor)
    if normalize:
        arr = _normalize(arr, value_range, scale_each)
    if arr.shape[0] == 1:
        return Tensor(arr[0])
    nmaps = arr.shape[0]
    xmaps = min(nrow, nmaps)
    ymaps = int(math.ceil(float(nmaps) / xmaps))
    height, width = arr.shape[2] + padding, arr.shape[3] + padding
    grid = np.full((arr.shape[1], height * ymaps + padding, width * xmaps + padding), pad_value, dtype=arr.dtype)
    for k in range(nmaps):
        y, x = divmod(k, xmaps)
        grid[:, y * height + padding:(y + 1) * height, x * width + padding:(x + 1) * width] = arr[k]
    return Tensor(grid)


def save_image(tensor: Any, fp: str | os.PathLike | BinaryIO, format: str | None = None, **kwargs: Any) -> None:  # noqa: A002
    """``make_grid(tensor, **kwargs)`` written as an 8-bit image with Pillow: pixel = ``clamp(x * 255 + 0.5, 0,
    255)`` truncated (float32), as torchvision."""
    from PIL import Image

    grid = make_grid(tensor, **kwargs).numpy()
    if grid.dtype.kind != "f":
        grid = grid.astype(np.float32)
    pixels = np.clip(grid * grid.dtype.type(255) + grid.dtype.type(0.5), 0, 255).transpose(1, 2, 0).astype(np.uint8)
    Image.fromarray(np.ascontiguousarray(pixels)).save(fp, format=format)
