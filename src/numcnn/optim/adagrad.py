"""Adagrad, as ``torch.optim.Adagrad`` (single-tensor path, dense gradients)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..kernels import jit
from . import updates_compiled
from .optimizer import Optimizer, ParamsT

__all__ = ["Adagrad", "adagrad_update"]


def adagrad_update(
    param: np.ndarray,
    grad: np.ndarray,
    state_sum: np.ndarray,
    step: float,
    *,
    lr: float,
    lr_decay: float,
    weight_decay: float,
    eps: float,
    maximize: bool,
) -> None:
    """One Adagrad step on one parameter, in place (torch's ``_single_tensor_adagrad``).

    Args:
        param: parameter array, any shape, float32 or float64; updated in place.
        grad: its gradient, same shape and dtype; not modified.
        state_sum: running sum of squared gradients, same shape and dtype; updated.
        step: the step number of this update, counting from 1.
        lr, lr_decay, weight_decay, eps: Python floats.
        maximize: flag.
    """
    if updates_compiled.supported(param, grad, state_sum) and jit.use_compiled():
        updates_compiled.adagrad_update_f32(param, grad, state_sum, step, lr, lr_decay, weight_decay, eps,
                                            maximize)  # one pass, the same bits
        return
    if maximize:
        grad = -grad
    if weight_decay != 0:
        grad = grad + weight_decay * param
    clr = lr / (1 + (step - 1) * lr_decay)
    state_sum += grad * grad
    std = np.sqrt(state_sum)
    std += eps
    # addcdiv_(grad, std, value=-clr) evaluates (-clr * grad) / std
    update = grad * -clr
    update /= std
    param += update


class Adagrad(Optimizer):
    """Adagrad with PyTorch's update rule and defaults.

    State per parameter: ``step`` (Python float) and ``sum`` (array like the parameter, filled
    with ``initial_accumulator_value``). Like torch, the state of the parameters given to the
    constructor is created right away, so it is in :meth:`state_dict` before the first step.
    """

    def __init__(
        self,
        params: ParamsT,
        lr: float = 1e-2,
        lr_decay: float = 0,
        weight_decay: float = 0,
        initial_accumulator_value: float = 0,
        eps: float = 1e-10,
        *,
        maximize: bool = False,
    ) -> None:
        if not 0.0 <= lr:
            raise ValueError(f"Invalid learning rate: {lr}")
        if not 0.0 <= lr_decay:
            raise ValueError(f"Invalid lr_decay value: {lr_decay}")
        if not 0.0 <= weight_decay:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        if not 0.0 <= initial_accumulator_value:
            raise ValueError(f"Invalid initial_accumulator_value value: {initial_accumulator_value}")
        if not 0.0 <= eps:
            raise ValueError(f"Invalid epsilon value: {eps}")
        defaults = {
            "lr": lr,
            "lr_decay": lr_decay,
            "eps": eps,
            "weight_decay": weight_decay,
            "initial_accumulator_value": initial_accumulator_value,
            "maximize": maximize,
        }
        super().__init__(params, defaults)
        for group in self.param_groups:
            for p in group["params"]:
                self._init_state(p)

    def _init_state(self, p: Any) -> None:
        # torch fills the accumulator from the optimizer's default, not the group's option.
        state = self.state[p]
        state["step"] = 0.0
        state["sum"] = np.full_like(p.array, self.defaults["initial_accumulator_value"])

    def _update(self, p: Any, grad: np.ndarray, group: dict[str, Any]) -> None:
        if len(self.state[p]) == 0:
            self._init_state(p)
        state = self.state[p]
        state["step"] += 1
        adagrad_update(
            p.array,
            grad,
            state["sum"],
            state["step"],
            lr=float(group["lr"]),
            lr_decay=float(group["lr_decay"]),
            weight_decay=float(group["weight_decay"]),
            eps=float(group["eps"]),
            maximize=bool(group["maximize"]),
        )
