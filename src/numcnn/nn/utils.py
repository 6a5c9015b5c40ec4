"""nn.utils: gradient clipping, the textbook L1/L2 penalties, and BatchNorm folding for inference (``fuse``)."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from ..autograd.tensor import Tensor
from .fusion import fuse, fuse_conv_bn_eval, fuse_linear_bn_eval  # noqa: F401 - re-exported


def _params(parameters) -> list[Tensor]:
    if isinstance(parameters, Tensor):
        return [parameters]
    if hasattr(parameters, "parameters") and callable(parameters.parameters):
        return list(parameters.parameters())
    return list(parameters)


def clip_grad_norm_(parameters: Iterable[Tensor] | Tensor, max_norm: float, norm_type: float = 2.0,
                    error_if_nonfinite: bool = False) -> Tensor:
    """Scale all gradients in place so that their joint norm is at most ``max_norm`` (PyTorch's formula:
    coef = min(1, max_norm / (total_norm + 1e-6))). Returns the total norm before clipping."""
    grads = [p.grad.array for p in _params(parameters) if p.grad is not None]
    if not grads:
        return Tensor(np.zeros((), dtype=np.float32))
    dt = grads[0].dtype
    norm_type = float(norm_type)
    if norm_type == float("inf"):
        total = max(float(np.abs(g).max()) for g in grads)
    else:
        per = [np.linalg.norm(g.ravel(), ord=norm_type) for g in grads]
        total = float(np.linalg.norm(np.asarray(per, dtype=dt), ord=norm_type))
    if error_if_nonfinite and not np.isfinite(total):
        raise RuntimeError(f"clip_grad_norm_: the total norm of order {norm_type} of the gradients is {total}")
    coef = min(1.0, float(max_norm) / (total + 1e-6))
    for g in grads:
        g *= dt.type(coef)
    return Tensor(np.asarray(total, dtype=dt))


def l2_penalty(parameters, weight_decay: float, biases: bool = True) -> Tensor:
    """The textbook L2 term 0.5 * lambda * sum ||W||^2 over ``parameters`` (a Module or an iterable). Add it
    to the loss; ``biases=False`` skips 1-D parameters (biases, norm scales)."""
    ps = [p for p in _params(parameters) if biases or p.ndim > 1]
    if not ps:
        return Tensor(np.zeros((), dtype=np.float32))
    total = sum((p * p).sum() for p in ps)
    return total * (0.5 * weight_decay)


def l1_penalty(parameters, weight_decay: float, biases: bool = True) -> Tensor:
    """The L1 term lambda * sum |W| over ``parameters``; its gradient is lambda * sign(W)."""
    ps = [p for p in _params(parameters) if biases or p.ndim > 1]
    if not ps:
        return Tensor(np.zeros((), dtype=np.float32))
    total = sum(p.abs().sum() for p in ps)
    return total * weight_decay


def parameters_to_vector(parameters) -> Tensor:
    return Tensor(np.concatenate([p.array.ravel() for p in _params(parameters)]))
