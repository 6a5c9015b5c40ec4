"""ONNX in and out (the optional extra ``numcnn[onnx]``, which installs the ``onnx`` package).

    >>> import numcnn.onnx
    >>> numcnn.onnx.export(model, example_input, "model.onnx", opset=17)   # dynamic batch, eval mode
    >>> numcnn.onnx.export(model, pixels, "model.onnx", normalize=(mean, std))  # the file takes [0, 1] pixels
    >>> net = numcnn.onnx.load("model.onnx")                               # an nn.Module, run in NumPy
    >>> logits = net(images)

``export`` writes every zoo model and every layer that has an ONNX form at opset 17 to 21; ``load`` runs the
operators a CNN uses (:data:`SUPPORTED_OPS`) and refuses any other by name.
"""

from ._proto import MAX_ELEMENTS
from .export import (
    INPUT_KEY,
    INPUT_NORMALIZED,
    INPUT_PIXELS,
    NORMALIZATION_KEY,
    ExportError,
    export,
    supported_operations,
    to_onnx,
)
from .export import MAX_OPSET as MAX_EXPORT_OPSET
from .export import MIN_OPSET as MIN_EXPORT_OPSET
from .load import SUPPORTED_OPS, OnnxModule, UnsupportedOperatorError, load
from .ops import GraphError

__all__ = [
    "INPUT_KEY", "INPUT_NORMALIZED", "INPUT_PIXELS", "MAX_ELEMENTS", "MAX_EXPORT_OPSET", "MIN_EXPORT_OPSET",
    "NORMALIZATION_KEY", "SUPPORTED_OPS", "ExportError", "GraphError",
    "OnnxModule", "UnsupportedOperatorError", "export", "load", "supported_operations", "to_onnx",
]
