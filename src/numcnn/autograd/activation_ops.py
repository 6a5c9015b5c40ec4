"""Activations and softmax as autograd Functions over kernels/activation.py and kernels/softmax.py.

They live in autograd, not nn, because Tensor's own methods (``relu``, ``sigmoid``, ``tanh``, ``softmax``,
``log_softmax``) apply them and autograd imports nothing from nn; ``nn.functional.activation`` checks its arguments
and applies the same classes.
"""

from __future__ import annotations

from ..kernels import activation as KA
from ..kernels import softmax as KS
from .function import Function


class ReLU(Function):
    node_name = "ReluBackward0"

    @staticmethod
    def forward(ctx, x):
        y = KA.relu(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, g):
        return KA.relu_backward(g, ctx.saved_tensors[0])


class LeakyReLU(Function):
    node_name = "LeakyReluBackward0"

    @staticmethod
    def forward(ctx, x, slope):
        ctx.save_for_backward(x)
        ctx.slope = slope
        return KA.leaky_relu(x, slope)

    @staticmethod
    def backward(ctx, g):
        return KA.leaky_relu_backward(g, ctx.saved_tensors[0], ctx.slope)


class ELU(Function):
    node_name = "EluBackward0"

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


class GELU(Function):
    node_name = "GeluBackward0"

    @staticmethod
    def forward(ctx, x, approximate):
        ctx.save_for_backward(x)
        ctx.approximate = approximate
        return KA.gelu(x, approximate)

    @staticmethod
    def backward(ctx, g):
        return KA.gelu_backward(g, ctx.saved_tensors[0], ctx.approximate)


class Sigmoid(Function):
    @staticmethod
    def forward(ctx, x):
        y = KA.sigmoid(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, g):
        return KA.sigmoid_backward(g, ctx.saved_tensors[0])


class Tanh(Function):
    @staticmethod
    def forward(ctx, x):
        y = KA.tanh(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, g):
        return KA.tanh_backward(g, ctx.saved_tensors[0])


class Softmax(Function):
    @staticmethod
    def forward(ctx, x, axis):
        y = KS.softmax(x, axis)
        ctx.save_for_backward(y)
        ctx.axis = axis
        return y

    @staticmethod
    def backward(ctx, g):
        return KS.softmax_backward(g, ctx.saved_tensors[0], ctx.axis)


class LogSoftmax(Function):
    @staticmethod
    def forward(ctx, x, axis):
        y = KS.log_softmax(x, axis)
        ctx.save_for_backward(y)
        ctx.axis = axis
        return y

    @staticmethod
    def backward(ctx, g):
        return KS.log_softmax_backward(g, ctx.saved_tensors[0], ctx.axis)


def softmax_dim(x, dim, fn: str) -> int:
    """The non-negative axis of (log-)softmax over ``x`` (a Tensor) for ``dim``; ``None`` picks PyTorch's legacy
    implicit choice: dim 0 for 0-, 1- and 3-D inputs, else dim 1."""
    if dim is None:
        dim = 0 if x.ndim in (0, 1, 3) else 1
    nd = max(x.ndim, 1)
    if not -nd <= dim < nd:
        raise IndexError(f"{fn}: dim {dim} is out of range for a tensor of shape {tuple(x.shape)}")
    return dim % nd
