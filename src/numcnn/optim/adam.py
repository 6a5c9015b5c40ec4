"""Adam and AdamW, as ``torch.optim.Adam`` / ``torch.optim.AdamW`` (single-tensor path)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..kernels import jit
from . import adam_compiled
from .optimizer import Optimizer, ParamsT, _lerp_, check_hyperparameters

__all__ = ["Adam", "AdamW", "adam_update"]


def adam_update(
    param: np.ndarray,
    grad: np.ndarray,
    exp_avg: np.ndarray,
    exp_avg_sq: np.ndarray,
    max_exp_avg_sq: np.ndarray | None,
    step: float,
    *,
    lr: float,
    beta1: float,
    beta2: float,
    eps: float,
    weight_decay: float,
    amsgrad: bool,
    maximize: bool,
    decoupled_weight_decay: bool,
) -> None:
    """One Adam(W) step on one parameter, in place (torch's ``_single_tensor_adam``).

    Args:
        param: parameter array, any shape, float32 or float64; updated in place.
        grad: its gradient, same shape and dtype; not modified.
        exp_avg, exp_avg_sq: first and second moment estimates, same shape and dtype; updated.
        max_exp_avg_sq: running maximum of ``exp_avg_sq`` when ``amsgrad``, else None; updated.
        step: the step number of this update, counting from 1.
        lr, beta1, beta2, eps, weight_decay: Python floats.
        amsgrad, maximize, decoupled_weight_decay: flags (decoupled = AdamW).
    """
    if adam_compiled.supported(param, grad, exp_avg, exp_avg_sq, amsgrad) and jit.use_compiled():
        adam_compiled.adam_update_f32(param, grad, exp_avg, exp_avg_sq, step, lr, beta1, beta2, eps, weight_decay,
                                      maximize, decoupled_weight_decay)  # one pass, the same bits
        return
    if maximize:
        grad = -grad
    if weight_decay != 0:
        if decoupled_weight_decay:
            param *= 1 - lr * weight_decay
        else:
            grad = grad + weight_decay * param

    # Two scratch arrays for the whole update (no other temporaries): ``tmp`` serves the lerp, then the
    # update; ``sq`` the squared gradient, then the denominator.
    tmp = _lerp_(exp_avg, grad, 1 - beta1)
    exp_avg_sq *= beta2
    # addcmul_(grad, grad, value=c) evaluates (c * grad) * grad
    sq = grad * (1 - beta2)
    sq *= grad
    exp_avg_sq += sq

    # Scalars in double precision, as torch computes them from a Python step count.
    bias_correction1 = 1 - beta1**step
    bias_correction2 = 1 - beta2**step
    step_size = lr / bias_correction1
    bias_correction2_sqrt = bias_correction2**0.5

    if amsgrad:
        np.maximum(max_exp_avg_sq, exp_avg_sq, out=max_exp_avg_sq)
    denom = np.sqrt(max_exp_avg_sq if amsgrad else exp_avg_sq, out=sq)
    denom /= bias_correction2_sqrt
    denom += eps
    # addcdiv_(exp_avg, denom, value=-step_size) evaluates (value * exp_avg) / denom
    update = np.multiply(exp_avg, -step_size, out=tmp)
    update /= denom
    param += update


class Adam(Optimizer):
    """Adam with PyTorch's update rule and defaults.

    State per parameter: ``step`` (Python float), ``exp_avg``, ``exp_avg_sq`` and, with
    ``amsgrad``, ``max_exp_avg_sq`` (arrays with the parameter's shape and dtype).
    ``decoupled_weight_decay=True`` gives AdamW.
    """

    def __init__(
        self,
        params: ParamsT,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0,
        amsgrad: bool = False,
        *,
        maximize: bool = False,
        decoupled_weight_decay: bool = False,
    ) -> None:
        check_hyperparameters(lr=lr, epsilon=eps, betas=betas, weight_decay=weight_decay)
        defaults = {
            "lr": lr,
            "betas": (float(betas[0]), float(betas[1])),
            "eps": eps,
            "weight_decay": weight_decay,
            "amsgrad": amsgrad,
            "maximize": maximize,
            "decoupled_weight_decay": decoupled_weight_decay,
        }
        super().__init__(params, defaults)

    def _update(self, p: Any, grad: np.ndarray, group: dict[str, Any]) -> None:
        state = self.state[p]
        amsgrad = bool(group["amsgrad"])
        if len(state) == 0:
            state["step"] = 0.0
            state["exp_avg"] = np.zeros_like(p.array)
            state["exp_avg_sq"] = np.zeros_like(p.array)
            if amsgrad:
                state["max_exp_avg_sq"] = np.zeros_like(p.array)
        state["step"] += 1
        beta1, beta2 = group["betas"]
        adam_update(
            p.array,
            grad,
            state["exp_avg"],
            state["exp_avg_sq"],
            state.get("max_exp_avg_sq") if amsgrad else None,
            state["step"],
            lr=float(group["lr"]),
            beta1=float(beta1),
            beta2=float(beta2),
            eps=float(group["eps"]),
            weight_decay=float(group["weight_decay"]),
            amsgrad=amsgrad,
            maximize=bool(group["maximize"]),
            decoupled_weight_decay=bool(group["decoupled_weight_decay"]),
        )


class AdamW(Adam):
    """Adam with decoupled weight decay (``p <- p * (1 - lr * weight_decay)`` before the step)."""

    def __init__(
        self,
        params: ParamsT,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        amsgrad: bool = False,
        *,
        maximize: bool = False,
    ) -> None:
        super().__init__(
            params,
            lr,
            betas,
            eps,
            weight_decay,
            amsgrad,
            maximize=maximize,
            decoupled_weight_decay=True,
        )

    def _after_load(self) -> None:
        # An AdamW stays decoupled even when it loads a state dict saved by Adam.
        for group in self.param_groups:
            group["decoupled_weight_decay"] = True
