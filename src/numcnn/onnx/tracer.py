"""The tracer behind :func:`numcnn.onnx.export.to_onnx`: :class:`ExportError` and ``_Tracer``, which keeps the ONNX
graph being written (nodes, initializers, the name and batch axis of every traced value) and, installed as the
autograd Function hook, hands each Function call of the forward pass to its emitter (``numcnn.onnx.emitters``).
"""

from __future__ import annotations

import numpy as np

from ..autograd.tensor import Tensor
from . import _proto


class ExportError(ValueError):
    """The model cannot be written as ONNX (an operation without an ONNX form, a training-mode layer...)."""


def operation_names(emitters) -> list[str]:
    """The numcnn operations (autograd Function names) of an emitter table."""
    return sorted({c.__name__.lstrip("_") for c in emitters})


class _Tracer:
    """Turns the Function calls of one forward pass into ONNX nodes and initializers."""

    def __init__(self, model, opset: int, emitters: dict):
        self.opset = opset
        self.emitters = emitters            # Function class -> emitter(tracer, args, result)
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
        emit = self.emitters.get(cls)
        if emit is None:
            where = f" in module '{self.scope[-1]}'" if self.scope and self.scope[-1] else ""
            raise ExportError(f"ONNX export: operation {cls.__name__.lstrip('_')}{where} has no ONNX form; the "
                              f"operations that export are: {', '.join(operation_names(self.emitters))}")
        if kwargs:  # pragma: no cover - numcnn's functional API passes Function arguments positionally
            raise ExportError(f"ONNX export: {cls.__name__} was called with keyword arguments {sorted(kwargs)}")
        emit(self, args, result)
