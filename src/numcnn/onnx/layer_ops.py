"""The layer operators of :func:`numcnn.onnx.load` (Conv, ConvTranspose, Gemm, MaxPool, AveragePool,
GlobalAveragePool, BatchNormalization, LayerNormalization) and what they share with the rest of the operator table
in ``numcnn.onnx.ops``: the ``pads``/``auto_pad``/strides geometry of a node, the differentiable ``_pad_tensor`` (the
Pad operator runs it too) and the small ``_axis``/``_const`` helpers.
"""

from __future__ import annotations

import numpy as np

from ..autograd.function import Function
from ..autograd.tensor import Tensor
from ..kernels.conv import ConvGeometry, GeometryError
from ..nn import functional as F
from ..nn.functional import conv as FC
from . import _proto

# ---------------------------------------------------------------- helpers


def _axis(axis: int, ndim: int, what: str = "axis") -> int:
    if not -ndim <= axis < ndim:
        raise ValueError(f"{what} {axis} is out of range for a {ndim}-D input")
    return axis % ndim


def _const(arr: np.ndarray) -> Tensor:
    return Tensor._make(np.asarray(arr), False)


def _spatial(node, x: Tensor, w: Tensor | None = None) -> int:
    nd = x.ndim - 2
    if nd not in (1, 2) or (w is not None and w.ndim != x.ndim):
        got = f"input {tuple(x.shape)}" + (f" and weight {tuple(w.shape)}" if w is not None else "")
        raise ValueError(f"numcnn runs 1-D and 2-D {node.op_type} only: expected (N, C, L) or (N, C, H, W), got {got}")
    return nd


def _pads(node, in_sp, kernel, strides, dilations, nd: int) -> tuple[list[int], list[int]]:
    """(begin pads, end pads) from ``pads`` or ``auto_pad`` (SAME_UPPER/SAME_LOWER: output = ceil(in / stride))."""
    auto = node.attr("auto_pad", "NOTSET")
    if auto in ("SAME_UPPER", "SAME_LOWER"):
        begin, end = [], []
        for n, k, s, d in zip(in_sp, kernel, strides, dilations):
            total = (-(-n // s) - 1) * s + (k - 1) * d + 1 - n
            if total < 0 and node.op_type != "Conv":
                # Conv reads the windows it needs either way; for pooling the spec's negative pads are ambiguous
                # (onnxruntime refuses them).
                raise ValueError(f"auto_pad {auto} with stride {s} > the kernel extent needs negative pads")
            total = max(total, 0)
            small, large = total // 2, total - total // 2
            begin.append(small if auto == "SAME_UPPER" else large)
            end.append(large if auto == "SAME_UPPER" else small)
        return begin, end
    if auto == "VALID":
        return [0] * nd, [0] * nd
    if auto != "NOTSET":
        raise ValueError(f"unknown auto_pad {auto!r}")
    pads = node.attr("pads", [0] * (2 * nd))
    if len(pads) != 2 * nd or any(p < 0 for p in pads):
        raise ValueError(f"pads must be {2 * nd} non-negative ints, got {pads}")
    return list(pads[:nd]), list(pads[nd:])


def _geometry(node, x, kernel, nd):
    strides = node.attr("strides", [1] * nd)
    dilations = node.attr("dilations", [1] * nd)
    if len(strides) != nd or len(dilations) != nd or min(strides + dilations) < 1:
        raise ValueError(f"strides {strides} and dilations {dilations} must be {nd} positive ints each")
    begin, end = _pads(node, x.shape[2:], kernel, strides, dilations, nd)
    _proto.check_elements(x.shape[:2] + tuple(n + b + e for n, b, e in zip(x.shape[2:], begin, end)),
                          "the padded input", x.array.size)
    if nd == 1:  # a 1-D operator runs as a 2-D one of height 1
        return (1, *strides), (1, *dilations), [0, *begin], [0, *end]
    return tuple(strides), tuple(dilations), begin, end


# ---------------------------------------------------------------- padding


class _Pad(Function):
    """np.pad with widths ((before, after), ...) >= 0 in mode constant / reflect / edge / wrap."""

    node_name = "ConstantPadNdBackward0"

    @staticmethod
    def forward(ctx, x, widths, mode, value):
        ctx.x_shape, ctx.widths, ctx.mode = x.shape, widths, mode
        if mode == "constant":
            return np.pad(x, widths, mode="constant", constant_values=np.asarray(value, dtype=x.dtype))
        return np.pad(x, widths, mode=mode)

    @staticmethod
    def backward(ctx, g):
        if ctx.mode == "constant":
            return g[tuple(slice(b, b + n) for (b, _), n in zip(ctx.widths, ctx.x_shape))]
        # Every padded position copies one input position: send its gradient back there, one axis at a time.
        for axis, ((b, e), n) in enumerate(zip(ctx.widths, ctx.x_shape)):
            if b == e == 0:
                continue
            src = np.pad(np.arange(n), (b, e), mode=ctx.mode)
            moved = np.moveaxis(g, axis, 0)
            acc = np.zeros((n,) + moved.shape[1:], dtype=g.dtype)
            np.add.at(acc, src, moved)
            g = np.moveaxis(acc, 0, axis)
        return g


def _pad_tensor(x: Tensor, begin, end, mode: str = "constant", value=0.0) -> Tensor:
    """Pad (or, for negative widths, crop) every axis of x."""
    if any(b < 0 or e < 0 for b, e in zip(begin, end)):
        x = x[tuple(slice(max(-b, 0), n - max(-e, 0)) for b, e, n in zip(begin, end, x.shape))]
        begin, end = [max(b, 0) for b in begin], [max(e, 0) for e in end]
    widths = tuple((int(b), int(e)) for b, e in zip(begin, end))
    if not any(b or e for b, e in widths):
        return x
    _proto.check_elements([n + b + e for n, (b, e) in zip(x.shape, widths)], "Pad output", x.array.size)
    if mode != "constant" and any((b or e) and n == 0 for n, (b, e) in zip(x.shape, widths)):
        raise ValueError(f"cannot pad an empty axis in mode {mode!r}")
    if mode == "reflect" and any(max(b, e) >= n for n, (b, e) in zip(x.shape, widths) if b or e):
        raise ValueError(f"reflect padding {widths} must be smaller than the input shape {tuple(x.shape)}")
    return _Pad.apply(x, widths, mode, value)


# ---------------------------------------------------------------- convolution, linear


def conv(node, x, w, b=None):
    nd = _spatial(node, x, w)
    kernel = list(w.shape[2:])
    if node.attr("kernel_shape", kernel) != kernel:
        raise ValueError(f"kernel_shape {node.attr('kernel_shape')} does not match the weight {tuple(w.shape)}")
    group = node.attr("group", 1)
    if b is not None and tuple(b.shape) != (w.shape[0],):
        raise ValueError(f"bias of shape {tuple(b.shape)} for {w.shape[0]} output channels")
    if x.dtype != w.dtype or (b is not None and b.dtype != x.dtype):
        raise ValueError(f"input dtype {x.dtype} does not match the weight/bias dtypes")
    strides, dilations, begin, end = _geometry(node, x, kernel, nd)
    if nd == 1:
        x, w = x.unsqueeze(2), w.unsqueeze(2)
    try:
        geo = ConvGeometry.of(x.shape, w.shape, strides, tuple(zip(begin, end)), dilations, group)
    except GeometryError as e:
        raise ValueError(e.reason) from None
    y = FC._Conv2d.apply(x, w, b, geo, "im2col")
    return y.squeeze(2) if nd == 1 else y


def conv_transpose(node, x, w, b=None):
    nd = _spatial(node, x, w)
    group = node.attr("group", 1)
    strides = node.attr("strides", [1] * nd)
    dilations = node.attr("dilations", [1] * nd)
    out_pad = node.attr("output_padding", [0] * nd)
    if min(strides + dilations) < 1 or len(strides) != nd or len(dilations) != nd or len(out_pad) != nd:
        raise ValueError(f"bad strides {strides} / dilations {dilations} / output_padding {out_pad}")
    if any(not 0 <= op < s for op, s in zip(out_pad, strides)):
        raise ValueError(f"output_padding {out_pad} must be smaller than the strides {strides}")
    if group < 1 or x.shape[1] != w.shape[0] or w.shape[0] % group:
        raise ValueError(f"input {tuple(x.shape)} does not fit weight {tuple(w.shape)} with group={group}")
    k = w.shape[2:]
    full = [(n - 1) * s + (kk - 1) * d + 1 + op for n, s, kk, d, op in zip(x.shape[2:], strides, k, dilations,
                                                                            out_pad)]
    _proto.check_elements((x.shape[0], w.shape[1] * group, *full), "ConvTranspose output", x.array.size)
    auto = node.attr("auto_pad", "NOTSET")
    target = node.attr("output_shape", None)
    if target is None and auto in ("SAME_UPPER", "SAME_LOWER"):
        target = [n * s for n, s in zip(x.shape[2:], strides)]
    if target is not None:
        target = list(target)[-nd:]
        total = [f - t for f, t in zip(full, target)]
        if any(t < 0 for t in total):
            raise ValueError(f"output_shape {target} is larger than the full output {full}")
        half = [t // 2 for t in total]
        begin = half if auto == "SAME_UPPER" else [t - h for t, h in zip(total, half)]
        end = [t - bg for t, bg in zip(total, begin)]
    else:
        pads = node.attr("pads", [0] * (2 * nd))
        if len(pads) != 2 * nd or min(pads) < 0:
            raise ValueError(f"pads must be {2 * nd} non-negative ints, got {pads}")
        begin, end = pads[:nd], pads[nd:]
    if any(f - b - e < 1 for f, b, e in zip(full, begin, end)):
        raise ValueError(f"pads {list(begin) + list(end)} leave no output of the full size {full}")
    if nd == 1:
        x, w = x.unsqueeze(2), w.unsqueeze(2)
        strides, dilations, out_pad, begin, end = [1, *strides], [1, *dilations], [0, *out_pad], [0, *begin], [0, *end]
    if begin == end:
        y = F.conv_transpose2d(x, w, b, tuple(strides), tuple(begin), tuple(out_pad), group, tuple(dilations))
    else:
        y = F.conv_transpose2d(x, w, b, tuple(strides), 0, tuple(out_pad), group, tuple(dilations))
        y = y[(slice(None), slice(None)) + tuple(slice(bg, n - e) for bg, e, n in zip(begin, end, y.shape[2:]))]
    return y.squeeze(2) if nd == 1 else y


def gemm(node, a, b, c=None):
    alpha, beta = node.attr("alpha", 1.0), node.attr("beta", 1.0)
    ta, tb = node.attr("transA", 0), node.attr("transB", 0)
    if a.ndim != 2 or b.ndim != 2:
        raise ValueError(f"expects 2-D A and B, got {tuple(a.shape)} and {tuple(b.shape)}")
    if not ta and tb and alpha == 1.0 and beta == 1.0 and (c is None or tuple(c.shape) == (b.shape[0],)):
        return F.linear(a, b, c)  # the layer every exporter writes: one fused kernel
    y = (a.T if ta else a) @ (b.T if tb else b)
    if alpha != 1.0:
        y = y * alpha
    if c is not None:
        y = y + (c * beta if beta != 1.0 else c)
    return y


# ---------------------------------------------------------------- pooling and normalisation


def _check_pool_pads(begin, end, kernel) -> None:
    # A window lying wholly in the padding has no value to give (onnxruntime refuses these too).
    if any(p >= k for p, k in zip(begin + end, kernel + kernel)):
        raise ValueError(f"pads {begin + end} must be smaller than the kernel {kernel}")


def _pool_symmetric(begin, end, kernel) -> bool:
    return begin == end and all(p <= k // 2 for p, k in zip(begin, kernel))


def max_pool(node, x):
    nd = _spatial(node, x)
    if len(node.outputs) > 1 and node.outputs[1]:
        raise ValueError("the Indices output of MaxPool is not supported")
    kernel = node.attr("kernel_shape")
    if kernel is None or len(kernel) != nd or min(kernel) < 1:
        raise ValueError(f"kernel_shape must be {nd} positive ints, got {kernel}")
    ceil = bool(node.attr("ceil_mode", 0))
    strides, dilations, begin, end = _geometry(node, x, kernel, nd)
    _check_pool_pads(begin[-nd:], end[-nd:], list(kernel))
    kernel = ([1] if nd == 1 else []) + list(kernel)
    x4 = x.unsqueeze(2) if nd == 1 else x
    if _pool_symmetric(begin, end, kernel):
        y = F.max_pool2d(x4, tuple(kernel), strides, tuple(begin), dilations, ceil)
    elif ceil:
        raise ValueError(f"ceil_mode with pads {begin + end} (asymmetric or over half the kernel) is not supported")
    else:
        padded = _pad_tensor(x4, [0, 0, *begin], [0, 0, *end], "constant", -np.inf)
        y = F.max_pool2d(padded, tuple(kernel), strides, 0, dilations)
    return y.squeeze(2) if nd == 1 else y


def average_pool(node, x):
    nd = _spatial(node, x)
    kernel = node.attr("kernel_shape")
    if kernel is None or len(kernel) != nd or min(kernel) < 1:
        raise ValueError(f"kernel_shape must be {nd} positive ints, got {kernel}")
    if any(d != 1 for d in node.attr("dilations", [1] * nd)):
        raise ValueError("AveragePool with dilations is not supported")
    ceil, include = bool(node.attr("ceil_mode", 0)), bool(node.attr("count_include_pad", 0))
    strides, _, begin, end = _geometry(node, x, kernel, nd)
    _check_pool_pads(begin[-nd:], end[-nd:], list(kernel))
    kernel = ([1] if nd == 1 else []) + list(kernel)
    x4 = x.unsqueeze(2) if nd == 1 else x
    if _pool_symmetric(begin, end, kernel):
        y = F.avg_pool2d(x4, tuple(kernel), strides, tuple(begin), ceil, include)
    elif ceil:
        raise ValueError(f"ceil_mode with pads {begin + end} (asymmetric or over half the kernel) is not supported")
    else:
        pb, pe = [0, 0, *begin], [0, 0, *end]
        y = F.avg_pool2d(_pad_tensor(x4, pb, pe), tuple(kernel), strides)
        if not include:  # divide by the number of real (unpadded) elements in each window instead
            ones = _pad_tensor(_const(np.ones((1, 1) + x4.shape[2:], dtype=x.dtype)), pb, pe)
            y = y / F.avg_pool2d(ones, tuple(kernel), strides)
    return y.squeeze(2) if nd == 1 else y


def global_average_pool(node, x):
    if x.ndim < 3:
        raise ValueError(f"expects (N, C, ...) with spatial dims, got {tuple(x.shape)}")
    return x.mean(dim=tuple(range(2, x.ndim)), keepdim=True)


def batch_normalization(node, x, scale, bias, mean, var):
    if node.attr("training_mode", 0) or (len(node.outputs) > 1 and any(node.outputs[1:])):
        raise ValueError("BatchNormalization in training mode; numcnn runs ONNX graphs for inference")
    return F.batch_norm(x, mean, var, scale, bias, False, 0.0, node.attr("epsilon", 1e-5))


def layer_normalization(node, x, scale, bias=None):
    if len(node.outputs) > 1 and any(node.outputs[1:]):
        raise ValueError("the Mean and InvStdDev outputs of LayerNormalization are not supported")
    axis = _axis(node.attr("axis", -1), x.ndim)
    shape = tuple(x.shape[axis:])
    eps = node.attr("epsilon", 1e-5)
    if tuple(scale.shape) == shape and (bias is None or tuple(bias.shape) == shape):
        return F.layer_norm(x, shape, scale, bias, eps)
    y = F.layer_norm(x, shape, None, None, eps) * scale  # broadcastable scale/bias
    return y if bias is None else y + bias
