"""Stochastic gradient descent, with optional (Nesterov) momentum, as ``torch.optim.SGD``."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..kernels import jit
from . import updates_compiled
from .optimizer import Optimizer, ParamsT

__all__ = ["SGD", "sgd_update"]


def sgd_update(
    param: np.ndarray,
    grad: np.ndarray,
    momentum_buffer: np.ndarray | None,
    *,
    lr: float,
    momentum: float,
    dampening: float,
    weight_decay: float,
    nesterov: bool,
    maximize: bool,
) -> np.ndarray | None:
    """One SGD step on one parameter, in place (torch's ``_single_tensor_sgd``).

    Args:
        param: parameter array, any shape, float32 or float64; updated in place.
        grad: its gradient, same shape and dtype; not modified.
        momentum_buffer: the buffer from the previous step, or None on the first step.
        lr, momentum, dampening, weight_decay: Python floats.
        nesterov, maximize: flags.

    Returns:
        The momentum buffer to keep for the next step (updated in place when one was given),
        or None when ``momentum`` is 0.
    """
    if updates_compiled.supported(param, grad, momentum_buffer if momentum != 0 else None) and jit.use_compiled():
        return updates_compiled.sgd_update_f32(param, grad, momentum_buffer, lr, momentum, dampening, weight_decay,
                                               nesterov, maximize)  # one pass, the same bits
    if maximize:
        grad = -grad
    if weight_decay != 0:
        grad = grad + weight_decay * param
    buf = None
    if momentum != 0:
        buf = momentum_buffer
        if buf is None:
            buf = np.array(grad, copy=True)
        else:
            buf *= momentum
            buf += (1 - dampening) * grad
        grad = grad + momentum * buf if nesterov else buf
    param -= lr * grad
    return buf


class SGD(Optimizer):
    """Stochastic gradient descent (optionally with momentum), with PyTorch's update rule.

    ``b <- momentum * b + (1 - dampening) * g`` (``b <- g`` on the first step), then
    ``p <- p - lr * (g + momentum * b if nesterov else b)``, where ``g`` already includes
    ``weight_decay * p``. State per parameter: ``momentum_buffer`` (only when momentum != 0).
    """

    def __init__(
        self,
        params: ParamsT,
        lr: float = 1e-3,
        momentum: float = 0,
        dampening: float = 0,
        weight_decay: float = 0,
        nesterov: bool = False,
        *,
        maximize: bool = False,
    ) -> None:
        if lr < 0.0:
            raise ValueError(f"Invalid learning rate: {lr}")
        if momentum < 0.0:
            raise ValueError(f"Invalid momentum value: {momentum}")
        if weight_decay < 0.0:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")
        defaults = {
            "lr": lr,
            "momentum": momentum,
            "dampening": dampening,
            "weight_decay": weight_decay,
            "nesterov": nesterov,
            "maximize": maximize,
        }
        super().__init__(params, defaults)

    def _update(self, p: Any, grad: np.ndarray, group: dict[str, Any]) -> None:
        momentum = float(group["momentum"])
        state = self.state[p] if momentum != 0 else None
        buf = sgd_update(
            p.array,
            grad,
            state.get("momentum_buffer") if state is not None else None,
            lr=float(group["lr"]),
            momentum=momentum,
            dampening=float(group["dampening"]),
            weight_decay=float(group["weight_decay"]),
            nesterov=bool(group["nesterov"]),
            maximize=bool(group["maximize"]),
        )
        if state is not None:
            state["momentum_buffer"] = buf
