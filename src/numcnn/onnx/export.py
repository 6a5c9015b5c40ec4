"""numcnn model -> ONNX: trace one eval-mode forward pass and write one ONNX node (or a few) per numcnn operation.

Every numcnn operation is an autograd Function, so tracing needs no model-specific code: while the example input
goes through ``model``, the Function hook (``numcnn.autograd.function._forward_hook``, set to the ``_Tracer`` of
``numcnn.onnx.tracer``) hands each call to the emitter of its Function class (``numcnn.onnx.emitters``), which
writes the ONNX equivalent. Parameters and buffers become initializers named by their state_dict keys
(``layer1.0.weight``); nodes are named by the module path they ran in (``layer1.0.conv1/Conv_3``). Residual
``+``, ``numcnn.cat``, ``flatten`` and the like are Functions too, so they come out as Add, Concat and Reshape with
no special case.

The batch dimension stays symbolic ("batch"): the tracer follows which axis of every value is the batch axis and
writes reshapes with ``-1`` there; a model that mixes the batch axis with others is refused unless
``dynamic_batch=False``.
"""

from __future__ import annotations

import json
import os

import numpy as np

from .._version import __version__
from ..autograd import function as _function
from ..autograd.grad_mode import enable_grad
from ..autograd.tensor import Tensor
from ..serialization import atomic_write
from . import _proto
from .emitters import EMITTERS
from .tracer import ExportError, _Tracer, operation_names

MIN_OPSET, MAX_OPSET = 17, 21
#: Metadata key saying what the file's input is: :data:`INPUT_PIXELS` (the graph starts with ``(x - mean) / std``,
#: written by ``normalize=``) or :data:`INPUT_NORMALIZED` (the bare network: feed it ``(pixels - mean) / std``).
INPUT_KEY = "numcnn.input"
INPUT_PIXELS, INPUT_NORMALIZED = "pixels", "normalized"
#: Metadata key holding the normalization ``{"mean": [...], "std": [...]}`` (JSON) when the export knows it.
NORMALIZATION_KEY = "numcnn.normalization"


def supported_operations() -> list[str]:
    """The numcnn operations (autograd Function names) that have an ONNX form."""
    return operation_names(EMITTERS)


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
    tracer = _Tracer(model, opset, EMITTERS)
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
