"""Max pooling for training, by backend: the compiled window pass with one-byte winners where it covers the shape
(``max_compiled.py``), else the NumPy pair that finds each winner again from x and y (``max_values.py``).

The forward returns y and what its backward needs (``saved``, opaque to the caller); the backward takes them back.
"""

from __future__ import annotations

import numpy as np

from .. import jit
from . import max_compiled
from .geometry import IntPair
from .max_values import max_pool2d_backward_from_values, max_pool2d_values

__all__ = ["max_pool2d_train_backward", "max_pool2d_train_forward"]


def max_pool2d_train_forward(x: np.ndarray, kernel_size: IntPair, stride: IntPair, padding: IntPair,
                             dilation: IntPair = (1, 1), ceil_mode: bool = False) -> tuple[np.ndarray, tuple]:
    """y (N, C, Ho, Wo) in x's dtype, and what :func:`max_pool2d_train_backward` needs."""
    # With even sizes ceil_mode adds no window to a 2x2 stride-2 pooling: the compiled kernels cover it then.
    ceil_adds = ceil_mode and (x.shape[-2] % 2 == 1 or x.shape[-1] % 2 == 1)
    if jit.use_compiled() and max_compiled.supported(kernel_size, stride, padding, dilation, ceil_adds):
        y, arg = max_compiled.max_pool2d_argmax(x, kernel_size, stride, padding, dilation, False)
        return y, ("argmax", arg, x.shape)
    y = max_pool2d_values(x, kernel_size, stride, padding, dilation, ceil_mode)
    return y, ("values", x, y)


def max_pool2d_train_backward(dy: np.ndarray, saved: tuple, kernel_size: IntPair, stride: IntPair,
                              padding: IntPair, dilation: IntPair = (1, 1), ceil_mode: bool = False) -> np.ndarray:
    """dx (N, C, H, W) in dy's dtype: the gradient goes to each window's maximum (PyTorch's choice among ties)."""
    kind, a, b = saved
    if kind == "argmax":
        return max_compiled.max_pool2d_backward_argmax(dy, a, b)
    return max_pool2d_backward_from_values(dy, a, b, kernel_size, stride, padding, dilation, ceil_mode)
