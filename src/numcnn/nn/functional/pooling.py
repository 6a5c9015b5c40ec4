"""Pooling as autograd Functions over kernels/pool.py: max_pool2d, avg_pool2d, adaptive_avg_pool2d."""

from __future__ import annotations

from ...autograd.function import Function
from ...autograd.tensor import Tensor
from ...kernels import pool as K
from ._checks import ArgCache, as_tuple, check_tensor, plain


class _MaxPool2d(Function):
    node_name = "MaxPool2DWithIndicesBackward0"

    @staticmethod
    def forward(ctx, x, kernel, stride, padding, dilation, ceil_mode):
        y, saved = K.max_pool2d_train_forward(x, kernel, stride, padding, dilation, ceil_mode)
        if ctx.needs_input_grad[0]:
            ctx.saved = saved  # the winners (compiled kernels) or x and y (NumPy kernels find them again)
            ctx.conf = (kernel, stride, padding, dilation, ceil_mode)
        return y

    @staticmethod
    def backward(ctx, g):
        return K.max_pool2d_train_backward(g, ctx.saved, *ctx.conf)


class _AvgPool2d(Function):
    node_name = "AvgPool2DBackward0"

    @staticmethod
    def forward(ctx, x, kernel, stride, padding, ceil_mode, count_include_pad, divisor_override):
        ctx.x_shape = x.shape
        ctx.conf = (kernel, stride, padding, ceil_mode, count_include_pad, divisor_override)
        return K.avg_pool2d_forward(x, kernel, stride, padding, ceil_mode, count_include_pad, divisor_override)

    @staticmethod
    def backward(ctx, g):
        return K.avg_pool2d_backward(g, ctx.x_shape, *ctx.conf)


class _AdaptiveAvgPool2d(Function):
    node_name = "AdaptiveAvgPool2DBackward0"

    @staticmethod
    def forward(ctx, x, output_size):
        ctx.x_shape = x.shape
        return K.adaptive_avg_pool2d_forward(x, output_size)

    @staticmethod
    def backward(ctx, g):
        return K.adaptive_avg_pool2d_backward(g, ctx.x_shape)


# _pool_args's result by (fn, input's H and W, kernel_size, stride, padding, dilation, ceil_mode) for arguments of
# the plain types only (_checks.plain; stride None; ceil_mode a bool).
_POOL_ARGS = ArgCache()


def _pool_args(fn, input, kernel_size, stride, padding, dilation=1, ceil_mode=False):
    check_tensor(input, fn, ndims=(3, 4))
    if (plain(kernel_size) and (stride is None or plain(stride)) and plain(padding) and plain(dilation)
            and type(ceil_mode) is bool):
        key = (fn, input.shape[-2:], kernel_size, stride, padding, dilation, ceil_mode)
        args = _POOL_ARGS.get(key)
        return args if args is not None else _POOL_ARGS.put(
            key, _check_pool_args(fn, input, kernel_size, stride, padding, dilation, ceil_mode))
    return _check_pool_args(fn, input, kernel_size, stride, padding, dilation, ceil_mode)


def _check_pool_args(fn, input, kernel_size, stride, padding, dilation, ceil_mode):
    kernel = as_tuple(kernel_size, 2, fn, "kernel_size", minimum=1)
    stride = kernel if stride is None or stride == [] or stride == () else as_tuple(stride, 2, fn, "stride", minimum=1)
    padding = as_tuple(padding, 2, fn, "padding", minimum=0)
    dilation = as_tuple(dilation, 2, fn, "dilation", minimum=1)
    for p, k in zip(padding, kernel):
        if p > k // 2:
            raise ValueError(f"{fn}: padding should be at most half of kernel size, got padding {padding} "
                             f"for kernel_size {kernel}")
    for size, k, s, p, d in zip(input.shape[-2:], kernel, stride, padding, dilation):
        try:  # PyTorch's rule (kernels/pool/geometry.py), not "kernel fits the padded input": see ceil_mode there
            K.pool_output_size(size, k, s, p, d, ceil_mode)
        except ValueError:  # the arguments are checked above: only a too-small input is left
            raise ValueError(f"{fn}: kernel size {kernel} (dilation {dilation}) is larger than the padded input "
                             f"(input shape {tuple(input.shape)}, padding {padding}, stride {stride})") from None
    return kernel, stride, padding, dilation


def _batched(input, f):
    if input.ndim == 3:
        return f(input.unsqueeze(0)).squeeze(0)
    return f(input)


def max_pool2d(input: Tensor, kernel_size, stride=None, padding=0, dilation=1, ceil_mode: bool = False,
               return_indices: bool = False):
    """input (N, C, H, W) -> (N, C, Ho, Wo); padding acts as -inf; the gradient goes to the arg-max."""
    kernel, stride, padding, dilation = _pool_args("max_pool2d", input, kernel_size, stride, padding, dilation,
                                                 ceil_mode)
    if return_indices:
        x4 = input.unsqueeze(0) if input.ndim == 3 else input
        _, idx = K.max_pool2d_forward(x4.array, kernel, stride, padding, dilation, ceil_mode)
        y = _MaxPool2d.apply(x4, kernel, stride, padding, dilation, bool(ceil_mode))
        if input.ndim == 3:
            return y.squeeze(0), Tensor._make(idx[0], False)
        return y, Tensor._make(idx, False)
    return _batched(input, lambda x: _MaxPool2d.apply(x, kernel, stride, padding, dilation, bool(ceil_mode)))


def avg_pool2d(input: Tensor, kernel_size, stride=None, padding=0, ceil_mode: bool = False,
               count_include_pad: bool = True, divisor_override: int | None = None) -> Tensor:
    kernel, stride, padding, _ = _pool_args("avg_pool2d", input, kernel_size, stride, padding, 1, ceil_mode)
    if divisor_override is not None and (not isinstance(divisor_override, int) or divisor_override <= 0):
        raise ValueError(f"avg_pool2d: divisor_override must be a positive int, got {divisor_override!r}")
    return _batched(input, lambda x: _AvgPool2d.apply(x, kernel, stride, padding, bool(ceil_mode),
                                                      bool(count_include_pad), divisor_override))


def adaptive_avg_pool2d(input: Tensor, output_size) -> Tensor:
    fn = "adaptive_avg_pool2d"
    check_tensor(input, fn, ndims=(3, 4))
    if isinstance(output_size, (tuple, list)):
        out = tuple(input.shape[-2 + i] if s is None else s for i, s in enumerate(output_size))
    else:
        out = (output_size, output_size)
    out = as_tuple(out, 2, fn, "output_size", minimum=1)
    return _batched(input, lambda x: _AdaptiveAvgPool2d.apply(x, out))
