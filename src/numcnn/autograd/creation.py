"""Tensor factories (``zeros``, ``ones``, ``randn`` ...): float32 unless a dtype is given."""

from __future__ import annotations

import numpy as np

from .._config import DEFAULT_DTYPE, get_generator
from .tensor import Tensor, _shape_arg


def _new(arr: np.ndarray, requires_grad: bool) -> Tensor:
    t = Tensor._make(arr, False)
    return t.requires_grad_() if requires_grad else t


def zeros(*size, dtype=None, requires_grad: bool = False) -> Tensor:
    return _new(np.zeros(_shape_arg(size), dtype=dtype or DEFAULT_DTYPE), requires_grad)


def ones(*size, dtype=None, requires_grad: bool = False) -> Tensor:
    return _new(np.ones(_shape_arg(size), dtype=dtype or DEFAULT_DTYPE), requires_grad)


def empty(*size, dtype=None, requires_grad: bool = False) -> Tensor:
    return _new(np.empty(_shape_arg(size), dtype=dtype or DEFAULT_DTYPE), requires_grad)


def full(size, fill_value, dtype=None, requires_grad: bool = False) -> Tensor:
    if dtype is None:
        dtype = DEFAULT_DTYPE if isinstance(fill_value, float) else np.int64
    return _new(np.full(tuple(size), fill_value, dtype=dtype), requires_grad)


def zeros_like(t: Tensor, dtype=None, requires_grad: bool = False) -> Tensor:
    return _new(np.zeros(t.shape, dtype=dtype or t.dtype), requires_grad)


def ones_like(t: Tensor, dtype=None, requires_grad: bool = False) -> Tensor:
    return _new(np.ones(t.shape, dtype=dtype or t.dtype), requires_grad)


def randn(*size, dtype=None, generator=None, requires_grad: bool = False) -> Tensor:
    """Standard normal samples from numcnn's seeded generator (or ``generator``)."""
    arr = get_generator(generator).standard_normal(_shape_arg(size), dtype=np.dtype(dtype or DEFAULT_DTYPE))
    return _new(arr, requires_grad)


def rand(*size, dtype=None, generator=None, requires_grad: bool = False) -> Tensor:
    """Uniform samples in [0, 1)."""
    arr = get_generator(generator).random(_shape_arg(size), dtype=np.dtype(dtype or DEFAULT_DTYPE))
    return _new(arr, requires_grad)


def randint(low: int, high: int, size, generator=None) -> Tensor:
    return Tensor._make(get_generator(generator).integers(low, high, size=tuple(size), dtype=np.int64), False)


def arange(start, end=None, step=1, dtype=None, requires_grad: bool = False) -> Tensor:
    """Like ``torch.arange``: int64 when all of start/end/step are ints, else float32."""
    if end is None:
        start, end = 0, start
    if dtype is None:
        ints = all(isinstance(v, (int, np.integer)) for v in (start, end, step))
        dtype = np.int64 if ints else DEFAULT_DTYPE
    return _new(np.arange(start, end, step, dtype=dtype), requires_grad)
