"""Autograd: the Tensor, Functions with explicit contexts, the backward engine and grad mode."""

from .function import Context, Function
from .grad_mode import enable_grad, is_grad_enabled, no_grad
from .tensor import Tensor, cat, stack, tensor, where

__all__ = ["Context", "Function", "Tensor", "cat", "enable_grad", "is_grad_enabled", "no_grad", "stack",
           "tensor", "where"]
