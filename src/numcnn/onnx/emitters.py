"""The emitters of :func:`numcnn.onnx.export.to_onnx`: for each numcnn operation (autograd Function class) the
function that writes its ONNX node(s) through the tracer, and the ``EMITTERS`` table from Function class to emitter.
"""

from __future__ import annotations

import math

import numpy as np

from ..autograd import activation_ops as AA
from ..autograd import ops, reduction_ops
from ..nn.functional import activation as FA
from ..nn.functional import conv as FC
from ..nn.functional import normalization as FN
from ..nn.functional import pooling as FP
from ..nn.functional.linear import _Linear
from . import _proto
from .tracer import ExportError, _Tracer

_INT64_MAX, _INT64_MIN = 2**63 - 1, -(2**63)


# ---------------------------------------------------------------- emitters: elementwise


def _unary(op: str, **attrs):
    def emit(tr: _Tracer, args, out):
        tr.emit(out, op, [tr.value(args[0])], tr.batch_of(args[0], out=out), **attrs)
    return emit


def _binary(op: str):
    def emit(tr: _Tracer, args, out):
        a, b = args
        tr.emit(out, op, [tr.value(a, out.dtype), tr.value(b, out.dtype)], tr.batch_of(a, b, out=out))
    return emit


def _with_attr(op: str, attr: str):
    def emit(tr: _Tracer, args, out):
        tr.emit(out, op, [tr.value(args[0])], tr.batch_of(args[0], out=out), **{attr: float(args[1])})
    return emit


def _clamp(tr: _Tracer, args, out):
    a, lo, hi = args
    names = [tr.value(a), "" if lo is None else tr.constant(lo, like=out.dtype),
             "" if hi is None else tr.constant(hi, like=out.dtype)]
    tr.emit(out, "Clip", names, tr.batch_of(a, out=out))


def _cast(tr: _Tracer, args, out):
    tr.emit(out, "Cast", [tr.value(args[0])], tr.batch_of(args[0], out=out), to=_proto.ONNX_OF_NP[out.dtype])


def _where(tr: _Tracer, args, out):
    cond, a, b = args
    names = [tr.constant(cond), tr.value(a, out.dtype), tr.value(b, out.dtype)]
    tr.emit(out, "Where", names, tr.batch_of(a, b, out=out))


def _softmax(op: str):
    def emit(tr: _Tracer, args, out):
        tr.emit(out, op, [tr.value(args[0])], tr.batch_of(args[0], out=out), axis=int(args[1]))
    return emit


def _gelu(tr: _Tracer, args, out):
    x, approximate = args
    xn, batch, dt = tr.value(x), tr.batch_of(x, out=out), out.dtype
    if tr.opset >= 20:
        tr.emit(out, "Gelu", [xn], batch, approximate=approximate)
        return
    # Below opset 20 there is no Gelu: write the formula, with Erf (exact) or Tanh (approximate).
    if approximate == "none":
        (t,) = tr.node("Erf", [tr.node("Mul", [xn, tr.constant(1 / math.sqrt(2), like=dt)])[0]])
    else:
        (x2,) = tr.node("Mul", [xn, xn])
        (poly,) = tr.node("Add", [tr.constant(1.0, like=dt), tr.node("Mul", [x2, tr.constant(0.044715, like=dt)])[0]])
        (inner,) = tr.node("Mul", [tr.node("Mul", [xn, poly])[0], tr.constant(math.sqrt(2 / math.pi), like=dt)])
        (t,) = tr.node("Tanh", [inner])
    (half,) = tr.node("Mul", [xn, tr.constant(0.5, like=dt)])
    tr.emit(out, "Mul", [half, tr.node("Add", [t, tr.constant(1.0, like=dt)])[0]], batch)


# ---------------------------------------------------------------- emitters: reductions


def _reduced_batch(b, axes, keepdim):
    if b is None or axes is None or b in axes:
        return None
    return b if keepdim else b - sum(1 for a in axes if a < b)


def _reduce(op: str):
    def emit(tr: _Tracer, args, out):
        a, dim, keepdim = args[:3]
        if op == "ReduceMax" and not args[3]:  # MaxMin's is_max
            return _reduce("ReduceMin")(tr, args, out)
        axes = reduction_ops.norm_axes(dim, a.ndim)
        xn = tr.value(a)
        tr.axes_input(op, xn, axes, keepdim, out, _reduced_batch(tr.batch.get(xn), axes, keepdim))
    return emit


def _var(tr: _Tracer, args, out):
    a, dim, keepdim, correction = args
    axes = reduction_ops.norm_axes(dim, a.ndim)
    xn, dt = tr.value(a), out.dtype
    all_axes = list(axes) if axes is not None else list(range(a.ndim))
    n = math.prod(a.shape[i] for i in all_axes)
    if tr.batch.get(xn) in all_axes:
        raise ExportError("ONNX export: a variance over the batch axis depends on the batch size; export with "
                          "dynamic_batch=False")
    mean_op = ["ReduceMean", xn, tr.ints(all_axes)] if tr.opset >= 18 else ["ReduceMean", xn]
    mean_attrs = {} if tr.opset >= 18 else {"axes": all_axes}
    (mean,) = tr.node(mean_op[0], mean_op[1:], keepdims=1, **mean_attrs)
    (d,) = tr.node("Sub", [xn, mean])
    (s,) = tr.node("ReduceSum", [tr.node("Mul", [d, d])[0], tr.ints(all_axes)], keepdims=int(bool(keepdim)))
    denom = tr.constant(max(n - correction, 0), like=dt)
    tr.emit(out, "Div", [s, denom], _reduced_batch(tr.batch.get(xn), all_axes, keepdim))


# ---------------------------------------------------------------- emitters: shapes


def _reshape(tr: _Tracer, args, out):
    a, shape = args
    xn = tr.value(a)
    b = tr.batch.get(xn)
    target, ob = list(shape), None
    if b is not None:
        # The batch axis survives if some output axis j holds exactly the batch size with the same number of
        # elements before it; writing -1 there lets the batch size vary.
        lead = math.prod(a.shape[:b])
        for j, s in enumerate(shape):
            if s == a.shape[b] and math.prod(shape[:j]) == lead:
                target[j], ob = -1, j
                break
        else:
            raise ExportError(f"ONNX export: reshape from {tuple(a.shape)} to {tuple(shape)} mixes the batch axis "
                              f"{b} with other axes, so the batch size cannot stay dynamic; export with "
                              "dynamic_batch=False (or reshape with the batch axis kept whole)")
    tr.emit(out, "Reshape", [xn, tr.ints(target)], ob)


def _permute(tr: _Tracer, args, out):
    a, axes = args
    xn = tr.value(a)
    b = tr.batch.get(xn)
    tr.emit(out, "Transpose", [xn], None if b is None else list(axes).index(b), perm=[int(p) for p in axes])


def _expand(tr: _Tracer, args, out):
    a, shape = args
    xn = tr.value(a)
    b = tr.batch_of(a, out=out)
    target = [1 if i == b else int(s) for i, s in enumerate(shape)]  # Expand broadcasts both ways
    tr.emit(out, "Expand", [xn, tr.ints(target)], b)


def _getitem(tr: _Tracer, args, out):
    a, index = args
    idx = index if isinstance(index, tuple) else (index,)
    basic = (int, np.integer, slice, type(None), type(Ellipsis))
    if not all(isinstance(i, basic) and not isinstance(i, (bool, np.bool_)) for i in idx):
        raise ExportError("ONNX export: only basic indexing (integers, slices, None, ...) exports; got an index "
                          f"with {', '.join(sorted({type(i).__name__ for i in idx if not isinstance(i, basic)}))}")
    n_real = sum(1 for i in idx if i is not None and i is not Ellipsis)
    if any(i is Ellipsis for i in idx):
        k = next(j for j, i in enumerate(idx) if i is Ellipsis)
        idx = idx[:k] + (slice(None),) * (a.ndim - n_real) + tuple(i for i in idx[k + 1 :] if i is not Ellipsis)
    idx = idx + (slice(None),) * (a.ndim - sum(1 for i in idx if i is not None))
    xn = tr.value(a)
    b = tr.batch.get(xn)
    starts, ends, axes, steps, squeeze, unsqueeze = [], [], [], [], [], []
    axis = pos = 0
    ob = None
    for i in idx:
        if i is None:
            unsqueeze.append(pos)
            pos += 1
            continue
        if isinstance(i, slice):
            step = 1 if i.step is None else int(i.step)
            if i != slice(None):
                default_start, default_end = (0, _INT64_MAX) if step > 0 else (_INT64_MAX, _INT64_MIN)
                starts.append(default_start if i.start is None else int(i.start))
                ends.append(default_end if i.stop is None else int(i.stop))
                axes.append(axis)
                steps.append(step)
            elif axis == b:
                ob = pos
            pos += 1
        else:
            i = int(i)
            starts.append(i)
            ends.append(_INT64_MAX if i == -1 else i + 1)
            axes.append(axis)
            steps.append(1)
            squeeze.append(axis)
        axis += 1
    name = xn
    if axes:
        (name,) = tr.node("Slice", [name, tr.ints(starts), tr.ints(ends), tr.ints(axes), tr.ints(steps)])
    if squeeze:
        (name,) = tr.node("Squeeze", [name, tr.ints(squeeze)])
    if unsqueeze:
        (name,) = tr.node("Unsqueeze", [name, tr.ints(unsqueeze)])
    tr.emit(out, "Identity", [name], ob)


def _common_batch(tr: _Tracer, arrays) -> int | None:
    bs = {tr.batch.get(tr.value(t)) for t in arrays}
    return bs.pop() if len(bs) == 1 else None


def _cat(tr: _Tracer, args, out):
    dim, arrays = args[0], args[1:]
    b = _common_batch(tr, arrays)
    tr.emit(out, "Concat", [tr.value(t) for t in arrays], None if b == dim else b, axis=int(dim))


def _stack(tr: _Tracer, args, out):
    dim, arrays = args[0], args[1:]
    b = _common_batch(tr, arrays)
    axes = tr.ints([dim])
    parts = [tr.node("Unsqueeze", [tr.value(t), axes])[0] for t in arrays]
    tr.emit(out, "Concat", parts, None if b is None else (b if b < dim else b + 1), axis=int(dim))


# ---------------------------------------------------------------- emitters: layers


def _pads(pad) -> list[int]:
    (t, bm), (lf, r) = pad
    return [int(t), int(lf), int(bm), int(r)]


def _conv(tr: _Tracer, args, out):
    x, w, bias, geo, _ = args
    inputs = [tr.value(x), tr.value(w)] + ([tr.value(bias)] if bias is not None else [])
    tr.emit(out, "Conv", inputs, tr.batch.get(tr.value(x)), kernel_shape=list(w.shape[2:]),
            strides=list(geo.stride), pads=_pads(geo.padding), dilations=list(geo.dilation), group=int(geo.groups))


def _conv_transpose(tr: _Tracer, args, out):
    x, w, bias, (stride, padding, output_padding, dilation, groups), _ = args
    inputs = [tr.value(x), tr.value(w)] + ([tr.value(bias)] if bias is not None else [])
    tr.emit(out, "ConvTranspose", inputs, tr.batch.get(tr.value(x)), kernel_shape=list(w.shape[2:]),
            strides=list(stride), pads=list(padding) * 2, output_padding=list(output_padding),
            dilations=list(dilation), group=int(groups))


def _linear(tr: _Tracer, args, out):
    x, w, bias = args
    xn, b = tr.value(x), tr.batch_of(x, out=out)
    if x.ndim == 2:
        inputs = [xn, tr.value(w)] + ([tr.value(bias)] if bias is not None else [])
        tr.emit(out, "Gemm", inputs, b, transB=1)
        return
    (wt,) = tr.node("Transpose", [tr.value(w)], perm=[1, 0])
    if bias is None:
        tr.emit(out, "MatMul", [xn, wt], b)
    else:
        tr.emit(out, "Add", [tr.node("MatMul", [xn, wt])[0], tr.value(bias)], b)


def _batch_norm_eval(tr: _Tracer, args, out):
    x, w, bias, rm, rv, eps, _ = args
    c, dt = x.shape[1], out.dtype
    inputs = [tr.value(x),
              tr.value(w) if w is not None else tr.constant(np.ones(c, dtype=dt)),
              tr.value(bias) if bias is not None else tr.constant(np.zeros(c, dtype=dt)),
              tr.value(rm), tr.value(rv)]
    tr.emit(out, "BatchNormalization", inputs, tr.batch.get(tr.value(x)), epsilon=float(eps))


def _batch_norm_train(tr: _Tracer, args, out):
    raise ExportError("ONNX export: a BatchNorm normalised with batch statistics (a BatchNorm with "
                      "track_running_stats=False, or batch_norm(training=True) in forward); ONNX inference graphs "
                      "use running statistics")


def _layer_norm(tr: _Tracer, args, out):
    x, w, bias, k, eps = args
    shape = x.shape[x.ndim - k :]
    inputs = [tr.value(x), tr.value(w) if w is not None else tr.constant(np.ones(shape, dtype=out.dtype))]
    if bias is not None:
        inputs.append(tr.value(bias))
    tr.emit(out, "LayerNormalization", inputs, tr.batch.get(tr.value(x)), axis=-int(k), epsilon=float(eps))


def _max_pool(tr: _Tracer, args, out):
    x, kernel, stride, padding, dilation, ceil_mode = args
    tr.emit(out, "MaxPool", [tr.value(x)], tr.batch.get(tr.value(x)), kernel_shape=list(kernel),
            strides=list(stride), pads=list(padding) * 2, dilations=list(dilation), ceil_mode=int(ceil_mode))


def _avg_pool(tr: _Tracer, args, out):
    x, kernel, stride, padding, ceil_mode, count_include_pad, divisor = args
    xn, b = tr.value(x), tr.batch.get(tr.value(x))
    attrs = dict(kernel_shape=list(kernel), strides=list(stride), pads=list(padding) * 2, ceil_mode=int(ceil_mode))
    if divisor is None:
        tr.emit(out, "AveragePool", [xn], b, count_include_pad=int(count_include_pad), **attrs)
        return
    if ceil_mode:
        raise ExportError("ONNX export: avg_pool2d with divisor_override and ceil_mode has no ONNX form")
    # Every window is whole (no ceil_mode), so sum / divisor = the padded average * (window size / divisor).
    (avg,) = tr.node("AveragePool", [xn], count_include_pad=1, **attrs)
    tr.emit(out, "Mul", [avg, tr.constant(math.prod(kernel) / divisor, like=out.dtype)], b)


def _adaptive_avg_pool(tr: _Tracer, args, out):
    x, size = args
    xn, b = tr.value(x), tr.batch.get(tr.value(x))
    if tuple(size) == (1, 1):
        tr.emit(out, "GlobalAveragePool", [xn], b)
    elif tuple(size) == tuple(x.shape[2:]):
        tr.emit(out, "Identity", [xn], b)
    else:
        raise ExportError(f"ONNX export: adaptive average pooling exports only to 1x1 (GlobalAveragePool), got "
                          f"output size {tuple(size)} for input {tuple(x.shape)}")


def _dropout_train(tr: _Tracer, args, out):
    raise ExportError("ONNX export: dropout in training mode (F.dropout(..., training=True) in forward); the "
                      "exported graph is an inference graph")


EMITTERS = {
    ops.Add: _binary("Add"), ops.Sub: _binary("Sub"), ops.Mul: _binary("Mul"), ops.Div: _binary("Div"),
    ops.Pow: _binary("Pow"), ops.MatMul: _binary("MatMul"), ops.Neg: _unary("Neg"), ops.Exp: _unary("Exp"),
    ops.Log: _unary("Log"), ops.Sqrt: _unary("Sqrt"), ops.Abs: _unary("Abs"), ops.Clamp: _clamp,
    ops.Cast: _cast, ops.Where: _where,
    reduction_ops.Sum: _reduce("ReduceSum"), reduction_ops.Mean: _reduce("ReduceMean"),
    reduction_ops.MaxMin: _reduce("ReduceMax"), reduction_ops.Var: _var,
    ops.Reshape: _reshape, ops.Permute: _permute, ops.Expand: _expand, ops.GetItem: _getitem, ops.Cat: _cat,
    ops.Stack: _stack,
    FC._Conv2d: _conv, FC._ConvTranspose2d: _conv_transpose, _Linear: _linear,
    FN._BatchNormEval: _batch_norm_eval, FN._BatchNormTrain: _batch_norm_train, FN._LayerNorm: _layer_norm,
    FP._MaxPool2d: _max_pool, FP._AvgPool2d: _avg_pool, FP._AdaptiveAvgPool2d: _adaptive_avg_pool,
    AA.ReLU: _unary("Relu"), AA.LeakyReLU: _with_attr("LeakyRelu", "alpha"), AA.ELU: _with_attr("Elu", "alpha"),
    AA.GELU: _gelu, AA.Sigmoid: _unary("Sigmoid"), AA.Tanh: _unary("Tanh"), AA.Softmax: _softmax("Softmax"),
    AA.LogSoftmax: _softmax("LogSoftmax"), FA._MulMask: _dropout_train,
}
