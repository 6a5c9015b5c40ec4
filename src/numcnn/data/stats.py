"""Dataset statistics: the per-channel mean and standard deviation used to normalise inputs."""

from __future__ import annotations

from typing import Any

import numpy as np

from numcnn.data.loader import DataLoader

__all__ = ["channel_stats"]


def _batches(dataset: Any, batch_size: int):
    # as_tensors=False: plain ndarrays; uint8 pixels arrive scaled to [0, 1] float32, exactly as training sees them.
    for batch in DataLoader(dataset, batch_size=batch_size, as_tensors=False):
        x = batch[0] if isinstance(batch, tuple) else batch
        if x.ndim != 4:
            raise ValueError(f"channel_stats: expected image batches (N, C, H, W), got shape {x.shape}")
        yield x


def channel_stats(dataset: Any, batch_size: int = 10_000) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel ``(mean, std)`` of the images of ``dataset`` as a DataLoader yields them.

    ``dataset``: anything DataLoader takes (MNIST, a Subset of it, a TensorDataset...) whose first field is
    images, (H, W) or (C, H, W) per item; uint8 pixels count as ``x / 255`` (ToTensor), so the result feeds
    ``Normalize(mean, std)`` placed after it. The std is the population one (ddof=0), over every pixel of every
    image of the channel. Two passes in batches, summed in float64 so that tens of millions of pixels keep
    their digits; the returned values are Python floats, one per channel.

    Raises ``ValueError`` (one line) for a dataset with no images, for a channel whose std is 0 (constant
    images: ``Normalize`` would divide by zero) and for a mean or std that is not finite (NaN or inf pixels).
    """
    n = 0
    total = None
    for x in _batches(dataset, batch_size):
        s = x.sum(axis=(0, 2, 3), dtype=np.float64)
        total = s if total is None else total + s
        n += x.shape[0] * x.shape[2] * x.shape[3]
    if total is None or n == 0:
        raise ValueError("channel_stats: the dataset holds no images")
    mean = total / n
    _check_finite("mean", mean)  # before the second pass, whose inf - inf would only add warnings
    sq = np.zeros_like(mean)
    for x in _batches(dataset, batch_size):
        d = x - mean.astype(x.dtype)[None, :, None, None]
        sq += np.einsum("nchw,nchw->c", d, d, dtype=np.float64)
    std = np.sqrt(sq / n)
    _check_finite("std", std)
    flat = [c for c in range(std.size) if std[c] == 0]
    if flat:
        c = flat[0]
        raise ValueError(f"channel_stats: channel {c} has std 0: the images are constant (every pixel of the channel "
                         f"is {mean[c]:g} as the loader yields it), so normalising would divide by zero "
                         f"(constant channels: {', '.join(map(str, flat))})")
    return tuple(float(v) for v in mean), tuple(float(v) for v in std)


def _check_finite(what: str, values: np.ndarray) -> None:
    """Refuse a NaN or infinite mean / std, which ``Normalize`` would spread to every input, naming the channel."""
    bad = [c for c in range(values.size) if not np.isfinite(values[c])]
    if bad:
        raise ValueError(f"channel_stats: channel {bad[0]} has {what} {values[bad[0]]:g}: the images hold NaN or "
                         f"infinite pixels (channels not finite: {', '.join(map(str, bad))})")
