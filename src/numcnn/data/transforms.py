"""Image transforms that work on a whole batch at once, and on single images.

Every transform takes an ndarray laid out as a batch ``(N, C, H, W)``, one image ``(C, H, W)`` or one
single-channel image ``(H, W)`` (the number of dimensions decides; a stack of grayscale images
``(N, H, W)`` must be given its channel axis first, ``x[:, None]``, as DataLoader does), and returns
the same layout. Spatial transforms act on the last two axes. Nothing loops over the batch in Python.

Random transforms draw from, in this order: the ``generator`` given to the transform, the ``rng``
passed to the call (DataLoader passes one derived from its seed, so a seeded loader is reproducible),
or numcnn's global generator (``numcnn.manual_seed``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from numcnn._config import default_generator

__all__ = [
    "Transform",
    "Compose",
    "Lambda",
    "ToTensor",
    "Normalize",
    "Pad",
    "RandomCrop",
    "RandomHorizontalFlip",
    "is_batch_transform",
]

_PAD_MODES = ("constant", "edge", "reflect", "symmetric")


def _check_image(name: str, x: np.ndarray) -> None:
    if x.ndim not in (2, 3, 4):
        raise ValueError(f"{name}: expected an image (H, W) or (C, H, W) or a batch (N, C, H, W), got shape {x.shape}")


def _as_batch(x: np.ndarray) -> np.ndarray:
    """View any accepted layout as (N, C, H, W); undo with ``out.reshape(out.shape[4 - x.ndim:])``."""
    return x.reshape((1,) * (4 - x.ndim) + x.shape)


def _pair(name: str, value: int | Sequence[int]) -> tuple[int, int]:
    pair = (value, value) if isinstance(value, int | np.integer) else tuple(value)
    if len(pair) != 2 or any(int(v) <= 0 for v in pair):
        raise ValueError(f"{name}: size must be a positive int or a pair (height, width), got {value!r}")
    return int(pair[0]), int(pair[1])


def _padding(name: str, padding: int | Sequence[int]) -> tuple[int, int, int, int]:
    """torchvision's convention -> (left, top, right, bottom)."""
    p = [padding] if isinstance(padding, int | np.integer) else list(padding)
    if len(p) == 1:
        p = p * 4
    elif len(p) == 2:
        p = [p[0], p[1], p[0], p[1]]
    if len(p) != 4 or any(int(v) < 0 for v in p):
        raise ValueError(
            f"{name}: padding must be a non-negative int, (left/right, top/bottom) or "
            f"(left, top, right, bottom), got {padding!r}"
        )
    return int(p[0]), int(p[1]), int(p[2]), int(p[3])


class Transform:
    """Base class of the batch-capable transforms: ``t(x, rng=None) -> ndarray``.

    DataLoader applies a dataset's transform to a whole gathered batch only when it is a Transform;
    any other callable is taken to work on one item at a time.
    """

    generator: np.random.Generator | None = None

    def __call__(self, x: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        raise NotImplementedError

    def _generator(self, rng: np.random.Generator | None) -> np.random.Generator:
        if self.generator is not None:
            return self.generator
        if rng is not None:
            return rng
        return default_generator()

    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.extra_repr()})"


def _seeded(generator: np.random.Generator | int | None) -> np.random.Generator | None:
    return None if generator is None else np.random.default_rng(generator)


def is_batch_transform(t: object) -> bool:
    """Whether ``t`` (None counts) may be applied to a whole batch instead of item by item."""
    if t is None:
        return True
    if isinstance(t, Compose):
        return all(is_batch_transform(c) for c in t.transforms)
    return isinstance(t, Transform)


def _apply(t: Callable, x: np.ndarray, rng: np.random.Generator | None) -> np.ndarray:
    return t(x, rng=rng) if isinstance(t, Transform) else t(x)


class Compose(Transform):
    """Apply ``transforms`` in order; the call's ``rng`` is passed on to each Transform among them."""

    def __init__(self, transforms: Sequence[Callable]) -> None:
        self.transforms = list(transforms)

    def __call__(self, x: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        for t in self.transforms:
            x = _apply(t, x, rng)
        return x

    def __repr__(self) -> str:
        inner = "".join(f"\n    {t!r}," for t in self.transforms)
        return f"Compose([{inner}\n])"


class Lambda(Transform):
    """Wrap ``fn(x) -> ndarray``, declaring that it works on whole batches as well as single images."""

    def __init__(self, fn: Callable[[np.ndarray], np.ndarray]) -> None:
        self.fn = fn

    def __call__(self, x: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        return self.fn(x)

    def extra_repr(self) -> str:
        return getattr(self.fn, "__name__", repr(self.fn))


class ToTensor(Transform):
    """uint8 [0, 255] -> float32 [0, 1] (``x / 255``, as torchvision); a 2-D (H, W) image gets a channel axis.

    Other integer and bool inputs become float32 unscaled; float inputs pass through unchanged.
    Unlike torchvision's ndarray path, the input is channels-first already: (N, C, H, W) / (C, H, W).
    """

    def __call__(self, x: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        x = np.asarray(x)
        _check_image("ToTensor", x)
        if x.ndim == 2:
            x = x[None]
        if x.dtype == np.uint8:
            # Divide (not multiply by 1/255) so values match torch's ``.div(255)`` bit for bit.
            return np.divide(x, np.float32(255), dtype=np.float32)
        if x.dtype.kind in "biu":
            return x.astype(np.float32)
        return x


class Normalize(Transform):
    """``(x - mean[c]) / std[c]`` per channel, computed in the input's float dtype (float32 stays float32).

    ``mean``, ``std``: one value per channel, or a single value for all channels.
    """

    def __init__(self, mean: float | Sequence[float], std: float | Sequence[float]) -> None:
        self.mean = tuple(np.atleast_1d(np.asarray(mean, dtype=np.float64)).tolist())
        self.std = tuple(np.atleast_1d(np.asarray(std, dtype=np.float64)).tolist())
        if any(s == 0 for s in self.std):
            raise ValueError(f"Normalize: std must be non-zero, got {self.std}")

    def __call__(self, x: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        x = np.asarray(x)
        _check_image("Normalize", x)
        if x.dtype.kind != "f":
            raise TypeError(f"Normalize: expected a float image (apply ToTensor first), got dtype {x.dtype}")
        channels = 1 if x.ndim == 2 else x.shape[-3]
        for label, v in (("mean", self.mean), ("std", self.std)):
            if len(v) not in (1, channels):
                raise ValueError(
                    f"Normalize: {label} has {len(v)} values but the input has {channels} channels (shape {x.shape})"
                )
        shape = (-1, 1) if x.ndim == 2 else (-1, 1, 1)
        mean = np.asarray(self.mean, dtype=x.dtype).reshape(shape)
        std = np.asarray(self.std, dtype=x.dtype).reshape(shape)
        return (x - mean) / std

    def extra_repr(self) -> str:
        return f"mean={self.mean}, std={self.std}"


def _pad(name: str, x: np.ndarray, pad: tuple[int, int, int, int], fill: float, mode: str) -> np.ndarray:
    left, top, right, bottom = pad
    widths = [(0, 0)] * (x.ndim - 2) + [(top, bottom), (left, right)]
    if mode == "constant":
        return np.pad(x, widths, mode="constant", constant_values=fill)
    if mode == "reflect" and (max(top, bottom) >= x.shape[-2] or max(left, right) >= x.shape[-1]):
        raise ValueError(f"{name}: reflect padding {pad} must be smaller than the image size {x.shape[-2:]}")
    return np.pad(x, widths, mode=mode)


class Pad(Transform):
    """Pad the last two axes as torchvision's Pad.

    ``padding``: int (all sides), (left/right, top/bottom) or (left, top, right, bottom).
    ``padding_mode``: "constant" (with ``fill``), "edge", "reflect" (without repeating the edge) or
    "symmetric" (repeating it).
    """

    def __init__(self, padding: int | Sequence[int], fill: float = 0, padding_mode: str = "constant") -> None:
        if padding_mode not in _PAD_MODES:
            raise ValueError(f"Pad: padding_mode must be one of {_PAD_MODES}, got {padding_mode!r}")
        self.padding = _padding("Pad", padding)
        self.fill = fill
        self.padding_mode = padding_mode

    def __call__(self, x: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        x = np.asarray(x)
        _check_image("Pad", x)
        return _pad("Pad", x, self.padding, self.fill, self.padding_mode)

    def extra_repr(self) -> str:
        return f"padding={self.padding}, fill={self.fill}, padding_mode={self.padding_mode!r}"


class RandomCrop(Transform):
    """Crop each image to ``size`` at an independent random place, after optional padding (torchvision).

    For a batch of N images the offsets are drawn as ``i = g.integers(0, H - h + 1, size=N)`` then
    ``j = g.integers(0, W - w + 1, size=N)`` (H, W after padding), and image n becomes
    ``padded[n, :, i[n]:i[n] + h, j[n]:j[n] + w]``. ``RandomCrop(28, padding=4)`` keeps 28x28 images 28x28.
    """

    def __init__(
        self,
        size: int | Sequence[int],
        padding: int | Sequence[int] | None = None,
        fill: float = 0,
        padding_mode: str = "constant",
        generator: np.random.Generator | int | None = None,
    ) -> None:
        if padding_mode not in _PAD_MODES:
            raise ValueError(f"RandomCrop: padding_mode must be one of {_PAD_MODES}, got {padding_mode!r}")
        self.size = _pair("RandomCrop", size)
        self.padding = None if padding is None else _padding("RandomCrop", padding)
        self.fill = fill
        self.padding_mode = padding_mode
        self.generator = _seeded(generator)

    def __call__(self, x: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        x = np.asarray(x)
        _check_image("RandomCrop", x)
        if self.padding is not None:
            x = _pad("RandomCrop", x, self.padding, self.fill, self.padding_mode)
        h, w = self.size
        H, W = x.shape[-2:]
        if h > H or w > W:
            raise ValueError(f"RandomCrop: crop size {self.size} is larger than the (padded) image {(H, W)}")
        batch = _as_batch(x)
        n = batch.shape[0]
        g = self._generator(rng)
        i = g.integers(0, H - h + 1, size=n)
        j = g.integers(0, W - w + 1, size=n)
        # windows[n, c, i, j] is the h x w crop at (i, j): one fancy index gathers every image's crop.
        windows = sliding_window_view(batch, (h, w), axis=(2, 3))
        out = windows[np.arange(n), :, i, j]
        return out.reshape(out.shape[4 - x.ndim :])

    def extra_repr(self) -> str:
        return f"size={self.size}, padding={self.padding}"


class RandomHorizontalFlip(Transform):
    """Mirror each image left-right with probability ``p``: image n flips when ``g.random(N)[n] < p``."""

    def __init__(self, p: float = 0.5, generator: np.random.Generator | int | None = None) -> None:
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"RandomHorizontalFlip: p must be in [0, 1], got {p}")
        self.p = p
        self.generator = _seeded(generator)

    def __call__(self, x: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        x = np.asarray(x)
        _check_image("RandomHorizontalFlip", x)
        batch = _as_batch(x)
        flip = self._generator(rng).random(batch.shape[0]) < self.p
        out = np.where(flip[:, None, None, None], batch[..., ::-1], batch)
        return out.reshape(x.shape)

    def extra_repr(self) -> str:
        return f"p={self.p}"
