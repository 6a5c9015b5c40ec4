"""``nn.Parameter``: a Tensor that a Module registers as one of its parameters."""

from __future__ import annotations

import numpy as np

from ..autograd.tensor import Tensor, to_array


class Parameter(Tensor):
    """A leaf Tensor that requires grad by default and that ``Module`` collects in ``parameters()``."""

    __slots__ = ()

    def __init__(self, data=None, requires_grad: bool = True):
        if data is None:
            data = np.empty(0, dtype=np.float32)
        super().__init__(to_array(data), requires_grad=requires_grad)

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()

    def __reduce_ex__(self, protocol):  # pragma: no cover - numcnn never pickles, but copy.deepcopy uses this
        return (Parameter, (self.array.copy(), self.requires_grad))
