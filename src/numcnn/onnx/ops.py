"""The operator table of :func:`numcnn.onnx.load`: one function per ONNX operator (default domain, opset 13 to
21), written with numcnn's own operations so that an imported graph runs in NumPy and gradients flow through it.

Each function takes the node (for its attributes) and the input Tensors (None for an omitted optional input) and
returns a Tensor or a tuple of Tensors. Sizes an operator would allocate from the file's numbers (pads, expand
shapes, transposed-convolution outputs) are checked against ``_proto.MAX_ELEMENTS`` first.

This module holds the elementwise and shape operators and the ``OPS`` table; the layer operators (convolution,
Gemm, pooling, normalization) and the padding they share with Pad are in ``numcnn.onnx.layer_ops``.
"""

from __future__ import annotations

import math

import numpy as np

from ..autograd import ops as AO
from ..autograd.function import Function
from ..autograd.tensor import Tensor, cat, where
from ..kernels import activation as KA
from ..nn import functional as F
from . import _proto
from ._proto import GraphError  # noqa: F401 - re-exported
from .layer_ops import (
    _axis,
    _const,
    _pad_tensor,
    average_pool,
    batch_normalization,
    conv,
    conv_transpose,
    gemm,
    global_average_pool,
    layer_normalization,
    max_pool,
)

# ---------------------------------------------------------------- helpers


def _ints(t: Tensor | None, what: str) -> list[int] | None:
    if t is None:
        return None
    arr = t.array
    if arr.dtype.kind not in "iu" or arr.ndim > 1:
        raise ValueError(f"{what} must be a 1-D integer tensor, got {arr.dtype} of shape {arr.shape}")
    return [int(v) for v in arr.reshape(-1)]


def _scalar(t: Tensor | None):
    if t is None:
        return None
    if t.array.size != 1:
        raise ValueError(f"expected a single value, got shape {t.array.shape}")
    return t.array.reshape(()).item()


# ---------------------------------------------------------------- Erf, which numcnn has no op for


class _Erf(Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return KA.erf(x)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        f = x.dtype.type
        return g * (f(2 / math.sqrt(math.pi)) * np.exp(-(x * x)))


# ---------------------------------------------------------------- elementwise


def _int_div(a: Tensor, b: Tensor) -> Tensor:
    x, y = np.broadcast_arrays(a.array, b.array)
    if (y == 0).any():
        raise ValueError("integer division by zero")
    q = np.abs(x) // np.abs(y)  # ONNX integer Div truncates toward zero, as C does
    return _const(np.where((x < 0) != (y < 0), -q, q).astype(np.result_type(a.array, b.array)))


def _arith(op: str):
    def run(node, a, b):
        if a.dtype != b.dtype:
            raise ValueError(f"{op} needs inputs of one type, got {a.dtype} and {b.dtype}")
        if op == "Add":
            return a + b
        if op == "Sub":
            return a - b
        if op == "Mul":
            return a * b
        return a / b if a.dtype.kind == "f" else _int_div(a, b)
    return run


def _elementwise(fn):
    def run(node, x):
        return fn(x)
    return run


def pow_(node, x, y):
    return x ** (y.to(x.dtype) if y.dtype != x.dtype else y)


def clip(node, x, lo=None, hi=None):
    lo, hi = _scalar(lo), _scalar(hi)
    return x if lo is None and hi is None else x.clamp(lo, hi)


def leaky_relu(node, x):
    return F.leaky_relu(x, node.attr("alpha", 0.01))


def elu(node, x):
    return F.elu(x, node.attr("alpha", 1.0))


def gelu(node, x):
    return F.gelu(x, node.attr("approximate", "none"))


def erf(node, x):
    if x.dtype.kind != "f":
        raise ValueError(f"Erf expects a float tensor, got {x.dtype}")
    return _Erf.apply(x)


def softmax(node, x):
    return F.softmax(x, _axis(node.attr("axis", -1), x.ndim))


def log_softmax(node, x):
    return F.log_softmax(x, _axis(node.attr("axis", -1), x.ndim))


def where_(node, cond, a, b):
    return where(cond.array.astype(bool), a, b)


def cast(node, x):
    to = node.attr("to")
    if to not in _proto.NP_OF_ONNX:
        raise ValueError(f"cannot cast to {_proto.dtype_name(to)} (supported: {_proto.supported_dtypes()})")
    return x.to(_proto.NP_OF_ONNX[to])


def identity(node, x):
    return x


def dropout(node, x, ratio=None, training_mode=None):
    if training_mode is not None and bool(_scalar(training_mode)):
        raise ValueError("Dropout with training_mode=true; numcnn runs ONNX graphs for inference")
    if len(node.outputs) > 1 and node.outputs[1]:
        return x, _const(np.ones(x.shape, dtype=bool))
    return x


# ---------------------------------------------------------------- shapes


def flatten(node, x):
    axis = node.attr("axis", 1)
    if not -x.ndim <= axis <= x.ndim:
        raise ValueError(f"axis {axis} is out of range for a {x.ndim}-D input")
    axis = axis + x.ndim if axis < 0 else axis
    return x.reshape(math.prod(x.shape[:axis]), math.prod(x.shape[axis:]))


def reshape(node, x, shape):
    target = _ints(shape, "shape")
    allow_zero = node.attr("allowzero", 0)
    out = []
    for i, s in enumerate(target):
        if s == 0 and not allow_zero:
            if i >= x.ndim:
                raise ValueError(f"shape {target}: 0 at position {i} copies a dim the {x.ndim}-D input lacks")
            s = x.shape[i]
        elif s < -1:
            raise ValueError(f"invalid shape {target}")
        out.append(s)
    if out.count(-1) > 1:
        raise ValueError(f"shape {target} has more than one -1")
    return x.reshape(*out) if out else x.reshape(())


def concat(node, *xs):
    return cat(list(xs), node.attr("axis"))


def pad(node, x, pads, value=None, axes=None):
    mode = node.attr("mode", "constant")
    if mode not in ("constant", "reflect", "edge", "wrap"):
        raise ValueError(f"unknown mode {mode!r}")
    widths = _ints(pads, "pads")
    dims = [_axis(a, x.ndim) for a in _ints(axes, "axes")] if axes is not None else list(range(x.ndim))
    if len(widths) != 2 * len(dims) or len(set(dims)) != len(dims):
        raise ValueError(f"pads {widths} do not match axes {dims} of a {x.ndim}-D input")
    begin, end = [0] * x.ndim, [0] * x.ndim
    for i, d in enumerate(dims):
        begin[d], end[d] = widths[i], widths[i + len(dims)]
    fill = _scalar(value) if value is not None else 0
    return _pad_tensor(x, begin, end, mode, 0 if fill is None else fill)


def _reduce_axes(node, x, axes_input) -> tuple[int, ...] | None:
    """The reduced axes (None: all) from the ``axes`` attribute (before opset 18) or input (opset 18+)."""
    axes = _ints(axes_input, "axes") if axes_input is not None else node.attr("axes", None)
    if not axes:
        return () if node.attr("noop_with_empty_axes", 0) else None
    return tuple(sorted({_axis(a, x.ndim) for a in axes}))


def _reduce(kind: str):
    def run(node, x, axes=None):
        dims = _reduce_axes(node, x, axes)
        keep = bool(node.attr("keepdims", 1))
        if dims == ():
            return x
        if kind == "mean":
            return x.mean(dim=dims, keepdim=keep)
        if kind == "sum":
            return x.sum(dim=dims, keepdim=keep)
        for d in reversed(dims if dims is not None else range(x.ndim)):
            x = (x.max if kind == "max" else x.min)(dim=d, keepdim=True).values
        if not keep:
            x = x.reshape(tuple(s for i, s in enumerate(x.shape) if dims is not None and i not in dims))
        return x
    return run


def shape(node, x):
    n = x.ndim
    start, end = node.attr("start", 0), node.attr("end", n)
    start, end = min(max(start + n if start < 0 else start, 0), n), min(max(end + n if end < 0 else end, 0), n)
    return _const(np.asarray(x.shape[start:end], dtype=np.int64))


def gather(node, x, indices):
    axis = _axis(node.attr("axis", 0), x.ndim)
    idx = indices.array
    if idx.dtype.kind not in "iu":
        raise ValueError(f"indices must be integers, got {idx.dtype}")
    n = x.shape[axis]
    if idx.size and (idx.min() < -n or idx.max() >= n):
        raise ValueError(f"indices out of range [{-n}, {n - 1}] for axis {axis} of shape {tuple(x.shape)}")
    return x[(slice(None),) * axis + (idx.astype(np.int64),)]


def unsqueeze(node, x, axes):
    dims = _ints(axes, "axes")
    r = x.ndim + len(dims)
    dims = sorted(_axis(a, r) for a in dims)
    if len(set(dims)) != len(dims):
        raise ValueError(f"repeated axes {dims}")
    shape = list(x.shape)
    for d in dims:
        shape.insert(d, 1)
    return x.reshape(tuple(shape))


def squeeze(node, x, axes=None):
    dims = [_axis(a, x.ndim) for a in _ints(axes, "axes")] if axes is not None else None
    if dims is None:
        return x.reshape(tuple(s for s in x.shape if s != 1))
    if any(x.shape[d] != 1 for d in dims):
        raise ValueError(f"cannot squeeze axes {dims} of shape {tuple(x.shape)}: not all of size 1")
    return x.reshape(tuple(s for i, s in enumerate(x.shape) if i not in dims))


def transpose(node, x):
    perm = node.attr("perm", list(reversed(range(x.ndim))))
    if sorted(perm) != list(range(x.ndim)):
        raise ValueError(f"perm {perm} is not a permutation of the {x.ndim} axes")
    return x.permute(*perm)


def slice_(node, x, starts, ends, axes=None, steps=None):
    starts, ends = _ints(starts, "starts"), _ints(ends, "ends")
    axes = _ints(axes, "axes") if axes is not None else list(range(len(starts)))
    steps = _ints(steps, "steps") if steps is not None else [1] * len(starts)
    if not len(starts) == len(ends) == len(axes) == len(steps) or 0 in steps:
        raise ValueError(f"starts {starts}, ends {ends}, axes {axes}, steps {steps} do not match (or a step is 0)")
    index = [slice(None)] * x.ndim
    for s, e, a, st in zip(starts, ends, axes, steps):
        index[_axis(a, x.ndim)] = slice(s, e, st)  # Python's slice clamps exactly as ONNX specifies
    return x[tuple(index)]


def expand(node, x, shape):
    target = _ints(shape, "shape")
    if any(s < 0 for s in target):
        raise ValueError(f"invalid shape {target}")
    out = np.broadcast_shapes(tuple(x.shape), tuple(target))
    _proto.check_elements(out, "Expand output", x.array.size)
    return AO.Expand.apply(x.reshape((1,) * (len(out) - x.ndim) + tuple(x.shape)), out)


def constant(node):
    return node.attr("value")


OPS = {
    "Conv": conv, "ConvTranspose": conv_transpose, "Gemm": gemm,
    "MatMul": lambda node, a, b: a @ b,
    "Add": _arith("Add"), "Sub": _arith("Sub"), "Mul": _arith("Mul"), "Div": _arith("Div"), "Pow": pow_,
    "Neg": _elementwise(lambda x: -x), "Exp": _elementwise(lambda x: x.exp()), "Log": _elementwise(lambda x: x.log()),
    "Sqrt": _elementwise(lambda x: x.sqrt()), "Abs": _elementwise(lambda x: x.abs()), "Clip": clip,
    "Relu": _elementwise(F.relu), "LeakyRelu": leaky_relu, "Sigmoid": _elementwise(F.sigmoid),
    "Tanh": _elementwise(F.tanh), "Elu": elu, "Erf": erf, "Gelu": gelu, "Softmax": softmax,
    "LogSoftmax": log_softmax, "Where": where_, "Cast": cast, "Dropout": dropout, "Identity": identity,
    "MaxPool": max_pool, "AveragePool": average_pool, "GlobalAveragePool": global_average_pool,
    "BatchNormalization": batch_normalization, "LayerNormalization": layer_normalization,
    "Flatten": flatten, "Reshape": reshape, "Concat": concat, "Pad": pad,
    "ReduceMean": _reduce("mean"), "ReduceSum": _reduce("sum"), "ReduceMax": _reduce("max"),
    "ReduceMin": _reduce("min"), "Shape": shape, "Gather": gather, "Unsqueeze": unsqueeze, "Squeeze": squeeze,
    "Transpose": transpose, "Slice": slice_, "Expand": expand, "Constant": constant,
}
