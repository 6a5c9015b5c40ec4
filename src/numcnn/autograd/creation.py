"""Tensor factories (``zeros``, ``ones``, ``randn`` ...): float32 unless a dtype is given.

As in PyTorch, the size comes by position (``zeros(2, 3)``, ``zeros((2, 3))``) or as ``size=(2, 3)``, and
``device=`` is accepted (the CPU: numcnn has no other device, see autograd/device.py).
"""

from __future__ import annotations

import numpy as np

from .._config import DEFAULT_DTYPE, get_generator
from .device import check_cpu
from .tensor import Tensor, _shape_arg, to_array


def _new(arr: np.ndarray, requires_grad: bool, device=None) -> Tensor:
    if device is not None:
        check_cpu(device)
    t = Tensor._make(arr, False)
    return t.requires_grad_() if requires_grad else t


def _size(fn: str, size: tuple, keywords: dict) -> tuple:
    """The shape of ``fn(2, 3)``, ``fn((2, 3))`` or ``fn(size=(2, 3))``; ``keywords`` may hold only ``size``."""
    extra = set(keywords) - {"size"}
    if extra:
        raise TypeError(f"{fn}() got an unexpected keyword argument {sorted(extra)[0]!r}")
    if "size" in keywords:
        if size:
            raise TypeError(f"{fn}(): give the size by position or as size=, not both")
        size = (keywords["size"],)
    return _shape_arg(size)


def zeros(*size, dtype=None, device=None, requires_grad: bool = False, **size_keyword) -> Tensor:
    shape = _size("zeros", size, size_keyword)
    return _new(np.zeros(shape, dtype=dtype or DEFAULT_DTYPE), requires_grad, device)


def ones(*size, dtype=None, device=None, requires_grad: bool = False, **size_keyword) -> Tensor:
    shape = _size("ones", size, size_keyword)
    return _new(np.ones(shape, dtype=dtype or DEFAULT_DTYPE), requires_grad, device)


def empty(*size, dtype=None, device=None, requires_grad: bool = False, **size_keyword) -> Tensor:
    shape = _size("empty", size, size_keyword)
    return _new(np.empty(shape, dtype=dtype or DEFAULT_DTYPE), requires_grad, device)


def full(size, fill_value, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    if dtype is None:
        dtype = DEFAULT_DTYPE if isinstance(fill_value, float) else np.int64
    return _new(np.full(tuple(size), fill_value, dtype=dtype), requires_grad, device)


def zeros_like(t: Tensor, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    return _new(np.zeros(t.shape, dtype=dtype or t.dtype), requires_grad, device)


def ones_like(t: Tensor, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    return _new(np.ones(t.shape, dtype=dtype or t.dtype), requires_grad, device)


def randn(*size, dtype=None, generator=None, device=None, requires_grad: bool = False, **size_keyword) -> Tensor:
    """Standard normal samples from numcnn's seeded generator (or ``generator``)."""
    shape = _size("randn", size, size_keyword)
    arr = get_generator(generator).standard_normal(shape, dtype=np.dtype(dtype or DEFAULT_DTYPE))
    return _new(arr, requires_grad, device)


def rand(*size, dtype=None, generator=None, device=None, requires_grad: bool = False, **size_keyword) -> Tensor:
    """Uniform samples in [0, 1)."""
    shape = _size("rand", size, size_keyword)
    arr = get_generator(generator).random(shape, dtype=np.dtype(dtype or DEFAULT_DTYPE))
    return _new(arr, requires_grad, device)


def randint(low: int, high: int | None = None, size=None, generator=None, dtype=None, device=None) -> Tensor:
    """Integers in [low, high) (``randint(high, size)`` counts from 0), int64 unless a dtype is given."""
    if size is None:  # randint(high, size)
        low, high, size = 0, low, high
    arr = get_generator(generator).integers(low, high, size=tuple(size), dtype=np.int64)
    return _new(arr if dtype is None else arr.astype(dtype), False, device)


def arange(start, end=None, step=1, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """Like ``torch.arange``: int64 when all of start/end/step are ints, else float32."""
    if end is None:
        start, end = 0, start
    if dtype is None:
        ints = all(isinstance(v, (int, np.integer)) for v in (start, end, step))
        dtype = np.int64 if ints else DEFAULT_DTYPE
    return _new(np.arange(start, end, step, dtype=dtype), requires_grad, device)


def from_numpy(array: np.ndarray) -> Tensor:
    """A Tensor sharing ``array``'s memory and dtype, as ``torch.from_numpy``."""
    if not isinstance(array, np.ndarray):
        raise TypeError(f"from_numpy(): expected an np.ndarray, got {type(array).__name__}")
    return Tensor._make(array, False)


def as_tensor(data, dtype=None, device=None) -> Tensor:
    """``data`` as a Tensor, sharing memory when it already is one (or an ndarray) of that dtype."""
    if isinstance(data, Tensor) and (dtype is None or np.dtype(dtype) == data.array.dtype):
        return data
    return _new(to_array(data, dtype), False, device)


def randperm(n: int, generator=None, dtype=None, device=None) -> Tensor:
    """A random permutation of 0..n-1 (int64), from numcnn's seeded generator."""
    return _new(get_generator(generator).permutation(n).astype(dtype or np.int64), False, device)


def linspace(start, end, steps: int, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    return _new(np.linspace(start, end, steps, dtype=np.dtype(dtype or DEFAULT_DTYPE)), requires_grad, device)


def eye(n: int, m: int | None = None, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    return _new(np.eye(n, m, dtype=np.dtype(dtype or DEFAULT_DTYPE)), requires_grad, device)


def empty_like(t: Tensor, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    return _new(np.empty(t.shape, dtype=dtype or t.dtype), requires_grad, device)


def full_like(t: Tensor, fill_value, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    return _new(np.full(t.shape, fill_value, dtype=dtype or t.dtype), requires_grad, device)


def rand_like(t: Tensor, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    return rand(*t.shape, dtype=dtype or t.dtype, device=device, requires_grad=requires_grad)


def randn_like(t: Tensor, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    return randn(*t.shape, dtype=dtype or t.dtype, device=device, requires_grad=requires_grad)
