"""The Tensor's reductions as autograd Functions: sum, mean, var and max/min, over all elements or some dims.

A reduction's backward spreads the gradient back over the axes it removed (a broadcast view: every input element
of a sum gets the same gradient), scaled for the mean and the variance; max/min send it to the elements chosen.
"""

from __future__ import annotations

import numpy as np

from .function import Function


def norm_axes(dim, ndim: int):
    """``dim`` (None, an int or a sequence, negative counting from the end) as a tuple of axes in [0, ndim), or
    None for all; an IndexError naming the range for a dim outside it."""
    if dim is None:
        return None
    dims = (dim,) if isinstance(dim, (int, np.integer)) else tuple(dim)
    out = []
    for d in dims:
        if not -max(ndim, 1) <= d < max(ndim, 1):
            raise IndexError(f"dimension out of range (expected to be in range of [{-ndim}, {ndim - 1}], got {d})")
        out.append(int(d) % max(ndim, 1))
    return tuple(out)


def _expand_grad(g, shape, axes, keepdim):
    """A reduction's gradient g spread back over the input's ``shape`` (a broadcast view, not a copy)."""
    if axes is None:
        return np.broadcast_to(g, shape)
    if not keepdim:
        g = np.expand_dims(g, axes)
    return np.broadcast_to(g, shape)


def _count(shape, axes) -> int:
    """How many elements a reduction over ``axes`` (None: all) of an array of ``shape`` combines."""
    return int(np.prod(shape if axes is None else [shape[i] for i in axes]))


class Sum(Function):
    node_name = staticmethod(lambda a, dim=None, keepdim=False: f"SumBackward{int(dim is not None)}")

    @staticmethod
    def forward(ctx, a, dim=None, keepdim=False):
        ctx.shape = a.shape
        ctx.axes = norm_axes(dim, a.ndim)
        ctx.keepdim = keepdim
        return np.asarray(a.sum(axis=ctx.axes, keepdims=keepdim))

    @staticmethod
    def backward(ctx, g):
        return _expand_grad(g, ctx.shape, ctx.axes, ctx.keepdim)


class Mean(Function):
    node_name = staticmethod(lambda a, dim=None, keepdim=False: f"MeanBackward{int(dim is not None)}")

    @staticmethod
    def forward(ctx, a, dim=None, keepdim=False):
        ctx.shape = a.shape
        ctx.axes = norm_axes(dim, a.ndim)
        ctx.keepdim = keepdim
        ctx.n = _count(a.shape, ctx.axes)
        return np.asarray(a.mean(axis=ctx.axes, keepdims=keepdim))

    @staticmethod
    def backward(ctx, g):
        return _expand_grad(g / g.dtype.type(ctx.n), ctx.shape, ctx.axes, ctx.keepdim)


class Var(Function):
    @staticmethod
    def forward(ctx, a, dim=None, keepdim=False, correction=1):
        ctx.axes = norm_axes(dim, a.ndim)
        ctx.keepdim = keepdim
        mean = a.mean(axis=ctx.axes, keepdims=True)
        d = a - mean
        ctx.denom = max(_count(a.shape, ctx.axes) - correction, 0)
        ctx.save_for_backward(d)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.asarray((d * d).sum(axis=ctx.axes, keepdims=keepdim) / a.dtype.type(ctx.denom))

    @staticmethod
    def backward(ctx, g):
        (d,) = ctx.saved_tensors
        g = _expand_grad(g, d.shape, ctx.axes, ctx.keepdim)
        return g * d * d.dtype.type(2.0 / ctx.denom)


class MaxMin(Function):
    """max/min over all elements (gradient shared evenly among ties, as PyTorch) or along one dim
    (gradient to the index that was returned, the first occurrence)."""

    @staticmethod
    def node_name(a, dim=None, keepdim=False, is_max=True):
        return f"{'Max' if is_max else 'Min'}Backward{int(dim is None)}"

    @staticmethod
    def forward(ctx, a, dim=None, keepdim=False, is_max=True):
        ctx.shape = a.shape
        ctx.keepdim = keepdim
        if dim is None:
            out = np.asarray(a.max() if is_max else a.min())
            ctx.save_for_backward(a, out)
            ctx.dim = None
            return out
        (axis,) = norm_axes(dim, a.ndim)
        idx = np.argmax(a, axis=axis, keepdims=True) if is_max else np.argmin(a, axis=axis, keepdims=True)
        ctx.dim = axis
        ctx.save_for_backward(idx)
        out = np.take_along_axis(a, idx, axis=axis)
        ctx.indices = idx if keepdim else np.squeeze(idx, axis)
        return out if keepdim else np.squeeze(out, axis)

    @staticmethod
    def backward(ctx, g):
        if ctx.dim is None:
            a, out = ctx.saved_tensors
            mask = a == out
            return (mask * (g / mask.sum())).astype(g.dtype, copy=False)
        (idx,) = ctx.saved_tensors
        if not ctx.keepdim:
            g = np.expand_dims(g, ctx.dim)
        grad = np.zeros(ctx.shape, dtype=g.dtype)
        np.put_along_axis(grad, idx, g, axis=ctx.dim)
        return grad
