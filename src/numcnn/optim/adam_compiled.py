"""Adam(W) on one float32 parameter compiled (backend "numba"): one pass instead of about a dozen NumPy calls.

A small network's parameters are small (LeNet-5: ten arrays, 62k values), so the NumPy update costs its calls, not
its arithmetic: 0.3 ms per step for LeNet-5's ten parameters. The kernel does ``adam_update``'s float32 operations in
the same order with the same float32 constants (torch's lerp with its switch at weight 0.5, ``(c * g) * g``,
``sqrt(v) / bc2_sqrt + eps``, ``(-step_size * m) / denom``; no FMA contraction), so the bits equal the NumPy path's.
amsgrad and other dtypes or layouts run the NumPy update.
"""

from __future__ import annotations

import numpy as np

from ..kernels.jit import kernel
from .updates_compiled import gradient, lerp

__all__ = ["adam_update_f32", "supported"]


@kernel
def _adam_f32(param, grad, exp_avg, exp_avg_sq, w1, small_w1, beta2, c2, bc2_sqrt, eps, neg_step, wd, decay,
              maximize, coupled, decoupled):
    for i in range(param.shape[0]):
        g, p = gradient(grad, param, i, maximize, coupled, wd), param[i]
        if decoupled:
            p = p * decay
        m = lerp(exp_avg[i], g, w1, small_w1)
        v = exp_avg_sq[i] * beta2 + (g * c2) * g
        exp_avg[i] = m
        exp_avg_sq[i] = v
        denom = np.sqrt(v) / bc2_sqrt + eps
        param[i] = p + (m * neg_step) / denom


def supported(param: np.ndarray, grad: np.ndarray, exp_avg: np.ndarray, exp_avg_sq: np.ndarray,
              amsgrad: bool) -> bool:
    """float32, one shape, all C-contiguous, no amsgrad."""
    arrays = (param, grad, exp_avg, exp_avg_sq)
    return not amsgrad and all(a.dtype == np.float32 and a.flags.c_contiguous and a.shape == param.shape
                               for a in arrays)


def adam_update_f32(param, grad, exp_avg, exp_avg_sq, step, lr, beta1, beta2, eps, weight_decay, maximize,
                    decoupled_weight_decay) -> None:
    """``adam.adam_update`` for what :func:`supported` accepts, in place."""
    f = np.float32
    step_size = lr / (1 - beta1**step)
    bc2_sqrt = (1 - beta2**step) ** 0.5
    w1 = f(1 - beta1)
    _adam_f32(param.reshape(-1), grad.reshape(-1), exp_avg.reshape(-1), exp_avg_sq.reshape(-1), w1,
              bool(abs(w1) < 0.5), f(beta2), f(1 - beta2), f(bc2_sqrt), f(eps), f(-step_size), f(weight_decay),
              f(1 - lr * weight_decay), bool(maximize), weight_decay != 0 and not decoupled_weight_decay,
              weight_decay != 0 and bool(decoupled_weight_decay))
