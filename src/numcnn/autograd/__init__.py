"""Autograd: the Tensor, Functions with explicit contexts, the backward engine, grad mode, anomaly detection."""

from .anomaly import AnomalyError, detect_anomaly, is_anomaly_enabled
from .function import Context, Function
from .grad_mode import enable_grad, is_grad_enabled, no_grad
from .tensor import Tensor, cat, stack, tensor, where

__all__ = [
    "AnomalyError", "Context", "Function", "Tensor", "cat", "detect_anomaly", "enable_grad", "is_anomaly_enabled",
    "is_grad_enabled", "no_grad", "stack", "tensor", "where",
]
