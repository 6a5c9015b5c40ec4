"""The Tensor's primitive operations as autograd Functions (forward on ndarrays, backward on ndarrays).

Binary operations broadcast as NumPy does; their backward sums the gradient back to each input's shape
(:func:`unbroadcast`). An operand that is a Python scalar gets no gradient. The reductions are in
``reduction_ops.py``.
"""

from __future__ import annotations

from numbers import Number

import numpy as np

from ..kernels.parallel import matmul
from .function import Function


def unbroadcast(grad: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Sum ``grad`` over the axes that broadcasting added or stretched, so that it has ``shape``."""
    if grad.shape == shape:
        return grad
    lead = grad.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(
        i + lead for i, s in enumerate(shape) if s == 1 and grad.shape[i + lead] != 1
    )
    if axes:
        grad = grad.sum(axis=axes, keepdims=True)
    return grad.reshape(shape)


def _shape(x) -> tuple[int, ...]:
    return np.shape(x)


# ---------------------------------------------------------------- arithmetic


class Add(Function):
    @staticmethod
    def forward(ctx, a, b):
        ctx.shapes = (_shape(a), _shape(b))
        return a + b

    @staticmethod
    def backward(ctx, g):
        na, nb = ctx.needs_input_grad
        sa, sb = ctx.shapes
        return (unbroadcast(g, sa) if na else None, unbroadcast(g, sb) if nb else None)


class Sub(Function):
    @staticmethod
    def forward(ctx, a, b):
        ctx.shapes = (_shape(a), _shape(b))
        return a - b

    @staticmethod
    def backward(ctx, g):
        na, nb = ctx.needs_input_grad
        sa, sb = ctx.shapes
        return (unbroadcast(g, sa) if na else None, unbroadcast(-g, sb) if nb else None)


class Mul(Function):
    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return a * b

    @staticmethod
    def backward(ctx, g):
        a, b = ctx.saved_tensors
        na, nb = ctx.needs_input_grad
        return (
            unbroadcast(g * b, _shape(a)) if na else None,
            unbroadcast(g * a, _shape(b)) if nb else None,
        )


class Div(Function):
    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return a / b

    @staticmethod
    def backward(ctx, g):
        a, b = ctx.saved_tensors
        na, nb = ctx.needs_input_grad
        ga = unbroadcast(g / b, _shape(a)) if na else None
        gb = unbroadcast(-g * a / (b * b), _shape(b)) if nb else None
        return ga, gb


class Neg(Function):
    @staticmethod
    def forward(ctx, a):
        return -a

    @staticmethod
    def backward(ctx, g):
        return -g


# x + 2, x / 2: the Python scalar is an input too (grad_fn.next_functions lists it, as in PyTorch)
Add.n_inputs = Sub.n_inputs = Mul.n_inputs = Div.n_inputs = 2


class Pow(Function):
    """a ** b where either side may be a Python scalar."""

    @staticmethod
    def node_name(a, b):  # PyTorch: tensor ** scalar, tensor ** tensor, scalar ** tensor
        return "PowBackward2" if isinstance(a, Number) else "PowBackward0" if isinstance(b, Number) else "PowBackward1"

    @staticmethod
    def forward(ctx, a, b):
        out = a**b
        ctx.save_for_backward(a, b, out)
        return out

    @staticmethod
    def backward(ctx, g):
        a, b, out = ctx.saved_tensors
        na, nb = ctx.needs_input_grad
        ga = gb = None
        if na:
            # d/da a**b = b * a**(b-1); written with b == 0 giving exactly 0 as PyTorch does.
            ga = unbroadcast(np.where(b == 0, 0, g * b * a ** (b - 1)).astype(g.dtype, copy=False), _shape(a))
        if nb:
            # d/db a**b = a**b * log(a); PyTorch defines it as 0 where a == 0 and b >= 0.
            with np.errstate(divide="ignore", invalid="ignore"):
                logs = np.where((a == 0) & (b >= 0), 0, np.log(a))
            gb = unbroadcast((g * out * logs).astype(g.dtype, copy=False), _shape(b))
        return ga, gb


class MatMul(Function):
    node_name = "MmBackward0"

    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return matmul(a, b)  # np.matmul, with OpenBLAS's threads only for large products (see parallel.matmul)

    @staticmethod
    def backward(ctx, g):
        a, b = ctx.saved_tensors
        na, nb = ctx.needs_input_grad
        # Treat 1-D operands as matrices, as np.matmul does, then undo it.
        a2 = a[None, :] if a.ndim == 1 else a
        b2 = b[:, None] if b.ndim == 1 else b
        batch = np.broadcast_shapes(a2.shape[:-2], b2.shape[:-2])
        g2 = g.reshape(batch + (a2.shape[-2], b2.shape[-1]))
        ga = gb = None
        if na:
            ga = matmul(g2, np.swapaxes(b2, -1, -2))
            ga = unbroadcast(ga, a2.shape).reshape(a.shape)
        if nb:
            gb = matmul(np.swapaxes(a2, -1, -2), g2)
            gb = unbroadcast(gb, b2.shape).reshape(b.shape)
        return ga, gb


# ---------------------------------------------------------------- elementwise math


class Exp(Function):
    @staticmethod
    def forward(ctx, a):
        out = np.exp(a)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, g):
        (out,) = ctx.saved_tensors
        return g * out


class Log(Function):
    @staticmethod
    def forward(ctx, a):
        ctx.save_for_backward(a)
        with np.errstate(divide="ignore"):  # log(0) = -inf, silently, as in PyTorch
            return np.log(a)

    @staticmethod
    def backward(ctx, g):
        (a,) = ctx.saved_tensors
        return g / a


class Sqrt(Function):
    @staticmethod
    def forward(ctx, a):
        out = np.sqrt(a)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, g):
        (out,) = ctx.saved_tensors
        return g / (2 * out)


class Abs(Function):
    @staticmethod
    def forward(ctx, a):
        ctx.save_for_backward(a)
        return np.abs(a)

    @staticmethod
    def backward(ctx, g):
        (a,) = ctx.saved_tensors
        return g * np.sign(a)


class Clamp(Function):
    node_name = "ClampBackward1"

    @staticmethod
    def forward(ctx, a, lo=None, hi=None):
        ctx.save_for_backward(a)
        ctx.lo, ctx.hi = lo, hi
        return np.clip(a, lo, hi)

    @staticmethod
    def backward(ctx, g):
        (a,) = ctx.saved_tensors
        # The gradient passes where lo <= a <= hi (boundaries included), as in PyTorch.
        mask = np.ones(a.shape, dtype=bool)
        if ctx.lo is not None:
            mask &= a >= ctx.lo
        if ctx.hi is not None:
            mask &= a <= ctx.hi
        return np.where(mask, g, 0).astype(g.dtype, copy=False)


class Cast(Function):
    node_name = "ToCopyBackward0"

    @staticmethod
    def forward(ctx, a, dtype):
        ctx.dtype = a.dtype
        return a.astype(dtype)

    @staticmethod
    def backward(ctx, g):
        return g.astype(ctx.dtype)


# ---------------------------------------------------------------- shapes


class Reshape(Function):
    node_name = "ViewBackward0"

    @staticmethod
    def forward(ctx, a, shape):
        ctx.shape = a.shape
        return a.reshape(shape)

    @staticmethod
    def backward(ctx, g):
        return g.reshape(ctx.shape)


class Permute(Function):
    @staticmethod
    def forward(ctx, a, axes):
        ctx.axes = axes
        return a.transpose(axes)

    @staticmethod
    def backward(ctx, g):
        return g.transpose(np.argsort(ctx.axes))


class Expand(Function):
    @staticmethod
    def forward(ctx, a, shape):
        ctx.shape = a.shape
        return np.broadcast_to(a, shape)

    @staticmethod
    def backward(ctx, g):
        return unbroadcast(g, ctx.shape)


class GetItem(Function):
    @staticmethod
    def node_name(a, index):  # PyTorch: x[0], x[1:], x[[0, 1]] (a mixed index makes a node per step there)
        parts = index if isinstance(index, tuple) else (index,)
        if all(isinstance(i, (int, np.integer, slice, type(None), type(Ellipsis))) for i in parts):
            return "SelectBackward0" if any(isinstance(i, (int, np.integer)) for i in parts) else "SliceBackward0"
        return "IndexBackward0"

    @staticmethod
    def forward(ctx, a, index):
        ctx.shape = a.shape
        ctx.index = index
        return np.asarray(a[index])

    @staticmethod
    def backward(ctx, g):
        grad = np.zeros(ctx.shape, dtype=g.dtype)
        # add.at handles repeated indices (x[[0, 0]]) by accumulating, as the gradient must.
        np.add.at(grad, ctx.index, g)
        return grad


class Cat(Function):
    @staticmethod
    def forward(ctx, dim, *arrays):
        ctx.dim = dim
        ctx.sizes = [a.shape[dim] for a in arrays]
        return np.concatenate(arrays, axis=dim)

    @staticmethod
    def backward(ctx, g):
        splits = np.cumsum(ctx.sizes)[:-1]
        parts = np.split(g, splits, axis=ctx.dim)
        return (None, *(p if n else None for p, n in zip(parts, ctx.needs_input_grad[1:])))


class Stack(Function):
    @staticmethod
    def forward(ctx, dim, *arrays):
        ctx.dim = dim
        return np.stack(arrays, axis=dim)

    @staticmethod
    def backward(ctx, g):
        n = g.shape[ctx.dim]
        return (None, *(np.take(g, i, axis=ctx.dim) if ctx.needs_input_grad[i + 1] else None for i in range(n)))


class Where(Function):
    @staticmethod
    def forward(ctx, cond, a, b):
        ctx.cond = cond
        ctx.shapes = (_shape(a), _shape(b))
        return np.where(cond, a, b)

    @staticmethod
    def backward(ctx, g):
        _, na, nb = ctx.needs_input_grad
        zero = g.dtype.type(0)
        return (
            None,
            unbroadcast(np.where(ctx.cond, g, zero), ctx.shapes[0]) if na else None,
            unbroadcast(np.where(ctx.cond, zero, g), ctx.shapes[1]) if nb else None,
        )
