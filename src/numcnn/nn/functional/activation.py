"""Activations, softmax and dropout as autograd Functions over kernels/activation.py and kernels/softmax.py."""

from __future__ import annotations

import numpy as np

from ... import _config
from ...autograd.function import Function
from ...autograd.tensor import Tensor
from ...kernels import activation as KA
from ...kernels import softmax as KS
from ._checks import check_tensor


class _ReLU(Function):
    @staticmethod
    def forward(ctx, x):
        y = KA.relu(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, g):
        return KA.relu_backward(g, ctx.saved_tensors[0])


class _LeakyReLU(Function):
    @staticmethod
    def forward(ctx, x, slope):
        ctx.save_for_backward(x)
        ctx.slope = slope
        return KA.leaky_relu(x, slope)

    @staticmethod
    def backward(ctx, g):
        return KA.leaky_relu_backward(g, ctx.saved_tensors[0], ctx.slope)


class _ELU(Function):
    @staticmethod
    def forward(ctx, x, alpha):
        y = KA.elu(x, alpha)
        ctx.save_for_backward(x, y)
        ctx.alpha = alpha
        return y

    @staticmethod
    def backward(ctx, g):
        x, y = ctx.saved_tensors
        return KA.elu_backward(g, x, y, ctx.alpha)


class _GELU(Function):
    @staticmethod
    def forward(ctx, x, approximate):
        ctx.save_for_backward(x)
        ctx.approximate = approximate
        return KA.gelu(x, approximate)

    @staticmethod
    def backward(ctx, g):
        return KA.gelu_backward(g, ctx.saved_tensors[0], ctx.approximate)


class _Sigmoid(Function):
    @staticmethod
    def forward(ctx, x):
        y = KA.sigmoid(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, g):
        return KA.sigmoid_backward(g, ctx.saved_tensors[0])


class _Tanh(Function):
    @staticmethod
    def forward(ctx, x):
        y = KA.tanh(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, g):
        return KA.tanh_backward(g, ctx.saved_tensors[0])


class _Softmax(Function):
    @staticmethod
    def forward(ctx, x, axis):
        y = KS.softmax(x, axis)
        ctx.save_for_backward(y)
        ctx.axis = axis
        return y

    @staticmethod
    def backward(ctx, g):
        return KS.softmax_backward(g, ctx.saved_tensors[0], ctx.axis)


class _LogSoftmax(Function):
    @staticmethod
    def forward(ctx, x, axis):
        y = KS.log_softmax(x, axis)
        ctx.save_for_backward(y)
        ctx.axis = axis
        return y

    @staticmethod
    def backward(ctx, g):
        return KS.log_softmax_backward(g, ctx.saved_tensors[0], ctx.axis)


class _MulMask(Function):
    """x * mask with a constant mask (dropout)."""

    @staticmethod
    def forward(ctx, x, mask):
        ctx.mask = mask
        return x * mask

    @staticmethod
    def backward(ctx, g):
        return g * ctx.mask


def relu(input: Tensor, inplace: bool = False) -> Tensor:
    return _ReLU.apply(check_tensor(input, "relu"))


def leaky_relu(input: Tensor, negative_slope: float = 0.01, inplace: bool = False) -> Tensor:
    return _LeakyReLU.apply(check_tensor(input, "leaky_relu"), float(negative_slope))


def elu(input: Tensor, alpha: float = 1.0, inplace: bool = False) -> Tensor:
    return _ELU.apply(check_tensor(input, "elu"), float(alpha))


def gelu(input: Tensor, approximate: str = "none") -> Tensor:
    if approximate not in ("none", "tanh"):
        raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
    return _GELU.apply(check_tensor(input, "gelu"), approximate)


def sigmoid(input: Tensor) -> Tensor:
    return _Sigmoid.apply(check_tensor(input, "sigmoid"))


def tanh(input: Tensor) -> Tensor:
    return _Tanh.apply(check_tensor(input, "tanh"))


def _dim(input: Tensor, dim, fn: str) -> int:
    if dim is None:
        # PyTorch's legacy implicit choice: dim 0 for 0-, 1- and 3-D inputs, else dim 1.
        dim = 0 if input.ndim in (0, 1, 3) else 1
    nd = max(input.ndim, 1)
    if not -nd <= dim < nd:
        raise IndexError(f"{fn}: dim {dim} is out of range for a tensor of shape {tuple(input.shape)}")
    return dim % nd


def softmax(input: Tensor, dim: int | None = None) -> Tensor:
    check_tensor(input, "softmax")
    return _Softmax.apply(input, _dim(input, dim, "softmax"))


def log_softmax(input: Tensor, dim: int | None = None) -> Tensor:
    check_tensor(input, "log_softmax")
    return _LogSoftmax.apply(input, _dim(input, dim, "log_softmax"))


def dropout(input: Tensor, p: float = 0.5, training: bool = True, inplace: bool = False,
            generator: np.random.Generator | None = None) -> Tensor:
    """Inverted dropout as PyTorch: zero each element with probability p and scale the rest by 1/(1-p)."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout: probability has to be between 0 and 1, but got {p}")
    check_tensor(input, "dropout")
    if not training or p == 0.0:
        return input
    dt = input.dtype
    if p == 1.0:
        mask = np.zeros(input.shape, dtype=dt)
    else:
        keep = _config.get_generator(generator).random(input.shape, dtype=dt) >= dt.type(p)
        mask = keep * dt.type(1.0 / (1.0 - p))
    return _MulMask.apply(input, mask)
