"""Activations, softmax and dropout: argument checks, then the autograd Functions of autograd/activation_ops.py
(over kernels/activation.py and kernels/softmax.py; Tensor's methods apply the same ones) or dropout's mask."""

from __future__ import annotations

import numpy as np

from ... import _config
from ...autograd import activation_ops as AA
from ...autograd.function import Function
from ...autograd.tensor import Tensor
from ._checks import check_tensor


class _MulMask(Function):
    """x * mask with a constant mask (dropout)."""

    node_name = "MulBackward0"  # dropout: PyTorch multiplies by the scaled mask too

    @staticmethod
    def forward(ctx, x, mask):
        ctx.mask = mask
        return x * mask

    @staticmethod
    def backward(ctx, g):
        return g * ctx.mask


def relu(input: Tensor, inplace: bool = False) -> Tensor:
    return AA.ReLU.apply(check_tensor(input, "relu"))


def leaky_relu(input: Tensor, negative_slope: float = 0.01, inplace: bool = False) -> Tensor:
    return AA.LeakyReLU.apply(check_tensor(input, "leaky_relu"), float(negative_slope))


def elu(input: Tensor, alpha: float = 1.0, inplace: bool = False) -> Tensor:
    return AA.ELU.apply(check_tensor(input, "elu"), float(alpha))


def gelu(input: Tensor, approximate: str = "none") -> Tensor:
    if approximate not in ("none", "tanh"):
        raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
    return AA.GELU.apply(check_tensor(input, "gelu"), approximate)


def sigmoid(input: Tensor) -> Tensor:
    return AA.Sigmoid.apply(check_tensor(input, "sigmoid"))


def tanh(input: Tensor) -> Tensor:
    return AA.Tanh.apply(check_tensor(input, "tanh"))


def softmax(input: Tensor, dim: int | None = None) -> Tensor:
    check_tensor(input, "softmax")
    return AA.Softmax.apply(input, AA.softmax_dim(input, dim, "softmax"))


def log_softmax(input: Tensor, dim: int | None = None) -> Tensor:
    check_tensor(input, "log_softmax")
    return AA.LogSoftmax.apply(input, AA.softmax_dim(input, dim, "log_softmax"))


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
