"""Convolutions as autograd Functions over kernels/conv/: conv2d, conv1d (as a conv2d of height 1) and
conv_transpose2d. ``algorithm`` picks the kernels (see kernels/conv/dispatch.py): "auto" (default: a fixed rule of
the shapes per pass, or the runtime's autotuned table), "im2col", "rowshift" (stride-1 only), "gemm" or
"reference" (the 7-loop reference; old name "naive")."""

from __future__ import annotations

import numpy as np

from ...autograd.function import Function
from ...autograd.tensor import Tensor
from ...kernels import conv as K
from ...kernels.conv import autotune
from ._checks import ArgCache, as_tuple, check_same_dtype, check_tensor, plain

ALGORITHMS = K.ALGORITHMS + tuple(K.ALIASES)


class _Conv2d(Function):
    node_name = "ConvolutionBackward0"

    @staticmethod
    def forward(ctx, x, w, b, geo, algorithm):
        if algorithm == "auto":  # a tuned or checkpointed choice, else "auto": the kernels pick per pass
            algorithm = autotune.select(geo, x.dtype, ctx.needs_input_grad[0] or ctx.needs_input_grad[1])
        keep_cols = ctx.needs_input_grad[1] and K.canonical(algorithm) != "reference"
        out = K.forward(geo, x, w, b, algorithm, return_cols=keep_cols)
        y, cols = out if keep_cols else (out, None)
        ctx.save_for_backward(x if ctx.needs_input_grad[1] and cols is None else None, w, cols)
        if cols is not None:
            ctx.on_free(cols.release)  # pooled columns go back to the workspace once the graph is freed
        ctx.geo, ctx.algorithm = geo, algorithm
        return y

    @staticmethod
    def backward(ctx, g):
        x, w, cols = ctx.saved_tensors
        nx, nw, nb = ctx.needs_input_grad[:3]
        geo, alg = ctx.geo, ctx.algorithm
        gx = K.backward_input(geo, g, w, alg) if nx else None
        gw = K.backward_weight(geo, g, x, alg, cols) if nw else None
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


def _check_conv(fn, input, weight, bias, groups):
    check_tensor(input, fn, ndims=(4,))
    check_tensor(weight, fn, "weight", ndims=(4,))
    check_same_dtype(input, weight, fn)
    if not isinstance(groups, (int, np.integer)) or isinstance(groups, bool) or groups < 1:
        raise ValueError(f"{fn}: groups must be a positive int, got {groups!r}")
    if bias is not None:
        check_same_dtype(input, bias, fn, "bias")


# conv2d's geometry by (input shape, weight shape, stride, padding, dilation, groups), for arguments of the plain
# types only (_checks.plain): a hit skips as_tuple, _resolve_padding and ConvGeometry.of (a few microseconds a call).
_GEOMETRIES = ArgCache()


def conv2d(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride=1, padding=0, dilation=1,
           groups: int = 1, algorithm: str | None = None) -> Tensor:
    """input (N, C, H, W) or (C, H, W), weight (K, C/groups, R, S), bias (K,) -> (N, K, Ho, Wo)."""
    fn = "conv2d"
    unbatched = isinstance(input, Tensor) and input.ndim == 3
    if unbatched:
        input = input.unsqueeze(0)
    _check_conv(fn, input, weight, bias, groups)
    algorithm = _check_algorithm(algorithm, fn)
    key = (input.shape, weight.shape, stride, padding, dilation, groups)
    cacheable = plain(stride) and plain(padding, strings=True) and plain(dilation) and type(groups) is int
    geo = _GEOMETRIES.get(key) if cacheable else None
    if geo is None:
        stride = as_tuple(stride, 2, fn, "stride", minimum=1)
        dilation = as_tuple(dilation, 2, fn, "dilation", minimum=1)
        pad = _resolve_padding(padding, weight.shape[2:], dilation, stride, fn)
        try:
            geo = K.ConvGeometry.of(input.shape, weight.shape, stride, pad, dilation, groups)
        except K.GeometryError as e:
            raise e.named(fn) from None
        if cacheable:
            _GEOMETRIES.put(key, geo)
    if bias is not None and tuple(bias.shape) != (geo.k,):
        raise ValueError(f"{fn}: expected bias of shape ({geo.k},), got {tuple(bias.shape)}")
    y = _Conv2d.apply(input, weight, bias, geo, algorithm)
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
    # Checked here so that the messages speak of lengths, not of the height-1 conv2d this becomes.
    if input.shape[1] != weight.shape[1] * groups:
        raise K.GeometryError(f"expected input with {weight.shape[1] * groups} channels (weight "
                              f"{tuple(weight.shape)}, groups={groups}), got shape {tuple(input.shape)}", fn)
    eff, length = dl[1] * (weight.shape[2] - 1) + 1, input.shape[2]
    padded = length + 2 * pad2[1] if not isinstance(pad2, str) else (length if pad2 == "valid" else eff)
    if eff > padded:
        raise K.GeometryError(f"kernel size {eff} (dilated) is larger than the padded input length {padded} "
                              f"(input shape {tuple(input.shape)})", fn)
    y = conv2d(input.unsqueeze(2), weight.unsqueeze(2), bias, st, pad2, dl, groups, algorithm).squeeze(2)
    return y.squeeze(0) if unbatched else y


class _ConvTranspose2d(Function):
    node_name = "ConvolutionBackward0"

    @staticmethod
    def forward(ctx, x, w, b, conf, algorithm):
        ctx.save_for_backward(x if ctx.needs_input_grad[1] else None, w)
        ctx.x_shape, ctx.conf, ctx.algorithm = x.shape, conf, algorithm
        return K.conv_transpose2d_forward(x, w, b, *conf, algorithm=algorithm)

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
    conf = (stride, padding, output_padding, dilation, groups)
    geo = K.transposed_geometry(input.shape, weight.shape, *conf)  # its errors name conv_transpose2d
    if bias is not None and tuple(bias.shape) != (geo.c,):
        raise ValueError(f"{fn}: expected bias of shape ({geo.c},), got {tuple(bias.shape)}")
    y = _ConvTranspose2d.apply(input, weight, bias, conf, algorithm)
    return y.squeeze(0) if unbatched else y
