"""RMSprop, as ``torch.optim.RMSprop`` (single-tensor path)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..kernels import jit
from . import updates_compiled
from .optimizer import Optimizer, ParamsT, _lerp_

__all__ = ["RMSprop", "rmsprop_update"]


def rmsprop_update(
    param: np.ndarray,
    grad: np.ndarray,
    square_avg: np.ndarray,
    grad_avg: np.ndarray | None,
    momentum_buffer: np.ndarray | None,
    *,
    lr: float,
    alpha: float,
    eps: float,
    weight_decay: float,
    momentum: float,
    centered: bool,
    maximize: bool,
) -> None:
    """One RMSprop step on one parameter, in place (torch's ``_single_tensor_rmsprop``).

    Args:
        param: parameter array, any shape, float32 or float64; updated in place.
        grad: its gradient, same shape and dtype; not modified.
        square_avg: running average of the squared gradient; updated.
        grad_avg: running average of the gradient when ``centered``, else None; updated.
        momentum_buffer: the momentum buffer when ``momentum > 0``, else None; updated.
        lr, alpha, eps, weight_decay, momentum: Python floats.
        centered, maximize: flags.
    """
    if updates_compiled.supported(param, grad, square_avg, grad_avg if centered else None,
                                  momentum_buffer if momentum > 0 else None) and jit.use_compiled():
        updates_compiled.rmsprop_update_f32(param, grad, square_avg, grad_avg, momentum_buffer, lr, alpha, eps,
                                            weight_decay, momentum, centered, maximize)  # one pass, the same bits
        return
    if maximize:
        grad = -grad
    if weight_decay != 0:
        grad = grad + weight_decay * param

    square_avg *= alpha
    sq = grad * (1 - alpha)
    sq *= grad
    square_avg += sq

    if centered:
        _lerp_(grad_avg, grad, 1 - alpha)
        # with out=: a 0-d parameter's ufunc results would be NumPy scalars, which sqrt(out=) refuses
        avg = np.multiply(grad_avg, grad_avg, out=np.empty_like(square_avg))
        np.subtract(square_avg, avg, out=avg)
        np.sqrt(avg, out=avg)
    else:
        avg = np.sqrt(square_avg)
    avg += eps

    if momentum > 0:
        momentum_buffer *= momentum
        momentum_buffer += grad / avg
        param -= lr * momentum_buffer
    else:
        # addcdiv_(grad, avg, value=-lr) evaluates (-lr * grad) / avg
        update = grad * -lr
        update /= avg
        param += update


class RMSprop(Optimizer):
    """RMSprop with PyTorch's update rule and defaults.

    State per parameter: ``step`` (Python float), ``square_avg``, plus ``momentum_buffer`` when
    ``momentum > 0`` and ``grad_avg`` when ``centered`` (arrays like the parameter).
    """

    def __init__(
        self,
        params: ParamsT,
        lr: float = 1e-2,
        alpha: float = 0.99,
        eps: float = 1e-8,
        weight_decay: float = 0,
        momentum: float = 0,
        centered: bool = False,
        *,
        maximize: bool = False,
    ) -> None:
        if not 0.0 <= lr:
            raise ValueError(f"Invalid learning rate: {lr}")
        if not 0.0 <= eps:
            raise ValueError(f"Invalid epsilon value: {eps}")
        if not 0.0 <= momentum:
            raise ValueError(f"Invalid momentum value: {momentum}")
        if not 0.0 <= weight_decay:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        if not 0.0 <= alpha:
            raise ValueError(f"Invalid alpha value: {alpha}")
        defaults = {
            "lr": lr,
            "momentum": momentum,
            "alpha": alpha,
            "eps": eps,
            "centered": centered,
            "weight_decay": weight_decay,
            "maximize": maximize,
        }
        super().__init__(params, defaults)

    def _update(self, p: Any, grad: np.ndarray, group: dict[str, Any]) -> None:
        state = self.state[p]
        momentum = float(group["momentum"])
        centered = bool(group["centered"])
        if len(state) == 0:
            state["step"] = 0.0
            state["square_avg"] = np.zeros_like(p.array)
        # Created on first need, so that a scheduler (OneCycleLR) may turn momentum on later.
        if momentum > 0 and "momentum_buffer" not in state:
            state["momentum_buffer"] = np.zeros_like(p.array)
        if centered and "grad_avg" not in state:
            state["grad_avg"] = np.zeros_like(p.array)
        state["step"] += 1
        rmsprop_update(
            p.array,
            grad,
            state["square_avg"],
            state["grad_avg"] if centered else None,
            state["momentum_buffer"] if momentum > 0 else None,
            lr=float(group["lr"]),
            alpha=float(group["alpha"]),
            eps=float(group["eps"]),
            weight_decay=float(group["weight_decay"]),
            momentum=momentum,
            centered=centered,
            maximize=bool(group["maximize"]),
        )
