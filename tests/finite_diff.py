"""Central finite differences for the tests (importable from any test folder: pytest's pythonpath has tests/)."""

import numpy as np


def numgrad(f, x: np.ndarray, h: float = 1e-6) -> np.ndarray:
    """Central differences of the scalar ``f()`` with respect to the array ``x`` (perturbed in place, restored)."""
    g = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        old = x[i]
        x[i] = old + h
        up = f()
        x[i] = old - h
        down = f()
        x[i] = old
        g[i] = (up - down) / (2 * h)
    return g


def vjp_numgrad(f, x: np.ndarray, dy: np.ndarray, h: float = 1e-6) -> np.ndarray:
    """Central differences of sum(f(x) * dy) with respect to ``x``: what a backward kernel given dy returns."""
    return numgrad(lambda: np.sum(f(x) * dy), x, h)
