"""Stand-ins for a parameter and its gradient, for the optimizer tests: numcnn's optimizers import nothing else
from numcnn and work on any object with ``.array`` (an ndarray updated in place) and ``.grad`` (pytest puts tests/
on the path, see pyproject.toml)."""

from __future__ import annotations

import numpy as np


class Grad:
    """Stand-in for a gradient Tensor: ``.data`` (an ndarray), also under ``.array`` as numcnn's Tensor has it."""

    array = property(lambda self: self.data, lambda self, value: setattr(self, "data", value))

    def __init__(self, data: np.ndarray) -> None:
        self.data = data


class Param:
    """Stand-in for a parameter Tensor: ``.data`` (a copy of ``data``; two float32 zeros by default), ``.array``,
    ``.grad``, ``.requires_grad``, hashed by identity."""

    array = property(lambda self: self.data, lambda self, value: setattr(self, "data", value))

    def __init__(self, data: np.ndarray | None = None) -> None:
        self.data = np.zeros(2, np.float32) if data is None else np.array(data, copy=True)
        self.grad: Grad | None = None
        self.requires_grad = True
