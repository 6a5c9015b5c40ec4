"""ONNX in and out (the optional extra ``numcnn[onnx]``, which installs the ``onnx`` package).

    >>> import numcnn.onnx
    >>> numcnn.onnx.export(model, example_input, "model.onnx", opset=17)   # dynamic batch, eval mode
    >>> net = numcnn.onnx.load("model.onnx")                               # an nn.Module, run in NumPy
    >>> logits = net(images)

``export`` writes every zoo model and every layer that has an ONNX form at opset 17 to 21; ``load`` runs the
operators a CNN uses (:data:`SUPPORTED_OPS`) and refuses any other by name.
"""

from ._proto import MAX_ELEMENTS
from .export import MAX_OPSET as MAX_EXPORT_OPSET
from .export import MIN_OPSET as MIN_EXPORT_OPSET
from .export import ExportError, export, supported_operations, to_onnx
from .load import SUPPORTED_OPS, OnnxModule, UnsupportedOperatorError, load
from .ops import GraphError

__all__ = [
    "MAX_ELEMENTS", "MAX_EXPORT_OPSET", "MIN_EXPORT_OPSET", "SUPPORTED_OPS", "ExportError", "GraphError",
    "OnnxModule", "UnsupportedOperatorError", "export", "load", "supported_operations", "to_onnx",
]
