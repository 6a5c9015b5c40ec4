"""``numcnn.onnx.load``: an ONNX file -> an ``nn.Module`` that runs the graph with numcnn's operations (NumPy only).

Everything is checked when the file is read, before anything runs: the opset, that every operator is one of
:data:`SUPPORTED_OPS` (all unsupported ones are named at once, with the supported list), that the nodes are in
topological order with each value defined once, that every tensor's declared size matches its data (bounded by
``_proto.MAX_ELEMENTS``, so a forged header allocates nothing) and, by default, that the weights are finite.
External data files are refused: loading a model never opens another path, and no pickle is involved anywhere.

Float initializers become Parameters (BatchNormalization statistics become buffers), registered under their ONNX
names, so ``state_dict()`` keys are the initializer names: a file written by ``numcnn.onnx.export`` gives back the
original model's keys (``layer1.0.conv1.weight``). The module is an inference graph: BatchNormalization uses the
stored statistics and Dropout is the identity in either mode, but gradients flow through it for fine-tuning.
"""

from __future__ import annotations

import inspect
import os

import numpy as np

from ..autograd.tensor import Tensor
from ..nn import Module, Parameter
from . import _proto
from .ops import OPS, GraphError

MIN_OPSET, MAX_OPSET = 13, 21
MAX_FILE_BYTES = 2**31  # protobuf's limit: larger models keep their weights in external files, which are refused
SUPPORTED_OPS: tuple[str, ...] = tuple(sorted(OPS))


class UnsupportedOperatorError(GraphError):
    """The graph uses operators that numcnn does not run; ``operators`` lists them."""

    def __init__(self, operators: list[str]):
        self.operators = operators
        super().__init__(f"ONNX operator(s) not supported by numcnn: {', '.join(operators)}. Supported operators "
                         f"(default domain, opset {MIN_OPSET}-{MAX_OPSET}): {', '.join(SUPPORTED_OPS)}")


class Node:
    """One graph node, with its attributes decoded (ints, floats, strings, lists of them, or a Tensor)."""

    __slots__ = ("name", "op_type", "inputs", "outputs", "attrs", "fn", "release")

    def __init__(self, name: str, op_type: str, inputs: list[str], outputs: list[str], attrs: dict):
        self.name, self.op_type, self.inputs, self.outputs, self.attrs = name, op_type, inputs, outputs, attrs
        self.fn = OPS[op_type]
        self.release: list[str] = []  # values last used by this node, freed after it runs

    def attr(self, key: str, default=None):
        return self.attrs.get(key, default)


def _s(v) -> str:
    """A protobuf string field as str: a hostile file's invalid UTF-8 comes back as bytes."""
    return v if isinstance(v, str) else bytes(v).decode("utf-8", "backslashreplace")


def _arity(fn) -> tuple[int, float]:
    params = list(inspect.signature(fn).parameters.values())[1:]
    if any(p.kind == p.VAR_POSITIONAL for p in params):
        return sum(p.default is p.empty for p in params if p.kind != p.VAR_POSITIONAL), float("inf")
    return sum(p.default is p.empty for p in params), len(params)


_ARITY = {op: _arity(fn) for op, fn in OPS.items()}
_MAX_OUTPUTS = {"Dropout": 2, "MaxPool": 2, "BatchNormalization": 5, "LayerNormalization": 3}


def _attributes(node, what: str, check_finite: bool) -> dict:
    from onnx import AttributeProto as A

    out = {}
    for a in node.attribute:
        name = _s(a.name)
        if a.ref_attr_name:
            raise GraphError(f"{what}: attribute {name!r} refers to a function attribute; functions are not supported")
        t = a.type
        if t == A.INT:
            out[name] = int(a.i)
        elif t == A.FLOAT:
            out[name] = float(a.f)
        elif t == A.STRING:
            out[name] = _s(a.s)
        elif t == A.INTS:
            out[name] = [int(v) for v in a.ints]
        elif t == A.FLOATS:
            out[name] = [float(v) for v in a.floats]
        elif t == A.STRINGS:
            out[name] = [_s(v) for v in a.strings]
        elif t == A.TENSOR:
            arr = _proto.to_array(a.t, f"{what}: attribute {name!r}")
            _check_finite(arr, f"{what}: attribute {name!r}", check_finite)
            out[name] = Tensor._make(arr, False)
        else:
            raise GraphError(f"{what}: attribute {name!r} of type {A.AttributeType.Name(t)} is not supported "
                             "(subgraphs, sparse tensors and type protos are not run by numcnn)")
    return out


def _constant_value(attrs: dict, what: str) -> Tensor:
    """Constant's single attribute (value, value_float(s), value_int(s)) as a Tensor."""
    if len(attrs) != 1:
        raise GraphError(f"{what}: Constant needs exactly one value attribute, got {sorted(attrs)}")
    (key, v), = attrs.items()
    if key == "value":
        return v
    kinds = {"value_float": np.float32, "value_floats": np.float32, "value_int": np.int64, "value_ints": np.int64}
    if key not in kinds:
        raise GraphError(f"{what}: Constant attribute {key!r} is not supported")
    return Tensor._make(np.asarray(v, dtype=kinds[key]), False)


def _check_finite(arr: np.ndarray, what: str, check: bool) -> None:
    if check and arr.dtype.kind == "f" and not np.isfinite(arr).all():
        bad = int((~np.isfinite(arr)).sum())
        raise GraphError(f"{what}: {bad} of {arr.size} values are NaN or Inf (pass check_finite=False to load such "
                         "weights anyway)")


def _input_spec(vi, what: str):
    tt = vi.type.tensor_type if vi.type.HasField("tensor_type") else None
    if tt is None:
        raise GraphError(f"{what}: only tensor inputs are supported")
    if tt.elem_type not in _proto.NP_OF_ONNX:
        raise GraphError(f"{what}: input type {_proto.dtype_name(tt.elem_type)} is not supported (supported: "
                         f"{_proto.supported_dtypes()})")
    dims = None
    if tt.HasField("shape"):
        dims = tuple(int(d.dim_value) if d.HasField("dim_value") else (d.dim_param or None) for d in tt.shape.dim)
    return _s(vi.name), _proto.NP_OF_ONNX[tt.elem_type], dims


class OnnxModule(Module):
    """An ONNX graph run by numcnn. ``forward(*inputs)`` takes Tensors (or ndarrays) in the graph's input order and
    returns a Tensor, or a tuple for several outputs. Attributes: ``input_names``, ``output_names``, ``opset``,
    ``metadata`` (the file's metadata_props as a dict)."""

    def __init__(self, proto, check_finite: bool = True):
        super().__init__()
        graph = proto.graph
        versions = {o.domain: o.version for o in proto.opset_import}
        opset = versions.get("", versions.get("ai.onnx"))
        if opset is None or not MIN_OPSET <= opset <= MAX_OPSET:
            raise GraphError(f"ONNX opset {opset} of the default domain is not supported (numcnn runs opsets "
                             f"{MIN_OPSET} to {MAX_OPSET})")
        unsupported = sorted({_s(n.op_type) if n.domain in ("", "ai.onnx") else f"{_s(n.domain)}.{_s(n.op_type)}"
                              for n in graph.node if n.domain not in ("", "ai.onnx") or _s(n.op_type) not in OPS})
        if unsupported:
            raise UnsupportedOperatorError(unsupported)
        if not graph.output:
            raise GraphError("the ONNX graph has no outputs (is this an ONNX model file?)")
        self.opset = opset
        self.producer = f"{proto.producer_name} {proto.producer_version}".strip()
        self.metadata = {_s(p.key): _s(p.value) for p in proto.metadata_props}  # the file's metadata_props

        initializers: dict[str, np.ndarray] = {}
        for t in graph.initializer:
            name = _s(t.name)
            what = f"initializer {name!r}"
            if not name or name in initializers:
                raise GraphError(f"{what}: empty or duplicate initializer name")
            arr = _proto.to_array(t, what)
            _check_finite(arr, what, check_finite)
            initializers[name] = arr
        if graph.sparse_initializer:
            raise GraphError("sparse initializers are not supported")

        specs = [_input_spec(vi, f"graph input {_s(vi.name)!r}") for vi in graph.input
                 if _s(vi.name) not in initializers]
        self._input_specs = specs
        self.input_names = [s[0] for s in specs]
        self.output_names = [_s(o.name) for o in graph.output]

        self._constants: dict[str, Tensor] = {}
        self._nodes: list[Node] = []
        defined = set(self.input_names) | set(initializers)
        stats, variances = set(), set()  # BatchNormalization mean/var inputs: buffers, not parameters
        for i, n in enumerate(graph.node):
            node_name, op = _s(n.name) or f"#{i}", _s(n.op_type)
            what = f"node {node_name!r} ({op})"
            node = Node(node_name, op, [_s(v) for v in n.input], [_s(v) for v in n.output],
                        _attributes(n, what, check_finite))
            lo, hi = _ARITY[op]
            if not lo <= len(node.inputs) <= hi:
                raise GraphError(f"{what}: has {len(node.inputs)} inputs, {op} takes {lo} to {hi}")
            if not node.outputs or not node.outputs[0] or len(node.outputs) > _MAX_OUTPUTS.get(op, 1):
                raise GraphError(f"{what}: has outputs {node.outputs}; {op} has 1 to {_MAX_OUTPUTS.get(op, 1)}, "
                                 "the first one named")
            for name in node.inputs:
                if name and name not in defined:
                    raise GraphError(f"{what}: input {name!r} is not defined by the graph inputs, the initializers "
                                     "or an earlier node (nodes must be in topological order)")
            for name in node.outputs:
                if name in defined:
                    raise GraphError(f"{what}: output {name!r} is defined twice")
                if name:
                    defined.add(name)
            if op == "Constant":
                self._constants[node.outputs[0]] = _constant_value(node.attrs, what)
                continue
            if op == "BatchNormalization":
                stats.update(node.inputs[3:5])
                variances.update(node.inputs[4:5])
            self._nodes.append(node)
        for name in self.output_names:
            if name not in defined:
                raise GraphError(f"graph output {name!r} is not computed by any node")

        for name in variances & set(initializers):
            if check_finite and (initializers[name] < 0).any():
                raise GraphError(f"initializer {name!r}: a BatchNormalization variance with negative values (pass "
                                 "check_finite=False to load it anyway)")
        for name, arr in initializers.items():
            if arr.dtype.kind == "f" and name not in stats:
                self.register_parameter(name, Parameter(arr))
            elif arr.dtype.kind == "f":
                self.register_buffer(name, Tensor._make(arr, False))
            else:
                self._constants[name] = Tensor._make(arr, False)
        self._plan_release()

    def _plan_release(self) -> None:
        """Free each intermediate value after the last node that reads it (graph outputs are kept)."""
        last: dict[str, Node] = {}
        for node in self._nodes:
            for name in node.inputs:
                last[name] = node
        keep = set(self.output_names) | set(self._parameters) | set(self._buffers) | set(self._constants)
        for name, node in last.items():
            if name and name not in keep:
                node.release.append(name)

    def _check_inputs(self, inputs) -> list[Tensor]:
        if len(inputs) != len(self._input_specs):
            raise TypeError(f"ONNX model: expected {len(self._input_specs)} input(s) {self.input_names}, "
                            f"got {len(inputs)}")
        out = []
        for (name, dtype, dims), x in zip(self._input_specs, inputs):
            x = x if isinstance(x, Tensor) else Tensor._make(np.asarray(x), False)
            if x.dtype != dtype:
                raise TypeError(f"ONNX model input {name!r}: expected dtype {dtype}, got {x.array.dtype}")
            if dims is not None and (x.ndim != len(dims) or any(isinstance(d, int) and d != s
                                                                for d, s in zip(dims, x.shape))):
                want = ", ".join(str(d) if d is not None else "?" for d in dims)
                raise ValueError(f"ONNX model input {name!r}: expected shape ({want}), got {tuple(x.shape)}")
            out.append(x)
        return out

    def forward(self, *inputs):
        env: dict[str, Tensor] = {**self._constants, **self._parameters, **self._buffers}
        env.update(zip(self.input_names, self._check_inputs(inputs)))
        for node in self._nodes:
            args = [env[name] if name else None for name in node.inputs]
            try:
                result = node.fn(node, *args)
            except (ValueError, TypeError, IndexError) as e:
                raise GraphError(f"ONNX node {node.name!r} ({node.op_type}): {e}") from None
            results = result if isinstance(result, tuple) else (result,)
            for name, value in zip(node.outputs, results):
                if name:
                    env[name] = value
            for name in node.release:
                env.pop(name, None)
        outs = tuple(env[name] for name in self.output_names)
        return outs[0] if len(outs) == 1 else outs

    def extra_repr(self) -> str:
        return (f"{len(self._nodes)} nodes, opset {self.opset}, inputs={self.input_names}, "
                f"outputs={self.output_names}" + (f", producer={self.producer!r}" if self.producer else ""))


def load(f: str | os.PathLike | bytes, *, check_finite: bool = True) -> OnnxModule:
    """Read an ONNX model (a path, or the file's bytes) into an :class:`OnnxModule`.

    Raises :class:`UnsupportedOperatorError` naming every operator numcnn does not run (with the supported list),
    :class:`GraphError` (a ValueError) for a file that is not valid ONNX, is truncated, declares sizes its data does
    not have, uses external data or, with ``check_finite`` (default), holds NaN/Inf weights."""
    try:
        from google.protobuf.message import DecodeError

        import onnx
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("numcnn.onnx needs the onnx package: pip install 'numcnn[onnx]'") from e
    if isinstance(f, (bytes, bytearray, memoryview)):
        data, where = bytes(f), "<bytes>"
    else:
        where = os.fspath(f)
        size = os.path.getsize(where)
        if size > MAX_FILE_BYTES:
            raise GraphError(f"{where}: {size} bytes, larger than an ONNX protobuf can be ({MAX_FILE_BYTES})")
        with open(where, "rb") as fh:
            data = fh.read()
    proto = onnx.ModelProto()
    try:
        proto.ParseFromString(data)
    except (DecodeError, RuntimeError, ValueError) as e:
        raise GraphError(f"{where}: not a valid ONNX file ({type(e).__name__}: {e})") from None
    try:
        return OnnxModule(proto, check_finite)
    except UnsupportedOperatorError:
        raise
    except GraphError as e:
        raise GraphError(f"{where}: {e}") from None
