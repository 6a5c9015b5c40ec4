"""``linear``: y = x W^T + b over any number of leading dims."""

from __future__ import annotations

from ...autograd.function import Function
from ...autograd.tensor import Tensor
from ...kernels.parallel import matmul
from ._checks import check_same_dtype, check_tensor


class _Linear(Function):
    node_name = staticmethod(lambda x, w, b=None: "MmBackward0" if b is None else "AddmmBackward0")

    @staticmethod
    def forward(ctx, x, w, b):
        ctx.save_for_backward(x, w)
        ctx.has_bias = b is not None
        y = matmul(x, w.T)
        if b is not None:
            y += b
        return y

    @staticmethod
    def backward(ctx, g):
        x, w = ctx.saved_tensors
        nx, nw, nb = ctx.needs_input_grad
        gx = matmul(g, w) if nx else None
        g2 = g.reshape(-1, g.shape[-1])
        gw = matmul(g2.T, x.reshape(-1, x.shape[-1])) if nw else None
        gb = g2.sum(axis=0) if nb else None
        return gx, gw, gb


def linear(input: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """input (*, in_features), weight (out_features, in_features), bias (out_features,) -> (*, out_features)."""
    check_tensor(input, "linear", ndims=None)
    check_tensor(weight, "linear", "weight", ndims=(2,))
    check_same_dtype(input, weight, "linear")
    if input.ndim == 0 or input.shape[-1] != weight.shape[1]:
        raise ValueError(
            f"linear: expected input with last dim {weight.shape[1]} (in_features), got shape {tuple(input.shape)}"
        )
    if bias is not None and tuple(bias.shape) != (weight.shape[0],):
        raise ValueError(f"linear: expected bias of shape ({weight.shape[0]},), got {tuple(bias.shape)}")
    return _Linear.apply(input, weight, bias)
