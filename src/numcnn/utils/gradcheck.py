"""Central finite-difference gradient checks in float64."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from ..autograd.grad_mode import no_grad
from ..autograd.tensor import Tensor


class GradcheckError(AssertionError):
    pass


def gradcheck(fn: Callable[..., Tensor], inputs: Sequence[Tensor] | Tensor, eps: float = 1e-6,
              atol: float = 1e-5, rtol: float = 1e-3, seed: int = 0, raise_exception: bool = True) -> bool:
    """Check the gradients autograd gives for ``fn(*inputs)`` against central differences.

    Every input that requires grad must be float64. The output is projected on a fixed random vector v,
    L = sum(fn(*inputs) * v), so the check covers the vector-Jacobian product backward computes; each
    element of each input is perturbed by +-eps. Raises :class:`GradcheckError` naming the input and the
    worst element (or returns False with ``raise_exception=False``).
    """
    if isinstance(inputs, Tensor):
        inputs = (inputs,)
    inputs = tuple(inputs)
    diff = [t for t in inputs if isinstance(t, Tensor) and t.requires_grad]
    if not diff:
        raise ValueError("gradcheck: no input requires grad")
    for i, t in enumerate(inputs):
        if isinstance(t, Tensor) and t.requires_grad and t.dtype != np.float64:
            raise TypeError(f"gradcheck: input {i} is {t.dtype}; finite differences need float64 (use .double())")
    out = fn(*inputs)
    v = np.random.default_rng(seed).standard_normal(out.shape)
    for t in diff:
        t.grad = None
    (out * Tensor(v)).sum().backward()
    analytic = [np.zeros(t.shape) if t.grad is None else t.grad.array.copy() for t in diff]

    def objective() -> float:
        with no_grad():
            return float((fn(*inputs).array * v).sum())

    for k, t in enumerate(diff):
        flat = t.array.reshape(-1)  # a view: perturbing it perturbs the input
        numeric = np.empty(flat.size)
        for j in range(flat.size):
            old = flat[j]
            flat[j] = old + eps
            plus = objective()
            flat[j] = old - eps
            minus = objective()
            flat[j] = old
            numeric[j] = (plus - minus) / (2 * eps)
        a = analytic[k].reshape(-1)
        bad = np.abs(a - numeric) > atol + rtol * np.abs(numeric)
        if bad.any():
            j = int(np.argmax(np.abs(a - numeric)))
            msg = (f"gradcheck: gradient of input {inputs.index(t)} (shape {t.shape}) differs at flat index {j}: "
                   f"autograd {a[j]:.8g}, finite differences {numeric[j]:.8g} ({int(bad.sum())} of {a.size} "
                   "elements out of tolerance)")
            if raise_exception:
                raise GradcheckError(msg)
            return False
    return True
