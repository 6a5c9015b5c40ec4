"""2-D pooling over NCHW arrays, forward and backward, read in this order:

1. ``geometry.py``     PyTorch's output-size rule (``ceil_mode``, padding, dilation), padded planes, window views
2. ``max_indices.py``  max pooling as PyTorch defines it: maxima with their int64 arg-max indices, and the
                       backward as a scatter-add at those indices (``return_indices=True``)
3. ``max_values.py``   the training path: maxima only, and a backward that finds each window's first maximum
                       again from x and y, both in cache-sized blocks of planes over threads
4. ``max_compiled.py`` the same, compiled (Numba): one pass keeping each window's winner as one byte
5. ``dispatch.py``     training max pooling by backend: compiled where it covers the shape, else NumPy
6. ``avg.py``          average pooling: separable window sums and PyTorch's divisors
7. ``avg_compiled.py`` 2x2 / stride 2 average pooling, compiled (Numba): each window summed in avg.py's order
8. ``adaptive.py``     adaptive average pooling: PyTorch's bins as two products with 0/1 matrices

Every kernel follows PyTorch's CPU semantics (output size, ``ceil_mode``, padding, tie-breaking and the index
layout of ``max_pool2d(return_indices=True)``). Loops run over kernel offsets only; every step inside is a
whole-array NumPy operation. The result dtype is the input dtype.
"""

from __future__ import annotations

from .adaptive import adaptive_avg_pool2d_backward, adaptive_avg_pool2d_forward
from .avg import avg_pool2d_backward, avg_pool2d_forward
from .dispatch import max_pool2d_train_backward, max_pool2d_train_forward
from .geometry import IntPair, pool_output_size
from .max_indices import max_pool2d_backward, max_pool2d_forward
from .max_values import max_pool2d_backward_from_values, max_pool2d_values

__all__ = [
    "IntPair", "adaptive_avg_pool2d_backward", "adaptive_avg_pool2d_forward", "avg_pool2d_backward",
    "avg_pool2d_forward", "max_pool2d_backward", "max_pool2d_backward_from_values", "max_pool2d_forward",
    "max_pool2d_train_backward", "max_pool2d_train_forward", "max_pool2d_values", "pool_output_size",
]
