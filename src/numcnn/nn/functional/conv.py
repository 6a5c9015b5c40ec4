"""Convolutions as autograd Functions over kernels/conv.py: conv2d, conv1d (as a conv2d of height 1) and
conv_transpose2d. ``algorithm`` picks the kernel: "auto" (default: the fast one for the shapes, see
kernels.conv.choose_algorithm), "im2col", "rowshift" (stride-1 only) or "naive" (the
7-loop reference)."""

from __future__ import annotations

import numpy as np

from ...autograd.function import Function
from ...autograd.tensor import Tensor
from ...kernels import conv as K
from . import conv_select
from ._checks import as_tuple, check_same_dtype, check_tensor

ALGORITHMS = K.ALGORITHMS


class _Conv2d(Function):
    @staticmethod
    def forward(ctx, x, w, b, stride, padding, dilation, groups, algorithm):
        if algorithm == "auto":  # a tuned or checkpointed choice, else "auto": the kernels pick per pass
            algorithm = conv_select.select(x.shape, w.shape, stride, padding, dilation, groups, x.dtype,
                                           ctx.needs_input_grad[0] or ctx.needs_input_grad[1])
        keep_cols = ctx.needs_input_grad[1] and algorithm != "naive"
        out = K.conv2d_forward(x, w, b, stride, padding, dilation, groups, algorithm=algorithm, return_cols=keep_cols)
        y, cols = out if keep_cols else (out, None)
        ctx.save_for_backward(x if ctx.needs_input_grad[1] and cols is None else None, w, cols)
        if cols is not None:
            # Once the graph is freed after backward, the columns go back to the workspace pool for the next step.
            ctx.on_free = (cols.release,)
        ctx.x_shape = x.shape
        ctx.conf = (stride, padding, dilation, groups)
        ctx.algorithm = algorithm
        return y

    @staticmethod
    def backward(ctx, g):
        x, w, cols = ctx.saved_tensors
        nx, nw, nb = ctx.needs_input_grad[:3]
        stride, padding, dilation, groups = ctx.conf
        alg = ctx.algorithm
        gx = None
        if nx:
            gx = K.conv2d_backward_input(g, w, ctx.x_shape, stride, padding, dilation, groups, algorithm=alg)
        gw = (
            K.conv2d_backward_weight(g, x, w.shape, stride, padding, dilation, groups, algorithm=alg, cols=cols)
            if nw
            else None
        )
        gb = K.conv2d_backward_bias(g) if nb else None
        return gx, gw, gb


def _check_algorithm(algorithm, fn):
    algorithm = algorithm or "auto"
    if algorithm not in ALGORITHMS:
        raise ValueError(f"{fn}: algorithm must be one of {ALGORITHMS}, got {algorithm!r}")
    return algorithm


def _resolve_padding(padding, kernel, dilation, stride, fn):
    """int / pair / 'same' / 'valid' -> ((top, bottom), (left, right))."""
    if isinstance(padding, str):
        if padding == "valid":
            return ((0, 0), (0, 0))
        if padding == "same":
            if any(s != 1 for s in stride):
                raise ValueError(f"{fn}: padding='same' is not supported for strided convolutions, got stride {stride}")
            return K.same_padding(kernel, dilation)
        raise ValueError(f"{fn}: padding must be an int, a pair, 'same' or 'valid', got {padding!r}")
    ph, pw = as_tuple(padding, 2, fn, "padding", minimum=0)
    return ((ph, ph), (pw, pw))


def _check_conv(fn, input, weight, bias, groups, channel_dim_weight=1):
    check_tensor(input, fn, ndims=(4,))
    check_tensor(weight, fn, "weight", ndims=(4,))
    check_same_dtype(input, weight, fn)
    if not isinstance(groups, (int, np.integer)) or isinstance(groups, bool) or groups < 1:
        raise ValueError(f"{fn}: groups must be a positive int, got {groups!r}")
    if bias is not None:
        check_same_dtype(input, bias, fn, "bias")


def conv2d(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride=1, padding=0, dilation=1,
           groups: int = 1, algorithm: str | None = None) -> Tensor:
    """input (N, C, H, W) or (C, H, W), weight (K, C/groups, R, S), bias (K,) -> (N, K, Ho, Wo)."""
    fn = "conv2d"
    unbatched = isinstance(input, Tensor) and input.ndim == 3
    if unbatched:
        input = input.unsqueeze(0)
    _check_conv(fn, input, weight, bias, groups)
    algorithm = _check_algorithm(algorithm, fn)
    stride = as_tuple(stride, 2, fn, "stride", minimum=1)
    dilation = as_tuple(dilation, 2, fn, "dilation", minimum=1)
    K_out, cpg, R, S = weight.shape
    N, C, H, W = input.shape
    if C != cpg * groups:
        raise ValueError(
            f"{fn}: expected input with {cpg * groups} channels (weight {tuple(weight.shape)}, groups={groups}), "
            f"got shape {tuple(input.shape)}"
        )
    if K_out % groups:
        raise ValueError(f"{fn}: out_channels {K_out} must be divisible by groups {groups}")
    if bias is not None and tuple(bias.shape) != (K_out,):
        raise ValueError(f"{fn}: expected bias of shape ({K_out},), got {tuple(bias.shape)}")
    pad = _resolve_padding(padding, (R, S), dilation, stride, fn)
    eff = (dilation[0] * (R - 1) + 1, dilation[1] * (S - 1) + 1)
    padded = (H + pad[0][0] + pad[0][1], W + pad[1][0] + pad[1][1])
    if eff[0] > padded[0] or eff[1] > padded[1]:
        raise ValueError(
            f"{fn}: kernel size {eff} (dilated) is larger than the padded input size {padded} "
            f"(input shape {tuple(input.shape)})"
        )
    y = _Conv2d.apply(input, weight, bias, stride, pad, dilation, groups, algorithm)
    return y.squeeze(0) if unbatched else y


def conv1d(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride=1, padding=0, dilation=1,
           groups: int = 1, algorithm: str | None = None) -> Tensor:
    """input (N, C, L) or (C, L), weight (K, C/groups, S), bias (K,) -> (N, K, Lo)."""
    fn = "conv1d"
    check_tensor(input, fn, ndims=(2, 3))
    check_tensor(weight, fn, "weight", ndims=(3,))
    unbatched = input.ndim == 2
    if unbatched:
        input = input.unsqueeze(0)
    if isinstance(padding, str):
        pad2 = padding
    else:
        pad2 = (0, as_tuple(padding, 1, fn, "padding", minimum=0)[0])
    st = (1, as_tuple(stride, 1, fn, "stride", minimum=1)[0])
    dl = (1, as_tuple(dilation, 1, fn, "dilation", minimum=1)[0])
    if input.shape[1] != weight.shape[1] * groups:
        raise ValueError(
            f"{fn}: expected input with {weight.shape[1] * groups} channels (weight {tuple(weight.shape)}, "
            f"groups={groups}), got shape {tuple(input.shape)}"
        )
    # Checked here so that the message speaks of lengths, not of the height-1 conv2d this becomes.
    eff, length = dl[1] * (weight.shape[2] - 1) + 1, input.shape[2]
    padded = length + 2 * pad2[1] if not isinstance(pad2, str) else (length if pad2 == "valid" else eff)
    if eff > padded:
        raise ValueError(f"{fn}: kernel size {eff} (dilated) is larger than the padded input length {padded} "
                         f"(input shape {tuple(input.shape)})")
    y = conv2d(input.unsqueeze(2), weight.unsqueeze(2), bias, st, pad2, dl, groups, algorithm).squeeze(2)
    return y.squeeze(0) if unbatched else y


class _ConvTranspose2d(Function):
    @staticmethod
    def forward(ctx, x, w, b, stride, padding, output_padding, dilation, groups, algorithm):
        ctx.save_for_backward(x if ctx.needs_input_grad[1] else None, w)
        ctx.x_shape = x.shape
        ctx.conf = (stride, padding, output_padding, dilation, groups)
        ctx.algorithm = algorithm
        return K.conv_transpose2d_forward(x, w, b, stride, padding, output_padding, dilation, groups,
                                          algorithm=algorithm)

    @staticmethod
    def backward(ctx, g):
        x, w = ctx.saved_tensors
        nx, nw, nb = ctx.needs_input_grad[:3]
        conf, alg = ctx.conf, ctx.algorithm
        gx = K.conv_transpose2d_backward_input(g, w, ctx.x_shape, *conf, algorithm=alg) if nx else None
        gw = K.conv_transpose2d_backward_weight(g, x, w.shape, *conf, algorithm=alg) if nw else None
        gb = g.sum(axis=(0, 2, 3)) if nb else None
        return gx, gw, gb


def conv_transpose2d(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride=1, padding=0,
                     output_padding=0, groups: int = 1, dilation=1, algorithm: str | None = None) -> Tensor:
    """input (N, Cin, H, W), weight (Cin, Cout/groups, R, S) -> (N, Cout, Ho, Wo) with
    Ho = (H-1)*stride - 2*padding + dilation*(R-1) + output_padding + 1 (PyTorch's argument order)."""
    fn = "conv_transpose2d"
    unbatched = isinstance(input, Tensor) and input.ndim == 3
    if unbatched:
        input = input.unsqueeze(0)
    _check_conv(fn, input, weight, bias, groups)
    algorithm = _check_algorithm(algorithm, fn)
    stride = as_tuple(stride, 2, fn, "stride", minimum=1)
    dilation = as_tuple(dilation, 2, fn, "dilation", minimum=1)
    padding = as_tuple(padding, 2, fn, "padding", minimum=0)
    output_padding = as_tuple(output_padding, 2, fn, "output_padding", minimum=0)
    for op, s, d in zip(output_padding, stride, dilation):
        if op >= max(s, d):
            raise ValueError(
                f"{fn}: output_padding must be smaller than either stride or dilation, got output_padding "
                f"{output_padding}, stride {stride}, dilation {dilation}"
            )
    Cin = weight.shape[0]
    if input.shape[1] != Cin:
        raise ValueError(f"{fn}: expected input with {Cin} channels (weight {tuple(weight.shape)}), "
                         f"got shape {tuple(input.shape)}")
    if Cin % groups:
        raise ValueError(f"{fn}: in_channels {Cin} must be divisible by groups {groups}")
    cout = weight.shape[1] * groups
    if bias is not None and tuple(bias.shape) != (cout,):
        raise ValueError(f"{fn}: expected bias of shape ({cout},), got {tuple(bias.shape)}")
    for i in range(2):
        size = ((input.shape[2 + i] - 1) * stride[i] - 2 * padding[i] + dilation[i] * (weight.shape[2 + i] - 1)
                + output_padding[i] + 1)
        if size <= 0:
            raise ValueError(f"{fn}: the output size would be {size} <= 0 for input shape {tuple(input.shape)}")
    y = _ConvTranspose2d.apply(input, weight, bias, stride, padding, output_padding, dilation, groups, algorithm)
    return y.squeeze(0) if unbatched else y
