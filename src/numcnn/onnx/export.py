"""numcnn model -> ONNX: trace one eval-mode forward pass and write one ONNX node (or a few) per numcnn operation.

Every numcnn operation is an autograd Function, so tracing needs no model-specific code: while the example input
goes through ``model``, the Function hook (``numcnn.autograd.function._forward_hook``) hands each call to the
emitter of its Function class below, which writes the ONNX equivalent. Parameters and buffers become
initializers named by their state_dict keys (``layer1.0.weight``); nodes are named by the module path they ran in
(``layer1.0.conv1/Conv_3``). Residual ``+``, ``numcnn.cat``, ``flatten`` and the like are Functions too, so they
come out as Add, Concat and Reshape with no special case.

The batch dimension stays symbolic ("batch"): the tracer follows which axis of every value is the batch axis and
writes reshapes with ``-1`` there; a model that mixes the batch axis with others is refused unless
``dynamic_batch=False``.
"""

from __future__ import annotations

import json
import math
import os

import numpy as np

from .._version import __version__
from ..autograd import activation_ops as AA
from ..autograd import function as _function
from ..autograd import ops
from ..autograd.grad_mode import enable_grad
from ..autograd.tensor import Tensor
from ..nn.functional import activation as FA
from ..nn.functional import conv as FC
from ..nn.functional import normalization as FN
from ..nn.functional import pooling as FP
from ..nn.functional.linear import _Linear
from ..serialization import atomic_write
from . import _proto

MIN_OPSET, MAX_OPSET = 17, 21
_INT64_MAX, _INT64_MIN = 2**63 - 1, -(2**63)
#: Metadata key saying what the file's input is: :data:`INPUT_PIXELS` (the graph starts with ``(x - mean) / std``,
#: written by ``normalize=``) or :data:`INPUT_NORMALIZED` (the bare network: feed it ``(pixels - mean) / std``).
INPUT_KEY = "numcnn.input"
INPUT_PIXELS, INPUT_NORMALIZED = "pixels", "normalized"
#: Metadata key holding the normalization ``{"mean": [...], "std": [...]}`` (JSON) when the export knows it.
NORMALIZATION_KEY = "numcnn.normalization"


class ExportError(ValueError):
    """The model cannot be written as ONNX (an operation without an ONNX form, a training-mode layer...)."""


class _Tracer:
    """Turns the Function calls of one forward pass into ONNX nodes and initializers."""

    def __init__(self, model, opset: int):
        self.opset = opset
        self.nodes: list = []
        self.initializers: list = []
        self.known: dict[int, str] = {}     # id(Tensor or its ndarray) -> ONNX value name
        self.keep: list = []                # traced objects stay alive so that their ids stay unique
        self.batch: dict[str, int | None] = {}  # value name -> axis of the batch dimension
        self.scope: list[str] = []
        self.count = 0
        self.params: dict[int, tuple[str, np.ndarray]] = {}
        for name, t in (*model.named_parameters(), *model.named_buffers()):
            self.params[id(t)] = self.params[id(t.array)] = (name, t.array)

    # ------------------------------------------------------------ values
    def value(self, obj, like=None) -> str:
        """The ONNX name of a Function argument: a traced value, a parameter/buffer (becomes an initializer named
        by its state_dict key), or a constant (a Tensor made inside forward, an ndarray or a Python number)."""
        if obj is None:
            return ""
        data = obj.array if isinstance(obj, Tensor) else obj
        for key in (id(obj), id(data)):
            if key in self.known:
                return self.known[key]
        for key in (id(obj), id(data)):
            if key in self.params:
                name, arr = self.params[key]
                self.initializers.append(_proto.from_array(arr, name))
                self.known[id(obj)] = self.known[id(data)] = name
                self.batch[name] = None
                return name
        arr = data if isinstance(data, np.ndarray) else np.asarray(data, dtype=like)
        return self.constant(arr, keep=obj)

    def constant(self, arr, keep=None, like=None) -> str:
        arr = np.asarray(arr, dtype=like)
        name = f"const_{len(self.initializers)}"
        self.initializers.append(_proto.from_array(arr, name))
        self.batch[name] = None
        if keep is not None and not isinstance(keep, (int, float, bool)):
            self.keep.append(keep)
            self.known[id(keep)] = name
        return name

    def ints(self, values) -> str:
        return self.constant(np.asarray(list(values), dtype=np.int64))

    def node(self, op: str, inputs, n_out: int = 1, **attrs) -> list[str]:
        from onnx import helper

        self.count += 1
        base = f"{self.scope[-1] if self.scope else ''}/{op}_{self.count}"
        outs = [base if i == 0 else f"{base}:{i}" for i in range(n_out)]
        self.nodes.append(helper.make_node(op, list(inputs), outs, name=base, **attrs))
        return outs

    def bind(self, result: Tensor, name: str, batch: int | None) -> None:
        self.known[id(result)] = self.known[id(result.array)] = name
        self.keep.append(result)
        self.batch[name] = batch

    def emit(self, result: Tensor, op: str, inputs, batch: int | None, **attrs) -> str:
        (name,) = self.node(op, inputs, **attrs)
        self.bind(result, name, batch)
        return name

    def batch_of(self, *args, out: Tensor) -> int | None:
        """The batch axis of the output of an elementwise operation: the first input that has one, aligned to
        the output's rank as broadcasting aligns it."""
        for a in args:
            if isinstance(a, Tensor):
                b = self.batch.get(self.value(a))
                if b is not None:
                    return b + out.ndim - a.ndim
        return None

    def axes_input(self, op: str, x: str, axes, keepdim: bool, out: Tensor, batch) -> str:
        """ReduceSum (axes an input since opset 13) / ReduceMean, ReduceMax, ReduceMin (since opset 18)."""
        k = int(bool(keepdim))
        if axes is None:
            return self.emit(out, op, [x], batch, keepdims=k)
        if op == "ReduceSum" or self.opset >= 18:
            return self.emit(out, op, [x, self.ints(axes)], batch, keepdims=k)
        return self.emit(out, op, [x], batch, axes=list(axes), keepdims=k)

    # ------------------------------------------------------------ the Function hook
    def __call__(self, cls, args, kwargs, ctx, result) -> None:
        emit = EMITTERS.get(cls)
        if emit is None:
            where = f" in module '{self.scope[-1]}'" if self.scope and self.scope[-1] else ""
            raise ExportError(f"ONNX export: operation {cls.__name__.lstrip('_')}{where} has no ONNX form; the "
                              f"operations that export are: {', '.join(supported_operations())}")
        if kwargs:  # pragma: no cover - numcnn's functional API passes Function arguments positionally
            raise ExportError(f"ONNX export: {cls.__name__} was called with keyword arguments {sorted(kwargs)}")
        emit(self, args, result)


def supported_operations() -> list[str]:
    """The numcnn operations (autograd Function names) that have an ONNX form."""
    return sorted({c.__name__.lstrip("_") for c in EMITTERS})


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
        axes = ops._norm_axes(dim, a.ndim)
        xn = tr.value(a)
        tr.axes_input(op, xn, axes, keepdim, out, _reduced_batch(tr.batch.get(xn), axes, keepdim))
    return emit


def _var(tr: _Tracer, args, out):
    a, dim, keepdim, correction = args
    axes = ops._norm_axes(dim, a.ndim)
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
    ops.Sum: _reduce("ReduceSum"), ops.Mean: _reduce("ReduceMean"), ops.MaxMin: _reduce("ReduceMax"),
    ops.Var: _var,
    ops.Reshape: _reshape, ops.Permute: _permute, ops.Expand: _expand, ops.GetItem: _getitem, ops.Cat: _cat,
    ops.Stack: _stack,
    FC._Conv2d: _conv, FC._ConvTranspose2d: _conv_transpose, _Linear: _linear,
    FN._BatchNormEval: _batch_norm_eval, FN._BatchNormTrain: _batch_norm_train, FN._LayerNorm: _layer_norm,
    FP._MaxPool2d: _max_pool, FP._AvgPool2d: _avg_pool, FP._AdaptiveAvgPool2d: _adaptive_avg_pool,
    AA.ReLU: _unary("Relu"), AA.LeakyReLU: _with_attr("LeakyRelu", "alpha"), AA.ELU: _with_attr("Elu", "alpha"),
    AA.GELU: _gelu, AA.Sigmoid: _unary("Sigmoid"), AA.Tanh: _unary("Tanh"), AA.Softmax: _softmax("Softmax"),
    AA.LogSoftmax: _softmax("LogSoftmax"), FA._MulMask: _dropout_train,
}


# ---------------------------------------------------------------- entry points


def _scope_hooks(model, tracer: _Tracer) -> list:
    handles = []
    for name, m in model.named_modules():
        def pre(mod, args, name=name):
            tracer.scope.append(name)

        def post(mod, args, out):
            tracer.scope.pop()

        handles += [m.register_forward_pre_hook(pre), m.register_forward_hook(post)]
    return handles


def _value_info(name: str, arr: np.ndarray, batch: int | None):
    from onnx import helper

    dims = ["batch" if i == batch else int(s) for i, s in enumerate(arr.shape)]
    return helper.make_tensor_value_info(name, _proto.ONNX_OF_NP[arr.dtype], dims)


def _normalization(normalize, arr: np.ndarray) -> tuple[np.ndarray, np.ndarray, dict]:
    """``(mean, std)`` arrays shaped (C, 1, ..., 1) to broadcast over an (N, C, ...) input, checked, and the
    ``{"mean": [...], "std": [...]}`` of the metadata."""
    try:
        mean, std = (np.atleast_1d(np.asarray(v, dtype=np.float64)) for v in normalize)
    except (TypeError, ValueError):
        raise TypeError(f"ONNX export: normalize must be (mean, std), one value per channel or one for all, got "
                        f"{normalize!r}") from None
    channels = arr.shape[1] if arr.ndim >= 2 else 1
    for label, v in (("mean", mean), ("std", std)):
        if v.ndim != 1 or len(v) not in (1, channels) or not np.isfinite(v).all():
            raise ValueError(f"ONNX export: normalize {label} must be 1 or {channels} finite values (one per "
                             f"channel of input {arr.shape}), got {v.tolist()}")
    if (std == 0).any():
        raise ValueError(f"ONNX export: normalize std must be non-zero, got {std.tolist()}")
    shape = (-1,) + (1,) * max(arr.ndim - 2, 0)
    info = {"mean": mean.tolist(), "std": std.tolist()}
    return mean.astype(arr.dtype).reshape(shape), std.astype(arr.dtype).reshape(shape), info


def to_onnx(model, example_input, opset: int = MIN_OPSET, *, dynamic_batch: bool = True, input_name: str = "input",
            output_name: str = "output", metadata: dict[str, str] | None = None, normalize=None):
    """The ``onnx.ModelProto`` of ``model`` (run in eval mode on ``example_input``, e.g. (1, C, H, W) float32).
    ``metadata``: string key/value pairs stored in the file's ``metadata_props`` (the CLI stores the run config).
    ``normalize``: ``(mean, std)`` (one value per channel, or one for all): the graph starts with
    ``(input - mean) / std``, so the file takes what a user has -- pixels in [0, 1] -- and the metadata says so
    (``numcnn.input`` = "pixels", ``numcnn.normalization`` = the JSON of mean and std); ``example_input`` is then
    such pixels too. Without it the file is the bare network, fed exactly what ``model`` is fed.

    Raises :class:`ExportError` for an operation without an ONNX form (naming it and the module it ran in) and
    ``ImportError`` without the ``onnx`` package (``pip install numcnn[onnx]``)."""
    try:
        import onnx
        from onnx import helper
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("numcnn.onnx needs the onnx package: pip install 'numcnn[onnx]'") from e
    if not isinstance(opset, int) or not MIN_OPSET <= opset <= MAX_OPSET:
        raise ValueError(f"ONNX export: opset must be an int from {MIN_OPSET} to {MAX_OPSET}, got {opset!r}")
    arr = example_input.array if isinstance(example_input, Tensor) else np.asarray(example_input)
    if arr.dtype not in (np.float32, np.float64) or arr.ndim < 1:
        raise TypeError(f"ONNX export: example_input must be a float32 or float64 batch (N, ...), got "
                        f"{arr.dtype} of shape {arr.shape}")
    tracer = _Tracer(model, opset)
    info = None
    if normalize is not None:
        mean, std, info = _normalization(normalize, arr)
        arr = (arr - mean) / std  # what the model sees, as numcnn.data.Normalize computes it
    x = Tensor._make(arr, True)
    tracer.bind(x, input_name, 0 if dynamic_batch else None)
    if normalize is not None:
        (centred,) = tracer.node("Sub", [input_name, tracer.constant(mean)])
        tracer.batch[centred] = 0 if dynamic_batch else None
        (scaled,) = tracer.node("Div", [centred, tracer.constant(std)])
        tracer.bind(x, scaled, 0 if dynamic_batch else None)
    handles = _scope_hooks(model, tracer)
    was_training, previous = model.training, _function._forward_hook
    model.eval()
    _function._forward_hook = tracer
    try:
        with enable_grad():  # so that every step from the input is a recorded Function (Tensor.to, clone...)
            out = model(x)
    finally:
        _function._forward_hook = previous
        model.train(was_training)
        for h in handles:
            h.remove()
    outs = list(out) if isinstance(out, (tuple, list)) else [out]
    if not all(isinstance(o, Tensor) for o in outs):
        raise ExportError(f"ONNX export: the model must return a Tensor or a tuple of Tensors, got {type(out)}")
    names = [output_name if i == 0 else f"{output_name}_{i}" for i in range(len(outs))]
    outputs = []
    for name, o in zip(names, outs):
        if id(o) not in tracer.known and id(o.array) not in tracer.known:
            raise ExportError(f"ONNX export: output {name!r} was not computed by numcnn operations from the input "
                              "(e.g. max-pool indices); it would be frozen into the file as a constant")
        src = tracer.value(o)
        tracer.nodes.append(helper.make_node("Identity", [src], [name], name=f"/{name}"))
        outputs.append(_value_info(name, o.array, tracer.batch.get(src)))
    graph_input = _value_info(input_name, arr, tracer.batch[input_name])
    if info is not None:
        graph_input.doc_string = (f"pixels in [0, 1], (N, C, H, W); the graph normalises them first: (x - mean) / "
                                  f"std with mean {info['mean']}, std {info['std']}")
    graph = helper.make_graph(tracer.nodes, type(model).__name__, [graph_input], outputs,
                              initializer=tracer.initializers)
    opset_id = helper.make_opsetid("", opset)
    proto = helper.make_model(graph, opset_imports=[opset_id], producer_name="numcnn", producer_version=__version__)
    proto.ir_version = helper.find_min_ir_version_for([opset_id])
    metadata = dict(metadata or {})
    if info is not None:
        metadata.update({INPUT_KEY: INPUT_PIXELS, NORMALIZATION_KEY: json.dumps(info)})
    for key, value in metadata.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise TypeError(f"ONNX export: metadata must map str to str, got {key!r}: {type(value).__name__}")
        helper.set_model_props(proto, {**{p.key: p.value for p in proto.metadata_props}, key: value})
    try:
        onnx.checker.check_model(proto, full_check=True)  # structure and shape inference
    except Exception as e:  # pragma: no cover - an emitter bug, not a user error
        raise ExportError(f"ONNX export: internal error, the written graph does not check ({e})") from e
    return proto


def export(model, example_input, path: str | os.PathLike, opset: int = MIN_OPSET, *, dynamic_batch: bool = True,
           input_name: str = "input", output_name: str = "output", metadata: dict[str, str] | None = None,
           normalize=None) -> None:
    """Write ``model`` as an ONNX file at ``path`` (atomically: a failed export leaves any old file whole).

    model: a numcnn Module, traced in eval mode (its mode is restored); example_input: (N, C, H, W) float32
    Tensor or ndarray, any N; the file's batch dimension is symbolic ("batch") unless ``dynamic_batch=False``.
    opset: 17 to 21 (GELU is written as its Erf formula below 20; adaptive average pooling exports to 1x1 only).
    normalize: ``(mean, std)`` writes the input normalization into the graph, so that the file takes pixels in
    [0, 1] and says so in its metadata (see :func:`to_onnx`); None (default) writes the bare network."""
    proto = to_onnx(model, example_input, opset, dynamic_batch=dynamic_batch, input_name=input_name,
                    output_name=output_name, metadata=metadata, normalize=normalize)
    data = proto.SerializeToString()
    atomic_write(path, data)
