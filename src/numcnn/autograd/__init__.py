"""Autograd: the Tensor, Functions with explicit contexts, the backward engine and grad mode."""

from .anomaly import AnomalyError, detect_anomaly, is_anomaly_enabled
from .function import Context, Function
from .grad_mode import enable_grad, is_grad_enabled, no_grad
from .tensor import Tensor, cat, stack, tensor, where

__all__ = ["AnomalyError", "Context", "detect_anomaly", "is_anomaly_enabled", "Function", "Tensor", "cat", "enable_grad", "is_grad_enabled", "no_grad", "stack",
           "tensor", "where"]
